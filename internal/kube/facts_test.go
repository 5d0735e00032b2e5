package kube

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

func TestServes(t *testing.T) {
	const class = "ironlb.io/lb"
	tests := []struct {
		name string
		typ  corev1.ServiceType
		cls  *string
		want bool
	}{
		{"LoadBalancer, no class", corev1.ServiceTypeLoadBalancer, nil, true},
		{"LoadBalancer, our class", corev1.ServiceTypeLoadBalancer, new(class), true},
		{"LoadBalancer, another class", corev1.ServiceTypeLoadBalancer, new("example.com/lb"), false},
		{"NodePort", corev1.ServiceTypeNodePort, nil, false},
		{"ClusterIP with our class", corev1.ServiceTypeClusterIP, new(class), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: tt.typ, LoadBalancerClass: tt.cls}}
			if got := Serves(svc, class); got != tt.want {
				t.Errorf("Serves = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIngressIPs(t *testing.T) {
	svc := &corev1.Service{Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
		{IP: "2001:db8::7"}, {Hostname: "lb.example"}, {IP: "::ffff:198.51.100.7"}, {IP: "not an address"}, {IP: "198.51.100.8"},
	}}}}
	want := []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}
	if diff := cmp.Diff(want, IngressIPs(svc), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("IngressIPs (-want +got):\n%s", diff)
	}
}

func TestEndpointReady(t *testing.T) {
	for _, tt := range []struct {
		ready *bool
		want  bool
	}{{nil, true}, {new(true), true}, {new(false), false}} {
		if got := EndpointReady(discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: tt.ready}}); got != tt.want {
			t.Errorf("EndpointReady(ready %v) = %v, want %v", tt.ready, got, tt.want)
		}
	}
}

func TestNodeFacts(t *testing.T) {
	tests := []struct {
		name     string
		node     corev1.Node
		ready    bool
		ip       string
		excluded bool
	}{
		{"no status", corev1.Node{}, false, "invalid IP", false},
		{
			"ready, IPv4 preferred over an earlier IPv6",
			corev1.Node{Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}, {Type: corev1.NodeInternalIP, Address: "2001:db8::1"}, {Type: corev1.NodeInternalIP, Address: "198.51.100.11"}},
			}},
			true, "198.51.100.11", false,
		},
		{
			"not ready, IPv6 only, excluded",
			corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelExcludeFromLoadBalancers: ""}},
				Status: corev1.NodeStatus{
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}},
					Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "bad"}, {Type: corev1.NodeInternalIP, Address: "2001:db8::2"}, {Type: corev1.NodeInternalIP, Address: "2001:db8::3"}},
				},
			},
			false, "2001:db8::2", true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NodeReady(&tt.node); got != tt.ready {
				t.Errorf("NodeReady = %v, want %v", got, tt.ready)
			}
			if got := InternalIP(&tt.node).String(); got != tt.ip {
				t.Errorf("InternalIP = %s, want %s", got, tt.ip)
			}
			if got := Excluded(tt.node.Labels); got != tt.excluded {
				t.Errorf("Excluded = %v, want %v", got, tt.excluded)
			}
		})
	}
}

// TestInputVersion checks what moves the version (what config.Build reads)
// and what does not (status writes, which bump only resourceVersion).
func TestInputVersion(t *testing.T) {
	base := func() config.Input {
		return config.Input{
			ConfigMap: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "10"}},
			Pools:     []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "lan", Generation: 1, ResourceVersion: "11", Labels: map[string]string{"a": "1"}}}},
			L2:        []v1alpha1.L2Announcement{{ObjectMeta: metav1.ObjectMeta{Name: "l2", Generation: 1}}},
		}
	}
	v0 := InputVersion(base())
	tests := []struct {
		name    string
		edit    func(*config.Input)
		changed bool
	}{
		{"nothing", func(*config.Input) {}, false},
		{"a pool's status written", func(in *config.Input) { in.Pools[0].ResourceVersion = "12" }, false},
		{"a pool's spec", func(in *config.Input) { in.Pools[0].Generation = 2 }, true},
		{"a pool's labels", func(in *config.Input) { in.Pools[0].Labels = map[string]string{"a": "2"} }, true},
		{"a pool deleted", func(in *config.Input) { in.Pools[0].DeletionTimestamp = &metav1.Time{} }, true},
		{"the ConfigMap", func(in *config.Input) { in.ConfigMap.ResourceVersion = "13" }, true},
		{"the ConfigMap removed", func(in *config.Input) { in.ConfigMap = nil }, true},
		{"an announcement added", func(in *config.Input) {
			in.L2 = append(in.L2, v1alpha1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "l2b", Generation: 1}})
		}, true},
		{"a BFD profile added", func(in *config.Input) {
			in.BFDProfiles = []v1alpha1.BFDProfile{{ObjectMeta: metav1.ObjectMeta{Name: "fast", Generation: 1}}}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.edit(&in)
			if got := InputVersion(in) != v0; got != tt.changed {
				t.Errorf("version changed = %v, want %v", got, tt.changed)
			}
		})
	}
}
