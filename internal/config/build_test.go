package config

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func poolNames(c *Config) []string {
	var out []string
	for name := range c.Pools {
		out = append(out, name)
	}
	return sortedCopy(out)
}

func TestCrossObjectRules(t *testing.T) {
	withBFD := func(p v1alpha1.BGPPeer, profile string) v1alpha1.BGPPeer {
		p.Spec.BFDProfile = profile
		return p
	}
	withCommunities := func(a v1alpha1.BGPAnnouncement, cs ...string) v1alpha1.BGPAnnouncement {
		a.Spec.Communities = cs
		return a
	}
	tests := []struct {
		name  string
		in    Input
		pools []string
		want  []string
	}{
		{
			name:  "overlap: the newer pool is left out",
			in:    Input{Pools: []v1alpha1.IPPool{ippool("new", 5, "192.168.1.90-192.168.1.120"), ippool("old", 0, "192.168.1.87-192.168.1.97")}},
			pools: []string{"old"},
			want:  []string{`IPPool/new: spec.addresses[0]: 192.168.1.90-192.168.1.120 overlaps 192.168.1.87-192.168.1.97 of pool "old" (IPPool/old, spec.addresses[0]), which takes precedence because it was created first; an address can belong to one pool only`},
		},
		{
			name:  "overlap at the same time: name decides",
			in:    Input{Pools: []v1alpha1.IPPool{ippool("b", 0, "10.0.0.0/24"), ippool("a", 0, "10.0.0.7")}},
			pools: []string{"a"},
			want:  []string{`IPPool/b: spec.addresses[0]: 10.0.0.0/24 overlaps 10.0.0.7 of pool "a" (IPPool/a, spec.addresses[0]), which takes precedence because it was created at the same time and sorts first by kind and name; an address can belong to one pool only`},
		},
		{
			name:  "different families never overlap",
			in:    Input{Pools: []v1alpha1.IPPool{ippool("v4", 0, "0.0.0.0/0"), ippool("v6", 1, "2000::/3")}},
			pools: []string{"v4", "v6"},
		},
		{
			name:  "IPPool named like an older ConfigMap pool",
			in:    Input{ConfigMap: configMap(0, "address-pools:\n- {name: default, protocol: layer2, addresses: [192.168.1.87-192.168.1.97]}\n"), Pools: []v1alpha1.IPPool{ippool("default", 5, "10.0.0.0/24")}},
			pools: []string{"default"},
			want:  []string{`IPPool/default: metadata.name: pool name "default" is already used by ConfigMap metallb-system/config, which takes precedence because it was created first; pool names must be unique across IPPools and the legacy ConfigMap`},
		},
		{
			name: "ConfigMap newer than a clashing IPPool is left out whole",
			in: Input{
				ConfigMap: configMap(5, "address-pools:\n- {name: other, protocol: layer2, addresses: [172.16.0.0/24]}\n- {name: lan, protocol: layer2, addresses: [192.168.1.87-192.168.1.97]}\n"),
				Pools:     []v1alpha1.IPPool{ippool("lan", 0, "192.168.1.0/24")},
			},
			pools: []string{"lan"},
			want: []string{
				`ConfigMap metallb-system/config: address-pools[1].name: pool name "lan" is already used by IPPool/lan, which takes precedence because it was created first; pool names must be unique across IPPools and the legacy ConfigMap`,
				`ConfigMap metallb-system/config: address-pools[1].addresses[0]: 192.168.1.87-192.168.1.97 overlaps 192.168.1.0/24 of pool "lan" (IPPool/lan, spec.addresses[0]), which takes precedence because it was created first; an address can belong to one pool only`,
			},
		},
		{
			name:  "BFD profile defined twice",
			in:    Input{ConfigMap: configMap(0, "bfd-profiles:\n- name: fast\n"), BFDProfiles: []v1alpha1.BFDProfile{bfdprofile("fast", 1), bfdprofile("slow", 1)}},
			pools: nil,
			want:  []string{`BFDProfile/fast: metadata.name: BFD profile name "fast" is already used by ConfigMap metallb-system/config, which takes precedence because it was created first`},
		},
		{
			name: "same BGP session twice",
			in:   Input{BGPPeers: []v1alpha1.BGPPeer{bgppeer("tor-copy", 1, "10.0.0.1"), bgppeer("tor", 0, "10.0.0.1"), bgppeer("tor2", 0, "10.0.0.2")}},
			want: []string{`BGPPeer/tor-copy: spec: describes the same BGP session as BGPPeer/tor (tor): same peer address, port, source address and node selectors; BGPPeer/tor takes precedence because it was created first`},
		},
		{
			name: "peer naming a BFD profile that exists",
			in:   Input{BGPPeers: []v1alpha1.BGPPeer{withBFD(bgppeer("tor", 0, "10.0.0.1"), "fast")}, BFDProfiles: []v1alpha1.BFDProfile{bfdprofile("fast", 9)}},
		},
		{
			name:  "announcement naming a ConfigMap pool",
			in:    Input{ConfigMap: configMap(0, "address-pools:\n- {name: default, protocol: bgp, addresses: [10.0.0.0/24]}\n"), L2: []v1alpha1.L2Announcement{l2ann("also-l2", 1, "default")}},
			pools: []string{"default"},
		},
		{
			name: "community alias from the ConfigMap",
			in: Input{
				ConfigMap:        configMap(0, "bgp-communities:\n  no-adv: 65535:65282\n"),
				BGPAnnouncements: []v1alpha1.BGPAnnouncement{withCommunities(bgpann("out", 0), "no-adv")},
			},
		},
		{
			name: "community alias of a ConfigMap that is not in force",
			in: Input{
				ConfigMap:        configMap(0, "bgp-communities:\n  no-adv: 65535:65282\naddress-pools: oops\n"),
				BGPAnnouncements: []v1alpha1.BGPAnnouncement{withCommunities(bgpann("out", 0), "no-adv")},
			},
			want: []string{
				`ConfigMap metallb-system/config: address-pools: must be a list, not "oops"`,
				`BGPAnnouncement/out: spec.communities[0]: "no-adv" is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := Build(tt.in, nil)
			if diff := cmp.Diff(tt.want, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.pools, poolNames(c)); diff != "" {
				t.Errorf("pools (-want +got):\n%s", diff)
			}
			for _, p := range ps {
				if p.Outcome == Warning {
					continue
				}
				if got := c.versions[p.Object]; got.frag != nil {
					t.Errorf("%s has a problem but is in force", p.Object)
				}
			}
		})
	}
}

// TestBadPoolDoesNotAffectGoodOne adds broken and clashing objects next to
// a working pool and checks that the working pool, and what announces it,
// are exactly as before.
func TestBadPoolDoesNotAffectGoodOne(t *testing.T) {
	good := Input{
		Pools: []v1alpha1.IPPool{ippool("good", 0, "192.168.1.87-192.168.1.97")},
		L2:    []v1alpha1.L2Announcement{l2ann("all", 0)},
	}
	before, ps := Build(good, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}

	bad := good
	bad.Pools = append(bad.Pools,
		ippool("typo", 1, "192.168.1.98-192.168.1.9"),      // backwards
		ippool("thief", 2, "192.168.1.90"),                 // overlaps good
		ippool("fine", 4, "192.168.2.0/24", "192.168.2.7"), // overlaps itself
	)
	bad.ConfigMap = configMap(5, "address-pools:\n- {name: good, protocol: layer2, addresses: [192.168.1.88]}\n") // same name and overlap
	after, ps := Build(bad, before)
	if len(ps) != 5 {
		t.Errorf("got %d problems, want 5:\n%v", len(ps), errorStrings(ps))
	}
	for _, p := range ps {
		if p.Object.Name == "good" {
			t.Errorf("problem blamed on the good pool: %v", p)
		}
	}
	opts := cmp.Options{selectorComparer, addrComparer, cmpopts.IgnoreUnexported(Config{})}
	if diff := cmp.Diff(before.Pools, after.Pools, opts); diff != "" {
		t.Errorf("pools changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before.L2, after.L2, opts); diff != "" {
		t.Errorf("announcements changed (-before +after):\n%s", diff)
	}
}

// TestLastGoodVersionStaysInForce edits objects into invalid states and
// checks that their last valid version is used, across several Builds,
// until the object is fixed, deleted or replaced.
func TestLastGoodVersionStaysInForce(t *testing.T) {
	lan := ippool("lan", 0, "192.168.1.87-192.168.1.97")
	wan := ippool("wan", 1, "198.51.100.0/24")
	ann := bgpann("out", 0)
	ann.Spec.Communities = []string{"no-adv"}
	cm := configMap(0, "bgp-communities:\n  no-adv: 65535:65282\naddress-pools:\n- {name: legacy, protocol: layer2, addresses: [172.16.0.0/24]}\n")
	in := Input{ConfigMap: cm, Pools: []v1alpha1.IPPool{lan, wan}, BGPAnnouncements: []v1alpha1.BGPAnnouncement{ann}}
	c1, ps := Build(in, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}

	// 1. lan gets a typo, wan is edited to overlap the older lan, and the
	// ConfigMap loses its indentation: all three keep their last version,
	// and so does the announcement that needs the ConfigMap's alias.
	lanTypo := ippool("lan", 0, "192.168.1.87-192.168.1.9")
	wanOverlap := ippool("wan", 1, "192.168.1.0/24")
	badCM := configMap(0, "bgp-communities:\nno-adv: 65535:65282\n")
	in2 := Input{ConfigMap: badCM, Pools: []v1alpha1.IPPool{lanTypo, wanOverlap}, BGPAnnouncements: []v1alpha1.BGPAnnouncement{ann}}
	c2, ps := Build(in2, c1)
	want := []string{
		`ConfigMap metallb-system/config: unknown key "no-adv"; valid keys here are address-pools, bfd-profiles, bgp-communities, peers (the last valid version stays in force)`,
		`IPPool/lan: spec.addresses[0]: invalid range "192.168.1.87-192.168.1.9": start is after end (the last valid version stays in force)`,
		`IPPool/wan: spec.addresses[0]: 192.168.1.0/24 overlaps 192.168.1.87-192.168.1.97 of pool "lan" (IPPool/lan, spec.addresses[0]), which takes precedence because it was created first; an address can belong to one pool only (the last valid version stays in force)`,
	}
	if diff := cmp.Diff(want, errorStrings(ps)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	for _, p := range ps {
		if p.Outcome != KeptLastGood {
			t.Errorf("%v: outcome %v, want KeptLastGood", p, p.Outcome)
		}
	}
	opts := cmp.Options{selectorComparer, addrComparer, cmpopts.IgnoreUnexported(Config{})}
	if diff := cmp.Diff(c1, c2, opts); diff != "" {
		t.Errorf("Config changed (-before +after):\n%s", diff)
	}

	// 2. Still broken a Build later: still in force.
	c3, ps := Build(in2, c2)
	if len(ps) != 3 {
		t.Errorf("second Build: %v", errorStrings(ps))
	}
	if diff := cmp.Diff(c1, c3, opts); diff != "" {
		t.Errorf("Config changed on the second Build (-before +after):\n%s", diff)
	}

	// 3. lan is fixed with new addresses, wan deleted, and the ConfigMap
	// recreated (new UID), still broken: lan takes its new version; wan
	// and the ConfigMap are gone, so the alias is too, and the
	// announcement keeps the version that had it resolved.
	lanFixed := ippool("lan", 0, "192.168.1.87-192.168.1.99")
	badCM2 := badCM.DeepCopy()
	badCM2.UID = types.UID("recreated")
	c4, ps := Build(Input{ConfigMap: badCM2, Pools: []v1alpha1.IPPool{lanFixed}, BGPAnnouncements: []v1alpha1.BGPAnnouncement{ann}}, c3)
	want = []string{
		`ConfigMap metallb-system/config: unknown key "no-adv"; valid keys here are address-pools, bfd-profiles, bgp-communities, peers`,
		`BGPAnnouncement/out: spec.communities[0]: "no-adv" is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap (the last valid version stays in force)`,
	}
	if diff := cmp.Diff(want, errorStrings(ps)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lan"}, poolNames(c4)); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	if got := c4.Pools["lan"].Ranges[0].To.String(); got != "192.168.1.99" {
		t.Errorf("lan ends at %s, want the fixed version's 192.168.1.99", got)
	}
	if len(c4.BGPAnnouncements) != 1 || len(c4.BGPAnnouncements[0].Communities) != 1 || c4.BGPAnnouncements[0].Communities[0] != (Community{High: 65535, Low: 65282}) {
		t.Errorf("announcement lost its last valid communities: %+v", c4.BGPAnnouncements)
	}
}

// TestLastGoodVersionThatNowClashes: a kept version must still fit next to
// older objects; if an older object now takes its addresses, it goes.
func TestLastGoodVersionThatNowClashes(t *testing.T) {
	c1, ps := Build(Input{Pools: []v1alpha1.IPPool{ippool("old", 0, "10.0.0.0/24"), ippool("new", 1, "10.0.1.0/24")}}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	c2, ps := Build(Input{Pools: []v1alpha1.IPPool{ippool("old", 0, "10.0.0.0/23"), ippool("new", 1, "bogus")}}, c1)
	want := []string{`IPPool/new: spec.addresses[0]: invalid IP address "bogus"`}
	if diff := cmp.Diff(want, errorStrings(ps)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if ps[0].Outcome != LeftOut {
		t.Errorf("outcome %v, want LeftOut", ps[0].Outcome)
	}
	if diff := cmp.Diff([]string{"old"}, poolNames(c2)); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
}

// TestOrderDoesNotMatter: the Config depends on the objects, not on the
// order the API server listed them in.
func TestOrderDoesNotMatter(t *testing.T) {
	in := Input{
		ConfigMap: readConfigMap(t, "bgp.yaml"),
		Pools: []v1alpha1.IPPool{
			ippool("a", 3, "10.1.0.0/24"), ippool("b", 3, "10.1.0.128/25"), ippool("c", 1, "10.1.0.5"), ippool("d", 2, "10.2.0.0/16"),
		},
		L2:               []v1alpha1.L2Announcement{l2ann("x", 0, "a", "zz"), l2ann("y", 0)},
		BGPPeers:         []v1alpha1.BGPPeer{bgppeer("p1", 0, "10.9.0.1"), bgppeer("p2", 0, "10.9.0.1"), bgppeer("p3", 0, "10.9.0.3")},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{bgpann("m", 0, "d"), bgpann("n", 0)},
		BFDProfiles:      []v1alpha1.BFDProfile{bfdprofile("fast", 0), bfdprofile("x", 0)},
	}
	c, ps := Build(in, nil)
	want := dump(c, ps)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(in.Pools), func(i, j int) { in.Pools[i], in.Pools[j] = in.Pools[j], in.Pools[i] })
		r.Shuffle(len(in.L2), func(i, j int) { in.L2[i], in.L2[j] = in.L2[j], in.L2[i] })
		r.Shuffle(len(in.BGPPeers), func(i, j int) { in.BGPPeers[i], in.BGPPeers[j] = in.BGPPeers[j], in.BGPPeers[i] })
		r.Shuffle(len(in.BGPAnnouncements), func(i, j int) {
			in.BGPAnnouncements[i], in.BGPAnnouncements[j] = in.BGPAnnouncements[j], in.BGPAnnouncements[i]
		})
		r.Shuffle(len(in.BFDProfiles), func(i, j int) { in.BFDProfiles[i], in.BFDProfiles[j] = in.BFDProfiles[j], in.BFDProfiles[i] })
		c, ps := Build(in, nil)
		if diff := cmp.Diff(want, dump(c, ps)); diff != "" {
			t.Fatalf("shuffled input gives another Config (-want +got):\n%s", diff)
		}
	}
}

// TestScenarioEquivalence: the user's ConfigMap from SCENARIO.md and the
// equivalent IPPool plus L2Announcement give the same pools and
// announcements. Source differs by construction; Protocol is only
// recorded for legacy pools (the announcement objects are what act on it).
func TestScenarioEquivalence(t *testing.T) {
	legacy, ps := Build(Input{ConfigMap: readConfigMap(t, "scenario.yaml")}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	crd, ps := Build(Input{
		Pools: []v1alpha1.IPPool{ippool("default", 0, "192.168.1.87-192.168.1.97")},
		L2:    []v1alpha1.L2Announcement{l2ann("default", 0, "default")},
	}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	opts := cmp.Options{
		selectorComparer, addrComparer,
		cmpopts.IgnoreFields(Pool{}, "Source", "Protocol"),
		cmpopts.IgnoreFields(L2Announcement{}, "Source"),
	}
	if diff := cmp.Diff(legacy.Pools, crd.Pools, opts); diff != "" {
		t.Errorf("Pools (-legacy +crd):\n%s", diff)
	}
	if diff := cmp.Diff(legacy.L2, crd.L2, opts); diff != "" {
		t.Errorf("L2 (-legacy +crd):\n%s", diff)
	}
	if len(crd.L2) != 1 || len(crd.Pools) != 1 {
		t.Errorf("got %d pools and %d announcements, want 1 and 1", len(crd.Pools), len(crd.L2))
	}
}

// TestBGPEquivalence does the same for a bgp pool, its advertisements and a
// peer.
func TestBGPEquivalence(t *testing.T) {
	legacy, ps := Build(Input{ConfigMap: configMap(0, `
peers:
- {my-asn: 64500, peer-asn: 64501, peer-address: 10.0.0.1, hold-time: 30s, node-selectors: [{match-labels: {rack: "1"}}]}
address-pools:
- name: public
  protocol: bgp
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - {aggregation-length: 24, localpref: 50, communities: [no-export, "64500:1"]}
`)}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	peer := bgppeer("tor", 0, "10.0.0.1")
	peer.Spec.HoldTime = &metav1.Duration{Duration: 30e9}
	peer.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
	ann := bgpann("public", 0, "public")
	ann.Spec.AggregationLength = new(int32(24))
	ann.Spec.LocalPref = new(uint32(50))
	ann.Spec.Communities = []string{"no-export", "64500:1"}
	crd, ps := Build(Input{
		Pools:            []v1alpha1.IPPool{ippool("public", 0, "198.51.100.0/24")},
		BGPPeers:         []v1alpha1.BGPPeer{peer},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{ann},
	}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	opts := cmp.Options{
		selectorComparer, addrComparer,
		cmpopts.IgnoreFields(Pool{}, "Source", "Protocol"),
		cmpopts.IgnoreFields(BGPAnnouncement{}, "Source"),
		cmpopts.IgnoreFields(BGPPeer{}, "Source", "Name"),
	}
	if diff := cmp.Diff(legacy.Pools, crd.Pools, opts); diff != "" {
		t.Errorf("Pools (-legacy +crd):\n%s", diff)
	}
	if diff := cmp.Diff(legacy.BGPAnnouncements, crd.BGPAnnouncements, opts); diff != "" {
		t.Errorf("BGPAnnouncements (-legacy +crd):\n%s", diff)
	}
	if diff := cmp.Diff(legacy.BGPPeers, crd.BGPPeers, opts); diff != "" {
		t.Errorf("BGPPeers (-legacy +crd):\n%s", diff)
	}
}

// TestBuildDoesNotModifyInput guards the "pure" promise.
func TestBuildDoesNotModifyInput(t *testing.T) {
	in := Input{
		ConfigMap: readConfigMap(t, "bgp.yaml"),
		Pools:     []v1alpha1.IPPool{ippool("a", 0, "10.1.0.0/24")},
		L2:        []v1alpha1.L2Announcement{l2ann("x", 0, "a")},
	}
	in.Pools[0].Labels = map[string]string{"k": "v"}
	copyCM := in.ConfigMap.DeepCopy()
	copyPool := in.Pools[0].DeepCopy()
	c, _ := Build(in, nil)
	c.Pools["a"].Labels["k"] = "changed" // a caller breaking the rules must not reach the input
	if diff := cmp.Diff(copyCM, in.ConfigMap); diff != "" {
		t.Errorf("ConfigMap modified (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(copyPool, &in.Pools[0]); diff != "" {
		t.Errorf("IPPool modified (-before +after):\n%s", diff)
	}
}
