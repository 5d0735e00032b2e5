package announce

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// testConfig has pool "l2" (198.51.100.80/28, 2001:db8:1::80/124),
// announced by an L2Announcement for nodes labelled l2=yes on eth0 or
// eth1, and pool "bgp" (203.0.113.0/28) with no L2Announcement, announced
// by a BGPAnnouncement for nodes labelled bgp=yes to every peer.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	in := config.Input{
		Pools: []v1alpha1.IPPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "l2", UID: "1"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.80/28", "2001:db8:1::80/124"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "bgp", UID: "2"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.0/28"}}},
		},
		L2: []v1alpha1.L2Announcement{{
			ObjectMeta: metav1.ObjectMeta{Name: "lan", UID: "3"},
			Spec: v1alpha1.L2AnnouncementSpec{
				IPPools:       []string{"l2"},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}},
				Interfaces:    []string{"eth0", "eth1"},
			},
		}},
		BGPPeers: []v1alpha1.BGPPeer{{
			ObjectMeta: metav1.ObjectMeta{Name: "router", UID: "4"},
			Spec:       v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "192.0.2.1"},
		}},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{{
			ObjectMeta: metav1.ObjectMeta{Name: "routed", UID: "5"},
			Spec: v1alpha1.BGPAnnouncementSpec{
				IPPools:       []string{"bgp"},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}},
			},
		}},
	}
	cfg, problems := config.Build(in, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

func nodes(ns ...Node) map[string]Node {
	out := map[string]Node{}
	for _, n := range ns {
		out[n.Name] = n
	}
	return out
}

// ready is a Ready node selected by both of testConfig's announcements,
// with labels added ("key=value").
func ready(name string, labels ...string) Node {
	l := map[string]string{"l2": "yes", "bgp": "yes"}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		l[k] = v
	}
	return Node{Name: name, Ready: true, Labels: l}
}

// excluded is n labelled v1alpha1.LabelExcludeFromLoadBalancers, as
// kube.Excluded reads it.
func excluded(n Node) Node {
	n.Excluded = true
	return n
}

func eth0(mac string) []Iface { return []Iface{{Name: "eth0", MAC: mac}} }

var (
	ip1   = netip.MustParseAddr("198.51.100.88")
	ip6   = netip.MustParseAddr("2001:db8:1::88")
	bgpIP = netip.MustParseAddr("203.0.113.5")
)

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	return out
}

func notReady(n Node) Node {
	n.Ready = false
	return n
}
