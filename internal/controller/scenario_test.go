package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scenarioConfigMap is the ConfigMap of SCENARIO.md, verbatim. The addresses
// only ever live in the API server here; no packet is sent to them.
const scenarioConfigMap = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.1.87-192.168.1.97 # IP range
`

// TestScenario is the user's story, step 3 and 4: the legacy ConfigMap, the
// three Services switched from ClusterIP to LoadBalancer with the addresses
// they ask for, then a fourth asking for an address already taken, which
// must stay pending and say who holds it and what is free.
func TestScenario(t *testing.T) {
	ns := "scenario-system"
	startController(t, ns)
	for _, n := range []string{"istio-system", "kubeflow", "seldon-system"} {
		ensureNamespace(t, n)
	}
	cleanupServices(t, "istio-system", "kubeflow", "seldon-system")
	create(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data:       map[string]string{"config": scenarioConfigMap},
	})

	services := []struct {
		ns, name string
		ports    []int32
		ip       string
	}{
		{"istio-system", "istio-ingressgateway", []int32{15021, 80, 443, 31400, 15443}, "192.168.1.88"},
		{"kubeflow", "minio-service", []int32{9000}, "192.168.1.89"},
		{"seldon-system", "seldon-core-analytics-grafana", []int32{80}, "192.168.1.90"},
	}
	for _, s := range services {
		svc := lbService(s.ns, s.name, s.ports...)
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		svc.Spec.AllocateLoadBalancerNodePorts = nil
		create(t, svc)
		// kubectl edit: type LoadBalancer and spec.loadBalancerIP.
		update(t, s.ns, s.name, func(svc *corev1.Service) {
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Spec.LoadBalancerIP = s.ip
		})
	}
	for _, s := range services {
		v := waitIPs(t, s.ns, s.name, s.ip)
		if !strings.Contains(v.Message, "from pool default") {
			t.Errorf("%s condition message = %q, want it to name pool default", s.name, v.Message)
		}
	}

	// The pain point: a fourth Service asks for .88.
	dup := lbService("kubeflow", "dashboard-copy")
	dup.Spec.LoadBalancerIP = "192.168.1.88"
	create(t, dup)
	v := waitPending(t, "kubeflow", "dashboard-copy", v1alpha1.ReasonIPInUse)
	for _, want := range []string{"192.168.1.88", "istio-system/istio-ingressgateway", "free in pool default: 192.168.1.87, 192.168.1.91-192.168.1.97"} {
		if !strings.Contains(v.Message, want) {
			t.Errorf("pending message %q does not contain %q", v.Message, want)
		}
	}
	waitEvent(t, "kubeflow", "dashboard-copy", "istio-system/istio-ingressgateway")

	// Leaving loadBalancerIP out takes the next free address.
	create(t, lbService("kubeflow", "any-ip"))
	waitIPs(t, "kubeflow", "any-ip", "192.168.1.87")

	// Nothing already assigned moved.
	for _, s := range services {
		waitIPs(t, s.ns, s.name, s.ip)
	}

	// Once the holder goes, the waiting Service gets .88, and an event
	// says so where the warning was.
	if err := env.Client.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-ingressgateway"}}); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, "kubeflow", "dashboard-copy", "192.168.1.88")
	waitEvent(t, "kubeflow", "dashboard-copy", "IPAllocated: Assigned 192.168.1.88 from pool default")
}
