package speaker

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestReduceService checks which Services a speaker keeps, and what of
// them.
func TestReduceService(t *testing.T) {
	const class = "ironlb.io/ironlb"
	other := "example.com/other"
	ours := class
	svc := func(typ corev1.ServiceType, lbClass *string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-1", ResourceVersion: "42",
				Labels: map[string]string{"app": "web"}},
			Spec: corev1.ServiceSpec{Type: typ, LoadBalancerClass: lbClass, ExternalTrafficPolicy: etp,
				Ports: []corev1.ServicePort{{Port: 80}}, ClusterIP: "10.0.0.1"},
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress,
				corev1.LoadBalancerIngress{IP: ip, Ports: []corev1.PortStatus{{Port: 80}}})
		}
		return s
	}
	lb, cluster, local := corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal
	for _, tc := range []struct {
		name string
		svc  *corev1.Service
		want *svcRecord // nil: not kept
	}{
		{"dual-stack, sorted, each once", svc(lb, nil, cluster, "2001:db8::2", "198.51.100.7", "198.51.100.7"),
			&svcRecord{uid: serviceUID{text: "u-1"}, ips: []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::2")}}},
		{"our class, Local", svc(lb, &ours, local, "198.51.100.7"),
			&svcRecord{uid: serviceUID{text: "u-1"}, ips: []netip.Addr{netip.MustParseAddr("198.51.100.7")}, local: true}},
		{"an IPv4-mapped address is unmapped", svc(lb, nil, cluster, "::ffff:198.51.100.7"),
			&svcRecord{uid: serviceUID{text: "u-1"}, ips: []netip.Addr{netip.MustParseAddr("198.51.100.7")}}},
		{"another class", svc(lb, &other, cluster, "198.51.100.7"), nil},
		{"not a LoadBalancer", svc(corev1.ServiceTypeClusterIP, nil, cluster), nil},
		{"no address yet", svc(lb, nil, cluster), nil},
		{"only a hostname", svc(lb, nil, cluster, ""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, kept := reduceService(tc.svc, class)
			if kept != (tc.want != nil) {
				t.Fatalf("kept %v, want %v", kept, tc.want != nil)
			}
			if tc.want == nil {
				return
			}
			if diff := cmp.Diff(*tc.want, got, cmp.AllowUnexported(svcRecord{}, serviceUID{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if len(got.ips) != cap(got.ips) {
				t.Errorf("ips hold %d addresses in room for %d", len(got.ips), cap(got.ips))
			}
		})
	}
}

// TestServiceUID checks that a record gives back every UID as it was
// given, holding a UUID in its usual text as 16 bytes.
func TestServiceUID(t *testing.T) {
	for _, tc := range []struct {
		uid    types.UID
		binary bool
	}{
		{"0d6f2a3c-1b9e-4c7d-8a5f-3e2b1c0d9e8f", true},
		{"0D6F2A3C-1B9E-4C7D-8A5F-3E2B1C0D9E8F", false}, // not in the usual text
		{"00000000-0000-0000-0000-000000000000", false}, // the zero UUID: as text
		{"urn:uuid:0d6f2a3c-1b9e-4c7d-8a5f-3e2b1c0d9e8f", false},
		{"u-1", false},
		{"", false},
	} {
		u := compactUID(tc.uid)
		if got := u.UID(); got != tc.uid {
			t.Errorf("%q: given back as %q", tc.uid, got)
		}
		if binary := u.id != (uuid.UUID{}); binary != tc.binary {
			t.Errorf("%q: held as 16 bytes %v, want %v", tc.uid, binary, tc.binary)
		}
	}
}

// TestReduceSlice checks what a speaker keeps of an EndpointSlice: the
// nodes with a ready endpoint, once each, in order.
func TestReduceSlice(t *testing.T) {
	ready, notReady := true, false
	n1, n2, n3 := "node-1", "node-2", "node-3"
	ep := func(node *string, r *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{"10.1.0.1"}, NodeName: node, Conditions: discoveryv1.EndpointConditions{Ready: r}}
	}
	slice := func(labels map[string]string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: "shop", Labels: labels},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
	}
	web := map[string]string{discoveryv1.LabelServiceName: "web", "other": "x"}
	for _, tc := range []struct {
		name  string
		slice *discoveryv1.EndpointSlice
		want  []string // the nodes; nil: not kept
	}{
		{"ready, not ready, no condition (ready), no node, a second pod",
			slice(web, ep(&n3, &ready), ep(&n2, &notReady), ep(&n1, nil), ep(nil, &ready), ep(&n3, &ready)),
			[]string{"node-1", "node-3"}},
		{"no ready endpoint", slice(web, ep(&n1, &notReady)), nil},
		{"no endpoint", slice(web), nil},
		{"no Service label", slice(map[string]string{"other": "x"}, ep(&n1, &ready)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, kept := reduceSlice(tc.slice)
			if kept != (tc.want != nil) {
				t.Fatalf("kept %v, want %v", kept, tc.want != nil)
			}
			if tc.want == nil {
				return
			}
			if nodes := slices.Collect(got.eachNode()); got.service != "web" || !slices.Equal(nodes, tc.want) {
				t.Errorf("record of Service %q with nodes %q, want web with %q", got.service, nodes, tc.want)
			}
		})
	}
}

// TestRecordsEqual checks which updates of a Service or EndpointSlice
// kick a sync (records.Kind.Equal): those that change what the speaker
// reads, and no others.
func TestRecordsEqual(t *testing.T) {
	svc := func(ip, cond string, etp corev1.ServiceExternalTrafficPolicy) svcRecord {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp},
			Status: corev1.ServiceStatus{
				LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}},
				Conditions:   []metav1.Condition{{Type: "ironlb.io/IPAllocated", Status: metav1.ConditionStatus(cond)}},
			}}
		r, ok := reduceService(s, "ironlb.io/ironlb")
		if !ok {
			t.Fatalf("%v not kept", s)
		}
		return r
	}
	n1, n2 := "node-1", "node-2"
	ready := true
	ep := func(addr string, node *string, r *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: node, Conditions: discoveryv1.EndpointConditions{Ready: r}}
	}
	slice := func(eps ...discoveryv1.Endpoint) sliceRecord {
		r, ok := reduceSlice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: "shop",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, Endpoints: eps})
		if !ok {
			t.Fatal("slice not kept")
		}
		return r
	}
	cluster, local := corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal
	for _, tc := range []struct {
		name  string
		equal bool
		got   bool
	}{
		{"service: the controller's condition", true, svc("198.51.100.7", "False", cluster).equal(svc("198.51.100.7", "True", cluster))},
		{"service: an address", false, svc("198.51.100.7", "True", cluster).equal(svc("198.51.100.8", "True", cluster))},
		{"service: traffic policy", false, svc("198.51.100.7", "", cluster).equal(svc("198.51.100.7", "", local))},
		{"slice: a pod's address", true, slice(ep("10.0.0.1", &n1, &ready)).equal(slice(ep("10.0.0.9", &n1, &ready)))},
		{"slice: a second ready pod on the node", true,
			slice(ep("10.0.0.1", &n1, &ready)).equal(slice(ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n1, nil)))},
		{"slice: pods reordered", true,
			slice(ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n2, &ready)).equal(slice(ep("10.0.0.2", &n2, &ready), ep("10.0.0.1", &n1, &ready)))},
		{"slice: a pod on another node", false,
			slice(ep("10.0.0.1", &n1, &ready)).equal(slice(ep("10.0.0.1", &n1, &ready), ep("10.0.0.2", &n2, &ready)))},
	} {
		if tc.got != tc.equal {
			t.Errorf("%s: equal %v, want %v", tc.name, tc.got, tc.equal)
		}
	}
}
