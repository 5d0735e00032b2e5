package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestReserve turns a running Service's address into an IPReservation in
// one command, on a real API server with an in-process controller, and
// checks that `ironlbctl status` then lists the reservation as bound; a
// Service without an address, an address reserved already and a
// malformed argument are refused with the reason.
func TestReserve(t *testing.T) {
	const sys, ns = "ironlb-reserve", "reserve"
	startController(t, sys)
	ensureNamespace(t, ns)
	mustCreate(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: sys, Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 192.0.2.160-192.0.2.170\n"},
	})
	svc := func(name string, typ corev1.ServiceType) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
		}
		mustCreate(t, s)
		return s
	}
	web := svc("web", corev1.ServiceTypeLoadBalancer)
	waitAllocated(t, web)
	svc("plain", corev1.ServiceTypeClusterIP)
	ironlbctl := func(args ...string) (string, error) {
		out, errOut, err := run(t, "", append([]string{"--kubeconfig", env.Kubeconfig, "-n", sys}, args...)...)
		return out + errOut, err
	}

	out, err := ironlbctl("reserve", ns+"/web")
	if err != nil {
		t.Fatalf("reserve: %v\n%s", err, out)
	}
	if want := "ipreservation.ironlb.io/reserve-web created: 192.0.2.160 reserved for Service reserve/web\n"; out != want {
		t.Errorf("reserve printed %q, want %q", out, want)
	}
	var res v1alpha1.IPReservation
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "reserve-web"}, &res); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteAndWait(t, &res) })
	if s := res.Spec.Service; s == nil || s.Namespace != ns || s.Name != "web" || strings.Join(res.Spec.Addresses, ",") != "192.0.2.160" {
		t.Errorf("created spec = %+v", res.Spec)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reserve", ns + "/web", "--name", "again"}, "192.0.2.160 is already reserved by IPReservation/reserve-web (for Service reserve/web); nothing created"},
		{[]string{"reserve", ns + "/plain"}, "reserve/plain has no address to reserve: it is not of type LoadBalancer"},
		{[]string{"reserve", ns + "/missing"}, "no Service reserve/missing"},
		{[]string{"reserve", "web"}, `"web": name the Service as NAMESPACE/NAME`},
	} {
		if _, err := ironlbctl(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ironlbctl %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "reserve-web"}, &res); err != nil {
			t.Fatal(err)
		}
		if meta.IsStatusConditionTrue(res.Status.Conditions, v1alpha1.ConditionBound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reserve-web is not bound: %+v", res.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err = ironlbctl("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{
		"IP reservations:\n",
		"NAME         ADDRESSES    FOR                  STATE\n",
		"reserve-web  192.0.2.160  Service reserve/web  Bound\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = ironlbctl("status", "-o", "json")
	if err != nil || !strings.Contains(out, `"reservations": [`+"\n"+`      "reserve-web"`) {
		t.Errorf("status -o json (err %v) does not name web's reservation:\n%s", err, out)
	}
}

// TestPrintReservations: a reservation that is not bound says why after
// the table, as a pending Service does.
func TestPrintReservations(t *testing.T) {
	rows := reservationRows([]v1alpha1.IPReservation{{
		ObjectMeta: metav1.ObjectMeta{Name: "db-ip"},
		Spec: v1alpha1.IPReservationSpec{Addresses: []string{"192.0.2.9"},
			ServiceSelector: &v1alpha1.ReservedServiceSelector{Namespace: "shop", Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}},
		Status: v1alpha1.IPReservationStatus{Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid},
			{Type: v1alpha1.ConditionBound, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonHeldByOther, Message: "Held 192.0.2.9 by shop/old"},
		}},
	}, {
		ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec:       v1alpha1.IPReservationSpec{Addresses: []string{"10.9.9.9"}, Service: &v1alpha1.ReservedService{Namespace: "a", Name: "b"}},
		Status: v1alpha1.IPReservationStatus{Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionValid, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonInvalid, Message: "spec.addresses[0]: 10.9.9.9 is in no pool"},
			{Type: v1alpha1.ConditionBound, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotInForce},
		}},
	}})
	var b strings.Builder
	if err := printReservations(&b, rows, false); err != nil {
		t.Fatal(err)
	}
	want := "\nIP reservations:\n" +
		"NAME   ADDRESSES  FOR                               STATE\n" +
		"bad    10.9.9.9   Service a/b                       Invalid: Invalid\n" +
		"db-ip  192.0.2.9  Services of shop matching app=db  Waiting: HeldByOther\n" +
		"\nIPReservation/bad is not bound: spec.addresses[0]: 10.9.9.9 is in no pool\n" +
		"\nIPReservation/db-ip is not bound: Held 192.0.2.9 by shop/old\n"
	if got := b.String(); got != want {
		t.Errorf("printReservations:\n%s\nwant:\n%s", got, want)
	}
}
