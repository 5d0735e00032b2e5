package announce

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// bgpVerdicts returns what BGP yields for node, by address: "" for an
// address node announces, else the refusal.
func bgpVerdicts(r *Round, node string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for v := range r.BGP(node) {
		out[v.IP] = v.Refusal.String()
	}
	return out
}

func TestBGP(t *testing.T) {
	cfg := testConfig(t)
	bgpIP2 := netip.MustParseAddr("203.0.113.6")
	svc := func(key string, ips ...netip.Addr) Service { return Service{Key: key, IPs: ips} }
	localSvc := func(key string, endpoints ...string) Service {
		s := Service{Key: key, IPs: []netip.Addr{bgpIP}, Local: true, EndpointNodes: map[string]bool{}}
		for _, n := range endpoints {
			s.EndpointNodes[n] = true
		}
		return s
	}
	three := nodes(ready("node-1"), ready("node-2"), ready("node-3"))
	tests := []struct {
		name string
		view View
		// want is, per node, per address, "" when the node announces it
		// or why not.
		want map[string]map[netip.Addr]string
	}{
		{name: "every eligible node announces", view: View{Nodes: three, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {bgpIP: ""}, "node-2": {bgpIP: ""}, "node-3": {bgpIP: ""}}},
		{name: "Layer 2 addresses and addresses outside every pool are not yielded",
			view: View{Nodes: three, Services: []Service{svc("a/x", ip1, netip.MustParseAddr("192.0.2.77"), bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {bgpIP: ""}}},
		{name: "not Ready, excluded, not selected",
			view: View{Nodes: nodes(Node{Name: "node-1", Labels: map[string]string{"bgp": "yes"}}, excluded(ready("node-2")), Node{Name: "node-3", Ready: true}), Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{
				"node-1": {bgpIP: "not Ready"},
				"node-2": {bgpIP: "labelled " + v1alpha1.LabelExcludeFromLoadBalancers},
				"node-3": {bgpIP: "not selected by any BGPAnnouncement's nodeSelectors"},
			}},
		{name: "a node the view does not know is not Ready", view: View{Nodes: three, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-9": {bgpIP: "not Ready"}}},
		{name: "the membership does not count", view: View{Nodes: three, Alive: map[string]bool{"node-1": true}, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-2": {bgpIP: ""}}},
		{name: "data path down: that node withdraws",
			view: View{Nodes: three, DataPathDown: map[string]bool{"node-1": true}, DataPathUp: map[string]bool{"node-2": true, "node-3": true}, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {bgpIP: "kube-proxy's health endpoint fails"}, "node-2": {bgpIP: ""}}},
		{name: "data path down on every node: ignored",
			view: View{Nodes: three, DataPathDown: map[string]bool{"node-1": true, "node-2": true, "node-3": true}, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {bgpIP: ""}, "node-2": {bgpIP: ""}}},
		{name: "externalTrafficPolicy Local: endpoint nodes only",
			view: View{Nodes: three, Services: []Service{localSvc("a/x", "node-2"), svc("a/y", bgpIP2)}},
			want: map[string]map[netip.Addr]string{
				"node-1": {bgpIP: "no ready endpoint of a/x (externalTrafficPolicy: Local)", bgpIP2: ""},
				"node-2": {bgpIP: "", bgpIP2: ""},
			}},
		{name: "shared by two Local Services: an endpoint of either",
			view: View{Nodes: three, Services: []Service{localSvc("a/x", "node-2"), localSvc("a/y", "node-3")}},
			want: map[string]map[netip.Addr]string{
				"node-1": {bgpIP: "no ready endpoint of a/x, a/y (externalTrafficPolicy: Local)"},
				"node-2": {bgpIP: ""},
				"node-3": {bgpIP: ""},
			}},
		{name: "shared by a Local and a Cluster Service: every node",
			view: View{Nodes: three, Services: []Service{localSvc("a/x", "node-2"), svc("a/y", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {bgpIP: ""}, "node-2": {bgpIP: ""}, "node-3": {bgpIP: ""}}},
		{name: "a node check comes before the endpoints",
			view: View{Nodes: nodes(excluded(ready("node-2"))), Services: []Service{localSvc("a/x", "node-2")}},
			want: map[string]map[netip.Addr]string{"node-2": {bgpIP: "labelled " + v1alpha1.LabelExcludeFromLoadBalancers}}},
		{name: "no config: nothing", view: View{Nodes: three, Services: []Service{svc("a/x", bgpIP)}},
			want: map[string]map[netip.Addr]string{"node-1": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no config: nothing" {
				tt.view.Config = cfg
			}
			r := NewRound(tt.view)
			for node, want := range tt.want {
				if diff := cmp.Diff(want, bgpVerdicts(r, node)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", node, diff)
				}
			}
		})
	}
}

// TestBGPAnnouncements checks that a verdict names the announcements
// that select the node, whatever its refusal: ironlbctl matches them
// with the node's sessions.
func TestBGPAnnouncements(t *testing.T) {
	in := config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.0/28"}}}},
		BGPPeers: []v1alpha1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "192.0.2.1"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "192.0.2.2"}},
		},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{
			{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}, Peers: []string{"a"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "rack-b"}, Spec: v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}, Peers: []string{"b"},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "b"}}}}},
		},
	}
	cfg, problems := config.Build(in, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	v := View{Config: cfg,
		Nodes: nodes(
			Node{Name: "node-a", Ready: true, Labels: map[string]string{"rack": "a"}},
			Node{Name: "node-b", Ready: true, Labels: map[string]string{"rack": "b"}},
			Node{Name: "down-b", Labels: map[string]string{"rack": "b"}},
		),
		Services: []Service{{Key: "a/x", IPs: []netip.Addr{bgpIP}}},
	}
	r := NewRound(v)
	for node, want := range map[string][]string{"node-a": {"all"}, "node-b": {"all", "rack-b"}, "down-b": {"all", "rack-b"}} {
		var got []string
		for v := range r.BGP(node) {
			for _, a := range v.Announcements {
				got = append(got, a.Source.Name)
			}
			if v.Pool != "routed" {
				t.Errorf("%s: pool %q, want routed", node, v.Pool)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: announcements %v, want %v", node, got, want)
		}
	}
}

// BenchmarkBGP is one speaker's BGP round in a cluster of 10,000
// Services, each with its own address, half of them Local, and 100 nodes:
// NewRound and one BGP pass for one node. The checks on the node are made
// once for the pool, so the work grows with the addresses, not with
// addresses x nodes.
func BenchmarkBGP(b *testing.B) {
	in := config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"10.96.0.0/16"}}}},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{{ObjectMeta: metav1.ObjectMeta{Name: "all"},
			Spec: v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}}}},
	}
	cfg, problems := config.Build(in, nil)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	ns := map[string]Node{}
	for i := range 100 {
		n := ready(fmt.Sprintf("node-%03d", i))
		ns[n.Name] = n
	}
	var svcs []Service
	ip := netip.MustParseAddr("10.96.0.0")
	endpoints := map[string]bool{"node-001": true}
	for i := range 10000 {
		ip = ip.Next()
		svcs = append(svcs, Service{Key: fmt.Sprintf("ns/svc-%d", i), IPs: []netip.Addr{ip}, Local: i%2 == 0, EndpointNodes: endpoints})
	}
	v := View{Config: cfg, Nodes: ns, Services: svcs}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for v := range NewRound(v).BGP("node-001") {
			if !v.Refusal.Refused() {
				n++
			}
		}
		if n != len(svcs) {
			b.Fatalf("%d addresses announced, want %d", n, len(svcs))
		}
	}
}
