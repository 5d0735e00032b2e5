package config

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// FuzzLegacyConfigMap feeds arbitrary text to the legacy ConfigMap parser.
// It must never panic, and whatever it accepts must be a sound Config: every
// range well formed, no two pools sharing an address, every announcement and
// peer consistent with the pools and profiles in force.
func FuzzLegacyConfigMap(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		cm := readConfigMap(f, filepath.Base(name))
		f.Add(cm.Data[LegacyConfigKey])
	}
	for _, s := range []string{
		"",
		"address-pools: [{name: a, protocol: layer2, addresses: ['10.0.0.0/8', '10.0.0.1']}]",
		"address-pools: [{name: a, protocol: bgp, addresses: ['fd00::/64', '::1-::ffff'], bgp-advertisements: [{aggregation-length-v6: 64}]}]",
		"address-pools: [{name: a, protocol: layer2, addresses: ['0.0.0.0/0']}, {name: b, protocol: layer2, addresses: ['255.255.255.255']}]",
		"peers: [{my-asn: 1, peer-asn: 2, peer-address: '::1', hold-time: 0s, keepalive-time: 0s}]",
		"bgp-communities: {a: 'large:1:2:3'}\naddress-pools: [{name: x, protocol: bgp, addresses: [1.2.3.4], bgp-advertisements: [{communities: [a]}]}]",
		"address-pools: [{name: a, protocol: bgp, addresses: [10.0.0.1, ' 10.0.0.1', 10.0.0.1/32], bgp-advertisements: [{communities: [no-export, no-export]}, {}, {}]}]",
		"peers: [{my-asn: 1, peer-asn: 2, peer-address: 10.0.0.1, bfd-profile: x, node-selectors: [{match-labels: {a: b}}, {match-labels: {a: b}}]}]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, ps := Build(Input{ConfigMap: configMap(0, data)}, nil)
		for _, p := range ps {
			if p.Outcome != Warning && len(c.Pools)+len(c.BGPPeers)+len(c.BFDProfiles) > 0 {
				t.Fatalf("ConfigMap rejected (%v) but parts of it are in force", p)
			}
			if p.Message == "" {
				t.Fatalf("problem without a message: %#v", p)
			}
		}
		checkSound(t, c)
	})
}

// checkSound fails t unless c is a sound Config: every range well formed,
// no two pools sharing an address, every announcement and peer consistent
// with the pools and profiles in force.
func checkSound(t *testing.T, c *Config) {
	t.Helper()
	var all []ipam.Range
	for name, p := range c.Pools {
		if p.Name != name || len(p.Ranges) == 0 {
			t.Fatalf("pool %q: name %q, %d ranges", name, p.Name, len(p.Ranges))
		}
		for _, r := range p.Ranges {
			if !r.From.IsValid() || !r.To.IsValid() || r.From.Is4() != r.To.Is4() || r.To.Less(r.From) || r.From.Zone() != "" || r.From.Is4In6() {
				t.Fatalf("pool %q: malformed range %v", name, r)
			}
			for _, o := range all {
				if r.Overlaps(o) {
					t.Fatalf("pool %q: %v overlaps %v of another pool", name, r, o)
				}
			}
		}
		all = append(all, p.Ranges...)
	}
	for _, a := range c.L2 {
		for _, name := range a.Pools {
			if c.Pools[name] == nil {
				t.Fatalf("L2 announcement of unknown pool %q", name)
			}
		}
	}
	reserved := map[netip.Addr]string{}
	for _, r := range c.Reservations {
		if len(r.Addrs) == 0 || len(r.Addrs) > 2 || (r.Service.Name == "") == (r.Selector == nil) {
			t.Fatalf("reservation %s: addresses %v, service %q, selector %v", r.Name, r.Addrs, r.Service, r.Selector)
		}
		for _, a := range r.Addrs {
			if c.PoolFor(a) == nil {
				t.Fatalf("reservation %s: %v is in no pool", r.Name, a)
			}
			if o, dup := reserved[a]; dup {
				t.Fatalf("%v reserved by both %s and %s", a, o, r.Name)
			}
			reserved[a] = r.Name
		}
	}
	for _, a := range c.BGPAnnouncements {
		for _, name := range a.Pools {
			p := c.Pools[name]
			if p == nil {
				t.Fatalf("BGP announcement of unknown pool %q", name)
			}
			for _, r := range p.Ranges {
				if l := a.AggregationLength; r.From.Is6() {
					l = a.AggregationLengthV6
					if l < widestBlock(r) {
						t.Fatalf("pool %q announced with aggregation /%d wider than %v", name, l, r)
					}
				} else if l < widestBlock(r) {
					t.Fatalf("pool %q announced with aggregation /%d wider than %v", name, l, r)
				}
			}
		}
	}
	for _, p := range c.BGPPeers {
		if !p.PeerAddress.IsValid() || p.MyASN == 0 || p.PeerASN == 0 || p.PeerPort == 0 {
			t.Fatalf("peer accepted without address, ASNs or port: %+v", p)
		}
		if p.HoldTime != 0 && (p.KeepaliveTime <= 0 || p.KeepaliveTime >= p.HoldTime) {
			t.Fatalf("peer accepted with keepalive %s and hold %s", p.KeepaliveTime, p.HoldTime)
		}
		if p.BFDProfile != "" && c.BFDProfiles[p.BFDProfile] == nil {
			t.Fatalf("peer refers to missing BFD profile %q", p.BFDProfile)
		}
	}
}

// FuzzBuild builds CRD objects of every kind from fuzzed addresses,
// ranges, label keys and values, names, ASNs, durations, communities and
// interface names, each used in several places. Beyond not panicking:
// Build is deterministic, also when the objects are listed in another
// order or the result is given back as prev; every problem names its
// object and field; with no prev, an object reported invalid contributes
// nothing to the Config; and the Config is sound (see checkSound).
func FuzzBuild(f *testing.F) {
	f.Add("192.168.1.87-192.168.1.97", "2001:db8:1::/120", "rack", "r1", "fast", "no-export", "eth0", uint32(64500), uint32(64501), int64(90e9), int64(30e9), int32(32), uint32(300))
	f.Add("192.168.1.88", "192.168.1.88/32", "team", "ml", "b", "65535:65282", "bond0.100", uint32(64500), uint32(64500), int64(0), int64(0), int32(24), uint32(10))
	f.Add("10.0.0.0/8", "10.0.0.5-10.0.0.1", "", "", "", "large:1:2:3", "eth/0", uint32(0), uint32(1), int64(2e9), int64(-1), int32(-1), uint32(0))
	f.Add("fd00::/64", "::ffff:10.0.0.1", "a/b", "x y", "a,b", "65536:1", "loooooooooooong0", uint32(4294967295), uint32(1), int64(65536e9), int64(90e9), int32(129), uint32(60001))
	f.Add("198.51.100.0/28", "fe80::1%eth0", "k", "v", "p", "my-alias", ".", uint32(1), uint32(2), int64(3e9), int64(1e9), int32(28), uint32(255))
	f.Fuzz(func(t *testing.T, addr1, addr2, key, value, name, community, iface string, asn1, asn2 uint32, hold, keepalive int64, agg int32, n uint32) {
		in := fuzzInput(addr1, addr2, key, value, name, community, iface, asn1, asn2, hold, keepalive, agg, n)
		c, ps := Build(in, nil)

		inForce := map[ObjectRef]bool{}
		for _, p := range c.Pools {
			inForce[p.Source] = true
		}
		for _, p := range c.BFDProfiles {
			inForce[p.Source] = true
		}
		for _, p := range c.BGPPeers {
			inForce[p.Source] = true
		}
		for _, a := range c.L2 {
			inForce[a.Source] = true
		}
		for _, a := range c.BGPAnnouncements {
			inForce[a.Source] = true
		}
		for _, r := range c.Reservations {
			inForce[r.Source] = true
		}
		for _, p := range ps {
			if p.Object.Kind == "" || p.Object.Name == "" || p.Field == "" || p.Message == "" {
				t.Fatalf("problem without object, field or message: %#v", p)
			}
			switch p.Outcome {
			case LeftOut:
				if inForce[p.Object] {
					t.Fatalf("%s is left out (%v) but contributes to the Config", p.Object, p)
				}
			case Warning:
				if !inForce[p.Object] {
					t.Fatalf("warning about %s, which is not in force: %v", p.Object, p)
				}
			default:
				t.Fatalf("outcome %v without prev: %v", p.Outcome, p)
			}
		}
		checkSound(t, c)

		opts := cmp.Options{cmpopts.IgnoreUnexported(Config{}), selectorComparer, addrComparer}
		c2, ps2 := Build(in, nil)
		if diff := cmp.Diff(c, c2, opts); diff != "" {
			t.Fatalf("built twice, Configs differ (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(ps, ps2); diff != "" {
			t.Fatalf("built twice, problems differ (-first +second):\n%s", diff)
		}
		c3, ps3 := Build(reversed(in), nil)
		if diff := cmp.Diff(c, c3, opts); diff != "" {
			t.Fatalf("objects listed in reverse, Configs differ (-first +reversed):\n%s", diff)
		}
		if diff := cmp.Diff(ps, ps3); diff != "" {
			t.Fatalf("objects listed in reverse, problems differ (-first +reversed):\n%s", diff)
		}
		c4, ps4 := Build(in, c)
		if diff := cmp.Diff(c, c4, opts); diff != "" {
			t.Fatalf("rebuilt with itself as prev, Configs differ (-first +rebuilt):\n%s", diff)
		}
		if diff := cmp.Diff(ps, ps4); diff != "" {
			t.Fatalf("rebuilt with itself as prev, problems differ (-first +rebuilt):\n%s", diff)
		}
	})
}

// fuzzInput makes one object or two of every kind from FuzzBuild's
// arguments. Objects have fixed names and ages (the API server checks
// names); what they say is fuzzed, references by name included: name
// "b" or "fast" finds an object.
func fuzzInput(addr1, addr2, key, value, name, community, iface string, asn1, asn2 uint32, hold, keepalive int64, agg int32, n uint32) Input {
	sel := []metav1.LabelSelector{{MatchLabels: map[string]string{key: value}}}
	expr := []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: []string{value, name}}}}}
	dur := func(ns int64) *metav1.Duration { return &metav1.Duration{Duration: time.Duration(ns)} }

	a := ippool("a", 0, addr1, addr2)
	a.Labels = map[string]string{key: value}
	a.Spec.AutoAssign = new(n%2 == 0)
	a.Spec.AvoidBuggyIPs = n%3 == 0
	a.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: agg, Namespaces: []string{value}, NamespaceSelectors: sel, ServiceSelectors: expr}
	b := ippool("b", 1, addr2)
	c := ippool("c", 1, "198.51.100.0/24")

	l2 := l2ann("l2", 0, "a", name)
	l2.Spec.IPPoolSelectors = expr
	l2.Spec.NodeSelectors = sel
	l2.Spec.Interfaces = []string{iface, "eth0", iface}

	p := bgppeer("p", 0, addr1)
	p.Spec.MyASN, p.Spec.PeerASN = asn1, asn2
	p.Spec.SourceAddress = addr2
	p.Spec.RouterID = addr1
	p.Spec.HoldTime, p.Spec.KeepaliveTime = dur(hold), dur(keepalive)
	p.Spec.EBGPMultiHop = n%5 == 0
	p.Spec.NodeSelectors = append(sel, expr...)
	p.Spec.BFDProfile = name
	p.Spec.PeerPort = uint16(n)
	q := bgppeer("q", 0, addr1) // the same session as p, unless p's fields differ
	q.Spec.PeerPort = uint16(n)
	q.Spec.NodeSelectors = sel
	if n%7 == 0 {
		q.Spec.PasswordSecret = &corev1.SecretReference{Name: name, Namespace: value}
	}

	ba := bgpann("ba", 0, "a", name)
	ba.Spec.IPPoolSelectors = sel
	ba.Spec.AggregationLength = new(agg)
	ba.Spec.AggregationLengthV6 = new(agg + 96)
	ba.Spec.LocalPref = new(n)
	ba.Spec.Communities = []string{community, "no-export", community}
	ba.Spec.Peers = []string{"p", name}
	ba.Spec.NodeSelectors = expr
	bb := bgpann("bb", 1) // every pool, defaults

	fast := bfdprofile("fast", 0)
	fast.Spec = v1alpha1.BFDProfileSpec{ReceiveInterval: new(n), TransmitInterval: new(asn1), DetectMultiplier: new(asn2), EchoInterval: new(n / 2), MinimumTTL: new(n % 300), EchoMode: n%2 == 1}
	slow := bfdprofile("slow", 1)

	r1 := reservation("r1", 0, value, name, addr1, addr2)
	r2 := reservation("r2", 1, "", "", addr2)
	r2.Spec.Service = nil
	r2.Spec.ServiceSelector = &v1alpha1.ReservedServiceSelector{Namespace: key, Selector: expr[0]}

	return Input{
		Reservations:     []v1alpha1.IPReservation{r1, r2},
		Pools:            []v1alpha1.IPPool{a, b, c},
		L2:               []v1alpha1.L2Announcement{l2},
		BGPPeers:         []v1alpha1.BGPPeer{p, q},
		BGPAnnouncements: []v1alpha1.BGPAnnouncement{ba, bb},
		BFDProfiles:      []v1alpha1.BFDProfile{fast, slow},
	}
}

// reversed returns in with every list in reverse order.
func reversed(in Input) Input {
	in.Pools = slices.Clone(in.Pools)
	in.L2 = slices.Clone(in.L2)
	in.BGPPeers = slices.Clone(in.BGPPeers)
	in.BGPAnnouncements = slices.Clone(in.BGPAnnouncements)
	in.BFDProfiles = slices.Clone(in.BFDProfiles)
	in.Reservations = slices.Clone(in.Reservations)
	slices.Reverse(in.Reservations)
	slices.Reverse(in.Pools)
	slices.Reverse(in.L2)
	slices.Reverse(in.BGPPeers)
	slices.Reverse(in.BGPAnnouncements)
	slices.Reverse(in.BFDProfiles)
	return in
}
