package speaker

import (
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/config"
)

// bgpConfig has pool "web" (203.0.113.0/28) announced over BGP by the
// nodes labelled bgp=yes, and Layer 2 pool "lan" (198.51.100.80/28).
func bgpConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, problems := config.Build(config.Input{
		Pools: []v1alpha1.IPPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.0/28"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.80/28"}}},
		},
		L2: []v1alpha1.L2Announcement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"lan"}}}},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1alpha1.BGPAnnouncementSpec{
			IPPools:       []string{"web"},
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}},
		}}},
	}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

// TestRouteInput checks that a turn's routeInput changes with everything
// bgp.Routes reads (the config, the node's labels, the addresses it
// announces and their pools), and with nothing else: the order of the
// Services, a Layer 2 address, another node.
func TestRouteInput(t *testing.T) {
	cfg, other := bgpConfig(t), bgpConfig(t)
	labels := map[string]string{"bgp": "yes", "zone": "a"}
	svc := func(key string, ips ...string) announce.Service {
		s := announce.Service{Key: key}
		for _, ip := range ips {
			s.IPs = append(s.IPs, netip.MustParseAddr(ip))
		}
		return s
	}
	base := []announce.Service{svc("a/one", "203.0.113.1"), svc("a/two", "203.0.113.2"), svc("a/lan", "198.51.100.81")}
	b := newBGP(bgpOptions{Node: "node-1"})
	input := func(cfg *config.Config, labels map[string]string, nodes map[string]announce.Node, services []announce.Service) routeInput {
		n := nodes["node-1"]
		n.Labels = labels
		nodes["node-1"] = n
		v := announce.View{Config: cfg, Nodes: nodes, Services: services}
		return b.routeInput(cfg, labels, announce.NewRound(v))
	}
	twoNodes := func() map[string]announce.Node {
		return map[string]announce.Node{"node-1": {Name: "node-1", Ready: true}, "node-2": {Name: "node-2", Ready: true, Labels: map[string]string{"bgp": "yes"}}}
	}
	want := input(cfg, labels, twoNodes(), base)
	if want.n != 2 {
		t.Fatalf("the base turn announces %d addresses over BGP, want 2", want.n)
	}
	for _, tc := range []struct {
		name     string
		cfg      *config.Config
		labels   map[string]string
		nodes    map[string]announce.Node
		services []announce.Service
		same     bool
	}{
		{"the same turn again", cfg, labels, twoNodes(), base, true},
		{"the Services in another order", cfg, labels, twoNodes(), []announce.Service{base[2], base[1], base[0]}, true},
		{"the labels in another map", cfg, map[string]string{"zone": "a", "bgp": "yes"}, twoNodes(), base, true},
		{"a Layer 2 address more", cfg, labels, twoNodes(), append(slices.Clone(base), svc("a/lan2", "198.51.100.82")), true},
		{"another node gone", cfg, labels, map[string]announce.Node{"node-1": {Name: "node-1", Ready: true}}, base, true},
		{"a BGP address more", cfg, labels, twoNodes(), append(slices.Clone(base), svc("a/three", "203.0.113.3")), false},
		{"a BGP address less", cfg, labels, twoNodes(), base[1:], false},
		{"a BGP address changed", cfg, labels, twoNodes(), []announce.Service{svc("a/one", "203.0.113.5"), base[1], base[2]}, false},
		{"a rebuilt config", other, labels, twoNodes(), base, false},
		{"a label changed", cfg, map[string]string{"bgp": "yes", "zone": "b"}, twoNodes(), base, false},
		{"the node no longer selected", cfg, map[string]string{"zone": "a"}, twoNodes(), base, false},
		{"the node not Ready", cfg, labels, map[string]announce.Node{"node-1": {Name: "node-1"}, "node-2": {Name: "node-2", Ready: true}}, base, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := input(tc.cfg, tc.labels, tc.nodes, tc.services)
			if same := got == want; same != tc.same {
				t.Errorf("routeInput %+v, base %+v: same = %v, want %v", got, want, same, tc.same)
			}
		})
	}
}
