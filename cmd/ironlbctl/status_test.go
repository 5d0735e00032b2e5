package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/controller"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Scheme: controller.Scheme()}) }

// TestStatus runs the controller on a real API server and checks that
// `ironlbctl status` shows each Service's address, pool and mode, or why it
// is pending.
func TestStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustCreate := func(o interface{ GetName() string }, err error) {
		if err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ironlb-system"}}
	mustCreate(ns, env.Client.Create(ctx, ns))
	c, err := controller.New(env.Config, controller.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 198.51.100.87-198.51.100.97\n"},
	}
	mustCreate(cm, env.Client.Create(ctx, cm))
	svc := func(name, ip string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: ip,
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}},
			},
		}
	}
	// One at a time, each once the previous has its answer: Services
	// created together are reconciled in any order.
	for _, s := range []*corev1.Service{svc("dashboard", "198.51.100.88"), svc("copy", "198.51.100.88"), svc("other", "")} {
		mustCreate(s, env.Client.Create(ctx, s))
		waitCondition(t, s)
	}

	// The speaker announcing dashboard's address reports it.
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "dashboard"},
		Status: v1alpha1.ServiceAnnouncementStatus{Mode: v1alpha1.ModeLayer2, Announcers: []v1alpha1.Announcer{
			{IP: "198.51.100.88", Node: "node-2", Interface: "eth0", MAC: "02:00:00:00:00:02"},
		}},
	}
	mustCreate(ann, env.Client.Create(ctx, ann))

	want := []statusRow{
		{Namespace: "default", Name: "copy", State: "Pending", Reason: "IPInUse"},
		{Namespace: "default", Name: "dashboard", IPs: []string{"198.51.100.88"}, Pools: []string{"default"}, Mode: "layer2", State: "Allocated", Reason: "Allocated",
			Announcers: ann.Status.Announcers},
		{Namespace: "default", Name: "other", IPs: []string{"198.51.100.87"}, Pools: []string{"default"}, Mode: "layer2", State: "Allocated", Reason: "Allocated"},
	}
	var rows []statusRow
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err = statusRows(ctx, env.Client, types.NamespacedName{Namespace: "ironlb-system", Name: "config"})
		if err != nil {
			t.Fatal(err)
		}
		diff := cmp.Diff(want, rows, cmpopts.IgnoreFields(statusRow{}, "Message"))
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status rows (-want +got):\n%s", diff)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var out bytes.Buffer
	if err := printStatus(&out, rows, ""); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"NAMESPACE  NAME       EXTERNAL-IP    POOL     MODE    ANNOUNCED BY  STATUS",
		"default    copy       <none>         <none>   <none>  <none>        Pending: IPInUse",
		"default    dashboard  198.51.100.88  default  layer2  node-2        Allocated",
		"default/copy is pending: 198.51.100.88 is already used by default/dashboard",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	if err := printStatus(&out, rows, "wide"); err != nil || !strings.Contains(out.String(), "node-2 on eth0 (02:00:00:00:00:02)") {
		t.Errorf("wide output (err %v) lacks the interface and MAC:\n%s", err, out.String())
	}
	out.Reset()
	if err := printStatus(&out, rows, "json"); err != nil || !strings.Contains(out.String(), `"reason": "IPInUse"`) {
		t.Errorf("json output (err %v):\n%s", err, out.String())
	}
}

// waitCondition waits until the controller has written its IPAllocated
// condition on s.
func waitCondition(t *testing.T, s *corev1.Service) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var got corev1.Service
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &got); err == nil &&
			meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no IPAllocated condition on %s/%s", s.Namespace, s.Name)
}
