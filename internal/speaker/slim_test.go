package speaker

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestSlimTransform checks that the cache transform keeps what the speaker
// reads of each kind (its readers run on the slim object and must give
// the same answer as on the full one) and drops the rest.
func TestSlimTransform(t *testing.T) {
	meta := metav1.ObjectMeta{
		Name: "web", Namespace: "shop", UID: "u-1", ResourceVersion: "42",
		Labels:        map[string]string{"app": "web", discoveryv1.LabelServiceName: "web"},
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
	class := "ironlb.io/ironlb"
	svc := &corev1.Service{
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass:     &class,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{"app": "web"},
			Ports:                 []corev1.ServicePort{{Port: 80}},
			ClusterIP:             "10.0.0.1",
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "2001:db8::2", Ports: []corev1.PortStatus{{Port: 80}}}, {IP: "198.51.100.7"},
		}}},
	}
	ready, notReady := true, false
	node1, node2, node3 := "node-1", "node-2", "node-3"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  meta,
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, NodeName: &node1, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.1.0.2"}, NodeName: &node2, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
			{Addresses: []string{"10.1.0.3"}, NodeName: &node1, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.1.0.4"}, NodeName: &node3},
			{Addresses: []string{"10.1.0.5"}},
		},
		Ports: []discoveryv1.EndpointPort{{Port: new(int32(8080))}},
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: "7", Labels: map[string]string{"zone": "a"}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.11"}},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Message: "kubelet is posting ready status"},
			},
			Images: []corev1.ContainerImage{{Names: []string{"registry.example/huge:1"}, SizeBytes: 1 << 30}},
		},
	}

	t.Run("service", func(t *testing.T) {
		got := mustSlim[*corev1.Service](t, svc)
		want := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-1", ResourceVersion: "42"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class,
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{IP: "2001:db8::2"}, {IP: "198.51.100.7"},
			}}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		s := &Speaker{opts: Options{LoadBalancerClass: class}}
		if !s.serves(got) {
			t.Error("the slim Service is not served")
		}
		if a, b := ingressIPs(got), ingressIPs(svc); !reflect.DeepEqual(a, b) {
			t.Errorf("addresses %v, from the full Service %v", a, b)
		}
	})
	t.Run("endpoint slice", func(t *testing.T) {
		got := mustSlim[*discoveryv1.EndpointSlice](t, es)
		want := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-1", ResourceVersion: "42",
				Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			// node-1 once, node-2's endpoint is not ready, node-3's
			// has no Ready condition (ready), the last one no node.
			Endpoints: []discoveryv1.Endpoint{{NodeName: &node1}, {NodeName: &node3}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		if nodes := readyNodes(got); !reflect.DeepEqual(nodes, readyNodes(es)) {
			t.Errorf("ready nodes %v, from the full slice %v", nodes, readyNodes(es))
		}
	})
	t.Run("node", func(t *testing.T) {
		got := mustSlim[*corev1.Node](t, node)
		if !nodeReady(got) {
			t.Error("the slim node is not Ready")
		}
		if ip := internalIP(got); ip != netip.MustParseAddr("198.51.100.11") {
			t.Errorf("InternalIP %v", ip)
		}
		if !reflect.DeepEqual(got.Labels, node.Labels) {
			t.Errorf("labels %v", got.Labels)
		}
		if len(got.Status.Images) > 0 || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Message != "" {
			t.Errorf("status kept more than Ready and the addresses: %+v", got.Status)
		}
	})
	t.Run("tombstone", func(t *testing.T) {
		tomb := toolscache.DeletedFinalStateUnknown{Key: "shop/web", Obj: svc}
		got, err := slimTransform(tomb)
		if err != nil || !reflect.DeepEqual(got, tomb) {
			t.Errorf("got %v, %v; want the tombstone unchanged", got, err)
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		once := mustSlim[*corev1.Service](t, svc)
		if twice := mustSlim[*corev1.Service](t, once); !reflect.DeepEqual(once, twice) {
			t.Errorf("a second pass changed %+v into %+v", once, twice)
		}
	})
}

func mustSlim[T any](t *testing.T, obj any) T {
	t.Helper()
	out, err := slimTransform(obj)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := out.(T)
	if !ok {
		t.Fatalf("transform returned %T", out)
	}
	return got
}

// TestSlimChanged checks which updates of the slimmed kinds kick a sync:
// those that change what the speaker reads, and no others.
func TestSlimChanged(t *testing.T) {
	n1, n2 := "node-1", "node-2"
	ready, notReady := true, false
	svc := func(rv, ip string, cond string, etp corev1.ServiceExternalTrafficPolicy) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u", ResourceVersion: rv},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp}}
		if ip != "" {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		}
		if cond != "" {
			s.Status.Conditions = []metav1.Condition{{Type: "ironlb.io/IPAllocated", Status: metav1.ConditionStatus(cond)}}
		}
		return s
	}
	eps := func(rv string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: "shop", ResourceVersion: rv,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, Endpoints: eps}
	}
	ep := func(addr string, node *string, r *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: node, Conditions: discoveryv1.EndpointConditions{Ready: r}}
	}
	node := func(rv string, readyStatus corev1.ConditionStatus, beat int64, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: rv, Labels: labels},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: readyStatus,
				LastHeartbeatTime: metav1.Unix(beat, 0)}}}}
	}
	cluster, local := corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"service: the controller's condition", svc("1", "198.51.100.7", "False", cluster), svc("2", "198.51.100.7", "True", cluster), false},
		{"service: an address", svc("1", "", "False", cluster), svc("2", "198.51.100.7", "True", cluster), true},
		{"service: traffic policy", svc("1", "198.51.100.7", "", cluster), svc("2", "198.51.100.7", "", local), true},
		{"slice: a pod's address", eps("1", ep("10.0.0.1", &n1, &ready)), eps("2", ep("10.0.0.9", &n1, &ready)), false},
		{"slice: a second ready pod on the node", eps("1", ep("10.0.0.1", &n1, &ready)),
			eps("2", ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n1, nil)), false},
		{"slice: pods reordered", eps("1", ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n2, &ready)),
			eps("2", ep("10.0.0.2", &n2, &ready), ep("10.0.0.1", &n1, &ready)), false},
		{"slice: the node's only pod turns not ready", eps("1", ep("10.0.0.1", &n1, &ready)), eps("2", ep("10.0.0.1", &n1, &notReady)), true},
		{"slice: a pod on another node", eps("1", ep("10.0.0.1", &n1, &ready)),
			eps("2", ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n2, &ready)), true},
		{"node: a heartbeat", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionTrue, 200, nil), false},
		{"node: not ready", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionFalse, 200, nil), true},
		{"node: a label", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionTrue, 100, map[string]string{"zone": "b"}), true},
		{"another kind", &corev1.ConfigMap{}, &corev1.ConfigMap{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := slimChanged(mustSlim[any](t, tc.old), mustSlim[any](t, tc.new)); got != tc.want {
				t.Errorf("changed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSyncSpacing(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{0, minSyncInterval},
		{10 * time.Millisecond, minSyncInterval},
		{150 * time.Millisecond, 450 * time.Millisecond}, // a quarter of a CPU
		{time.Second, 3 * time.Second},
	} {
		if got := syncSpacing(tc.took); got != tc.want {
			t.Errorf("after a sync of %v: %v, want %v", tc.took, got, tc.want)
		}
	}
}
