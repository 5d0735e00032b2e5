package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestExpose runs the tutorial's step 4 with expose against a real API
// server and an in-process controller: a ClusterIP Service gets the
// address it asks for; a second Service asking for the same address is
// told who holds it and what is free, and then gets a free one.
func TestExpose(t *testing.T) {
	ctx := context.Background()
	const ns = "expose"
	startController(t, "ironlb-expose")
	ensureNamespace(t, ns)
	mustCreate(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-expose", Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 192.0.2.87-192.0.2.97\n"},
	})
	// A Service holding the pool's last address shows that the controller
	// has read the ConfigMap: until then it would answer IPNotInAnyPool.
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe", Annotations: map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "192.0.2.97"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 1}}},
	}
	mustCreate(t, probe)
	waitAllocated(t, probe)

	svc := func(name string, ports ...int32) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}},
		}
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p, TargetPort: intstr.FromInt32(p)})
		}
		mustCreate(t, s)
		return s
	}
	gateway := svc("istio-ingressgateway", 15021, 80, 443)
	svc("minio-service", 9000)
	svc("grafana", 80)
	expose := func(args ...string) (string, string, error) {
		return run(t, "", append([]string{"--kubeconfig", env.Kubeconfig, "expose"}, args...)...)
	}

	out, stderr, err := expose("svc/istio-ingressgateway", "-n", ns, "--ip", "192.0.2.88")
	if testing.Verbose() {
		t.Logf("ironlbctl expose svc/istio-ingressgateway -n %s --ip 192.0.2.88:\n%s", ns, out)
	}
	if err != nil {
		t.Fatalf("expose: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{
		`kubectl -n expose patch service istio-ingressgateway --type merge -p '{"metadata":{"annotations":{"ironlb.io/loadBalancerIPs":"192.0.2.88"}},"spec":{"type":"LoadBalancer"}}'`,
		"expose/istio-ingressgateway: EXTERNAL-IP 192.0.2.88\n",
		"Assigned 192.0.2.88 from pool default\n",
		"reachable from outside the cluster at 192.0.2.88 on ports 15021/TCP, 80/TCP, 443/TCP",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var got corev1.Service
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(gateway), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Type != corev1.ServiceTypeLoadBalancer || got.Annotations[v1alpha1.AnnotationLoadBalancerIPs] != "192.0.2.88" || got.Spec.LoadBalancerIP != "" {
		t.Errorf("after expose: type %s, annotations %v, spec.loadBalancerIP %q", got.Spec.Type, got.Annotations, got.Spec.LoadBalancerIP)
	}
	// The merge patch kept everything else.
	if got.Spec.ClusterIP != gateway.Spec.ClusterIP || !cmp.Equal(got.Spec.Selector, gateway.Spec.Selector) || len(got.Spec.Ports) != 3 || got.Labels["app"] != "istio-ingressgateway" {
		t.Errorf("expose changed other fields: clusterIP %s (was %s), selector %v, %d ports, labels %v",
			got.Spec.ClusterIP, gateway.Spec.ClusterIP, got.Spec.Selector, len(got.Spec.Ports), got.Labels)
	}

	// The tutorial's pain point: the address is taken.
	out, stderr, err = expose("svc/minio-service", "-n", ns, "--ip", "192.0.2.88")
	if testing.Verbose() {
		t.Logf("ironlbctl expose svc/minio-service -n %s --ip 192.0.2.88:\n%s%s", ns, out, stderr)
	}
	var code exitCode
	if !errors.As(err, &code) || code != 1 {
		t.Errorf("expose of a taken address: error %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{
		"expose/minio-service has no external IP (IPInUse): 192.0.2.88 is already used by expose/istio-ingressgateway (no sharing key); free in pool default: 192.0.2.87, 192.0.2.89-192.0.2.96",
		"fix: ask for a free address (see above): ironlbctl expose svc/minio-service -n expose --ip ADDRESS",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// The same Service again, with a free address: the answer before the
	// patch (IPInUse) must not be taken for the answer to the new request.
	out, stderr, err = expose("minio-service", "--namespace", ns, "--ip", "192.0.2.89")
	if err != nil || !strings.Contains(out, "expose/minio-service: EXTERNAL-IP 192.0.2.89\n") {
		t.Errorf("expose with a free address: %v\n%s%s", err, out, stderr)
	}

	// A pool, and a sharing key.
	out, stderr, err = expose("service/grafana", "-n", ns, "--pool", "default", "--shared", "dashboards")
	if err != nil || !strings.Contains(out, `{"metadata":{"annotations":{"ironlb.io/address-pool":"default","ironlb.io/allow-shared-ip":"dashboards"}},"spec":{"type":"LoadBalancer"}}`) ||
		!strings.Contains(out, "expose/grafana: EXTERNAL-IP 192.0.2.87\n") {
		t.Errorf("expose --pool --shared: %v\n%s%s", err, out, stderr)
	}

	// Mistakes are caught before anything is patched.
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"svc/nope", "-n", ns}, "service expose/nope not found"},
		{[]string{"deploy/minio", "-n", ns}, "expose works on Services"},
		{[]string{"svc/grafana", "-n", ns, "--ip", "192.0.2.300"}, `--ip: "192.0.2.300" is not an IP address`},
		{[]string{"svc/grafana", "-n", ns, "--ip", "192.0.2.90", "--pool", "default"}, "[ip pool] were all set"},
	} {
		if _, _, err := expose(tt.args...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("expose %v: error %v, want one containing %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestJudge(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason, msg string) *metav1.Condition {
		return &metav1.Condition{Type: v1alpha1.ServiceConditionIPAllocated, Status: status, Reason: reason, Message: msg}
	}
	taken := lbState{cond: cond(metav1.ConditionFalse, "IPInUse", "192.0.2.88 is already used by a/b")}
	allocated := lbState{ips: []string{"192.0.2.89"}, cond: cond(metav1.ConditionTrue, "Allocated", "Assigned 192.0.2.89 from pool default")}
	ask := func(ip string) exposeRequest {
		if ip == "" {
			return exposeRequest{}
		}
		return exposeRequest{ips: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	tests := []struct {
		name            string
		req             exposeRequest
		before, now     lbState
		changed, settle bool
		want            exposeVerdict
	}{
		{"no answer yet", ask(""), lbState{}, lbState{}, true, true, exposeWaiting},
		{"new answer", ask(""), lbState{}, allocated, true, false, exposeAllocated},
		{"new refusal", ask(""), lbState{}, taken, true, false, exposeRefused},
		{"stale refusal", ask("192.0.2.89"), taken, taken, true, false, exposeWaiting},
		{"stale refusal, settled", ask("192.0.2.90"), taken, taken, true, true, exposeRefused},
		{"unchanged Service: its answer stands", ask("192.0.2.88"), taken, taken, false, false, exposeRefused},
		{"the address asked for", ask("192.0.2.89"), allocated, allocated, true, false, exposeAllocated},
		{"another address than asked for", ask("192.0.2.90"), allocated, allocated, true, true, exposeWaiting},
		{"stale address, no request", ask(""), allocated, allocated, true, false, exposeWaiting},
		{"same address, settled", ask(""), allocated, allocated, true, true, exposeAllocated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(tt.req, tt.before, tt.now, tt.changed, tt.settle); got != tt.want {
				t.Errorf("judge = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestExposeArgs(t *testing.T) {
	for in, want := range map[string]string{"svc/a": "a", "service/a": "a", "services/a": "a", "a": "a", "SVC/a": "a"} {
		if got, err := parseServiceArg(in); err != nil || got != want {
			t.Errorf("parseServiceArg(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"deploy/a", "svc/", "svc/a/b"} {
		if _, err := parseServiceArg(in); err == nil {
			t.Errorf("parseServiceArg(%q): no error", in)
		}
	}
	if ips, err := parseIPs("192.0.2.1, 2001:db8::1"); err != nil || len(ips) != 2 {
		t.Errorf("dual-stack --ip: %v, %v", ips, err)
	}
	if _, err := parseIPs("192.0.2.1,192.0.2.2"); err == nil {
		t.Errorf("two IPv4 addresses: no error")
	}
	if got := string(exposeRequest{}.patch()); got != `{"spec":{"type":"LoadBalancer"}}` {
		t.Errorf("patch without a request = %s", got)
	}
}
