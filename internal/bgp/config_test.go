package bgp

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// legacyConfig is a MetalLB-style ConfigMap with two peers (one only for
// rack-a nodes, with BFD), two BGP pools and a Layer 2 pool.
const legacyConfig = `
peers:
- peer-address: 198.51.100.1
  peer-asn: 64500
  my-asn: 64512
  hold-time: 9s
  password: s3cret
- peer-address: 2001:db8:1::1
  peer-asn: 64500
  my-asn: 64500
  router-id: 198.51.100.250
  bfd-profile: fast
  node-selectors:
  - match-labels:
      rack: a
bfd-profiles:
- name: fast
  receive-interval: 300
  transmit-interval: 200
  detect-multiplier: 4
  echo-mode: true
bgp-communities:
  web: 64512:100
address-pools:
- name: web
  protocol: bgp
  addresses: [203.0.113.96/28, 2001:db8:3::/120]
  bgp-advertisements:
  - communities: [web, no-export, "large:64512:1:2"]
    localpref: 200
  - aggregation-length: 28
    aggregation-length-v6: 120
- name: db
  protocol: bgp
  addresses: [203.0.113.112/28]
- name: lan
  protocol: layer2
  addresses: [198.51.100.200-198.51.100.210]
`

func buildLegacy(t *testing.T, data string) *config.Config {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: "metallb-system", UID: "cm"},
		Data:       map[string]string{config.LegacyConfigKey: data},
	}
	cfg, problems := config.Build(config.Input{ConfigMap: cm}, nil)
	for _, p := range problems {
		if p.Outcome != config.Warning {
			t.Fatalf("config: %v", p)
		}
	}
	return cfg
}

func TestPeersFor(t *testing.T) {
	cfg := buildLegacy(t, legacyConfig)
	v4 := Peer{
		Name: "peers[0]", Address: netip.MustParseAddr("198.51.100.1"), Port: 179, MyASN: 64512, PeerASN: 64500,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, Password: "s3cret",
	}
	v6 := Peer{
		Name: "peers[1]", Address: netip.MustParseAddr("2001:db8:1::1"), Port: 179, MyASN: 64500, PeerASN: 64500,
		HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second,
		BFD: &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 200 * time.Millisecond, DetectMultiplier: 4},
	}
	for _, tc := range []struct {
		name     string
		labels   map[string]string
		want     []Peer
		problems []string
	}{
		{"rack a", map[string]string{"rack": "a"}, []Peer{v4, v6}, []string{"echo mode is not supported"}},
		{"rack b", map[string]string{"rack": "b"}, []Peer{v4}, nil},
		{"no labels", nil, []Peer{v4}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := PeersFor(cfg, tc.labels, nil)
			if diff := cmp.Diff(tc.want, got, cmpAddrs); diff != "" {
				t.Errorf("PeersFor (-want +got):\n%s", diff)
			}
			checkProblems(t, tc.problems, problems)
		})
	}
}

func TestPeersForPasswordSecret(t *testing.T) {
	peer := func(name, addr string) v1alpha1.BGPPeer {
		return v1alpha1.BGPPeer{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name)},
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: addr,
				PasswordSecret: &corev1.SecretReference{Name: "bgp-" + name, Namespace: "ironlb-system"}},
		}
	}
	cfg, problems := config.Build(config.Input{BGPPeers: []v1alpha1.BGPPeer{peer("tor1", "198.51.100.1"), peer("tor2", "198.51.100.2")}}, nil)
	if len(problems) > 0 {
		t.Fatalf("config: %v", problems)
	}
	got, ps := PeersFor(cfg, nil, Passwords{{Namespace: "ironlb-system", Name: "bgp-tor1"}: "pw1"})
	if len(got) != 1 || got[0].Name != "tor1" || got[0].Password != "pw1" {
		t.Errorf("PeersFor = %+v, want tor1 with its password only", got)
	}
	checkProblems(t, []string{"BGPPeer/tor2: password Secret ironlb-system/bgp-tor2 not found"}, ps)
}

func checkProblems(t *testing.T, want []string, got []error) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems %v, want %d like %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(got[i].Error(), w) {
			t.Errorf("problem %d: %q does not say %q", i, got[i], w)
		}
	}
}

func TestRouterIDFor(t *testing.T) {
	cfg := buildLegacy(t, legacyConfig)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		nodeIP string
		want   string
	}{
		{"peer sets it", map[string]string{"rack": "a"}, "198.51.100.11", "198.51.100.250"},
		{"node's address", nil, "198.51.100.11", "198.51.100.11"},
		{"IPv6-only node", nil, "2001:db8:1::11", "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := RouterIDFor(cfg, tc.labels, netip.MustParseAddr(tc.nodeIP))
			if got.String() != tc.want {
				t.Errorf("RouterIDFor = %s, want %s", got, tc.want)
			}
		})
	}
}

// routesFor collects Routes for the addresses by pool (of a node without
// labels), sorted by prefix.
func routesFor(cfg *config.Config, byPool map[string][]netip.Addr) []Route {
	addrs := func(yield func(string, netip.Addr) bool) {
		for _, pool := range slices.Sorted(maps.Keys(byPool)) {
			for _, a := range byPool[pool] {
				if !yield(pool, a) {
					return
				}
			}
		}
	}
	out := slices.Collect(Routes(cfg, nil, addrs))
	slices.SortStableFunc(out, func(x, y Route) int { return comparePrefixes(x.Prefix, y.Prefix) })
	return out
}

func TestRoutes(t *testing.T) {
	cfg := buildLegacy(t, legacyConfig)
	lp := uint32(200)
	webAttrs := func(p string) Route {
		return Route{Prefix: netip.MustParsePrefix(p), LocalPref: &lp,
			Communities:      []uint32{64512<<16 | 100, 0xffffff01},
			LargeCommunities: [][3]uint32{{64512, 1, 2}}}
	}
	plain := func(p string) Route { return Route{Prefix: netip.MustParsePrefix(p)} }
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		addrs map[string][]netip.Addr
		want  []Route
	}{
		{"nothing", nil, nil},
		{
			"one IPv4 address: a /32 and the /28 aggregate",
			map[string][]netip.Addr{"web": addrs("203.0.113.100")},
			[]Route{plain("203.0.113.96/28"), webAttrs("203.0.113.100/32")},
		},
		{
			"two addresses share the aggregate",
			map[string][]netip.Addr{"web": addrs("203.0.113.100", "203.0.113.101")},
			[]Route{plain("203.0.113.96/28"), webAttrs("203.0.113.100/32"), webAttrs("203.0.113.101/32")},
		},
		{
			"IPv6, and a pool with the default advertisement",
			map[string][]netip.Addr{"web": addrs("2001:db8:3::5"), "db": addrs("203.0.113.113")},
			[]Route{plain("203.0.113.113/32"), plain("2001:db8:3::/120"), webAttrs("2001:db8:3::5/128")},
		},
		{
			"Layer 2 pools are not announced",
			map[string][]netip.Addr{"lan": addrs("198.51.100.200")},
			nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := routesFor(cfg, tc.addrs)
			if diff := cmp.Diff(tc.want, got, cmpAddrs); diff != "" {
				t.Errorf("Routes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoutesPeersAndNodes(t *testing.T) {
	lp := uint32(50)
	cfg := &config.Config{BGPAnnouncements: []*config.BGPAnnouncement{
		{Pools: []string{"p"}, AggregationLength: 32, AggregationLengthV6: 128, Peers: []string{"tor1"}, LocalPref: &lp},
		{Pools: []string{"p"}, AggregationLength: 24, AggregationLengthV6: 64, NodeSelectors: nil,
			Communities: []config.Community{{Large: true, Global: 1, Local1: 2, Local2: 3}}},
	}}
	got := routesFor(cfg, map[string][]netip.Addr{"p": {netip.MustParseAddr("203.0.113.100")}})
	want := []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), LargeCommunities: [][3]uint32{{1, 2, 3}}},
		{Prefix: netip.MustParsePrefix("203.0.113.100/32"), Peers: []string{"tor1"}, LocalPref: &lp},
	}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}
}
