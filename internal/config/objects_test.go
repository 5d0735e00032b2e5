package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// Per-object rules of the CRDs. Each case is one object on its own; the
// want is what the operator reads.

func TestIPPoolRules(t *testing.T) {
	tests := []struct {
		name string
		edit func(*v1alpha1.IPPool)
		want []string
	}{
		{name: "cidr, range and address of both families", edit: func(p *v1alpha1.IPPool) {
			p.Spec.Addresses = []string{"192.168.1.0/28", "192.168.1.87-192.168.1.97", "192.168.1.200", "fd00::/120", "fd01::1 - fd01::9"}
		}},
		{name: "no addresses", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = nil },
			want: []string{`IPPool/lan: spec.addresses: no addresses: list at least one CIDR (192.168.1.0/24), range (192.168.1.87-192.168.1.97) or address`}},
		{name: "range backwards", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"10.0.0.1", "10.0.0.5-10.0.0.1"} },
			want: []string{`IPPool/lan: spec.addresses[1]: invalid range "10.0.0.5-10.0.0.1": start is after end`}},
		{name: "not an address", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"192.168.1.300"} },
			want: []string{`IPPool/lan: spec.addresses[0]: invalid IP address "192.168.1.300"`}},
		{name: "bad cidr", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"10.0.0.0/33"} },
			want: []string{`IPPool/lan: spec.addresses[0]: invalid CIDR "10.0.0.0/33": netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`}},
		{name: "mixed families", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"10.0.0.1-fd00::1"} },
			want: []string{`IPPool/lan: spec.addresses[0]: invalid range "10.0.0.1-fd00::1": ends are of different IP families`}},
		{name: "entries overlap", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.1.7"} },
			want: []string{`IPPool/lan: spec.addresses[2]: 10.0.1.7 overlaps 10.0.1.0/24 (spec.addresses[1]) of the same pool`}},
		{name: "every error is reported", edit: func(p *v1alpha1.IPPool) { p.Spec.Addresses = []string{"x", "10.0.0.0/24", "y"} },
			want: []string{`IPPool/lan: spec.addresses[0]: invalid IP address "x"`, `IPPool/lan: spec.addresses[2]: invalid IP address "y"`}},
		{name: "negative priority", edit: func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: -1}
		}, want: []string{`IPPool/lan: spec.serviceAllocation.priority: -1: must be 0 (no priority) or more; lower positive numbers are tried first`}},
		{name: "bad namespace", edit: func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{"kubeflow", "Kube_Flow"}}
		}, want: []string{`IPPool/lan: spec.serviceAllocation.namespaces[1]: "Kube_Flow" is not a namespace name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{name: "bad selectors", edit: func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "ml"}}},
				ServiceSelectors:   []metav1.LabelSelector{{}, {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Among"}}}},
			}
		}, want: []string{`IPPool/lan: spec.serviceAllocation.serviceSelectors[1]: invalid label selector: "Among" is not a valid label selector operator`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ippool("lan", 0, "10.0.0.0/24")
			tt.edit(&p)
			c, ps := Build(Input{Pools: []v1alpha1.IPPool{p}}, nil)
			if diff := cmp.Diff(tt.want, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if got := c.Pools["lan"] != nil; got != (len(tt.want) == 0) {
				t.Errorf("pool in Config = %v, want %v", got, len(tt.want) == 0)
			}
		})
	}
}

func TestBGPPeerRules(t *testing.T) {
	dur := func(s string) *metav1.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Duration{Duration: d}
	}
	tests := []struct {
		name string
		edit func(*v1alpha1.BGPPeerSpec)
		want []string
	}{
		{name: "minimal", edit: func(*v1alpha1.BGPPeerSpec) {}},
		{name: "everything", edit: func(s *v1alpha1.BGPPeerSpec) {
			s.SourceAddress = "10.0.0.2"
			s.RouterID = "10.0.0.2"
			s.HoldTime = dur("9s")
			s.KeepaliveTime = dur("3s")
			s.PasswordSecret = &corev1.SecretReference{Name: "tor", Namespace: "ironlb-system"}
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}
			s.EBGPMultiHop = true
			s.BFDProfile = "fast"
		}, want: []string{`warning: BGPPeer/tor: spec.bfdProfile: no BFD profile named "fast"; the session runs without BFD until one exists`}},
		{name: "no ASNs", edit: func(s *v1alpha1.BGPPeerSpec) { s.MyASN, s.PeerASN = 0, 0 }, want: []string{
			`BGPPeer/tor: spec.myASN: missing: the AS number ironlb speaks as is required (1 to 4294967295)`,
			`BGPPeer/tor: spec.peerASN: missing: the router's AS number is required (1 to 4294967295)`,
		}},
		{name: "no peer address", edit: func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "" },
			want: []string{`BGPPeer/tor: spec.peerAddress: missing: the router's IP address is required`}},
		{name: "bad peer address", edit: func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "10.0.0" },
			want: []string{`BGPPeer/tor: spec.peerAddress: "10.0.0" is not an IP address`}},
		{name: "zone", edit: func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "fe80::1%eth0" },
			want: []string{`BGPPeer/tor: spec.peerAddress: "fe80::1%eth0": zones (%eth0) are not allowed`}},
		{name: "mapped", edit: func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "::ffff:10.0.0.1" },
			want: []string{`BGPPeer/tor: spec.peerAddress: "::ffff:10.0.0.1": IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address`}},
		{name: "source family", edit: func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "fd00::2" },
			want: []string{`BGPPeer/tor: spec.sourceAddress: fd00::2 and the peer address 10.0.0.1 are of different IP families`}},
		{name: "router id v6", edit: func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "fd00::2" },
			want: []string{`BGPPeer/tor: spec.routerID: fd00::2: must be a non-zero IPv4 address (a BGP identifier is 32 bits, RFC 6286)`}},
		{name: "router id zero", edit: func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "0.0.0.0" },
			want: []string{`BGPPeer/tor: spec.routerID: 0.0.0.0: must be a non-zero IPv4 address (a BGP identifier is 32 bits, RFC 6286)`}},
		{name: "hold time too short", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur("2s") },
			want: []string{`BGPPeer/tor: spec.holdTime: 2s: must be 0 (no keepalives) or from 3s to 65535s (RFC 4271 section 4.2)`}},
		{name: "hold time too long", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur("24h") },
			want: []string{`BGPPeer/tor: spec.holdTime: 24h0m0s: must be 0 (no keepalives) or from 3s to 65535s (RFC 4271 section 4.2)`}},
		{name: "hold time 0", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur("0s") }},
		{name: "hold time 0 keepalive 0", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("0s"), dur("0s") }},
		{name: "hold time 0 keepalive set", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("0s"), dur("10s") },
			want: []string{`BGPPeer/tor: spec.keepaliveTime: 10s: must be 0 when holdTime is 0 (RFC 4271 section 4.4)`}},
		{name: "keepalive not shorter", edit: func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("9s"), dur("9s") },
			want: []string{`BGPPeer/tor: spec.keepaliveTime: 9s: must be at least 1s and shorter than holdTime (9s)`}},
		{name: "keepalive beyond default hold", edit: func(s *v1alpha1.BGPPeerSpec) { s.KeepaliveTime = dur("2m") },
			want: []string{`BGPPeer/tor: spec.keepaliveTime: 2m0s: must be at least 1s and shorter than holdTime (1m30s)`}},
		{name: "keepalive under a second", edit: func(s *v1alpha1.BGPPeerSpec) { s.KeepaliveTime = dur("500ms") },
			want: []string{`BGPPeer/tor: spec.keepaliveTime: 500ms: must be at least 1s and shorter than holdTime (1m30s)`}},
		{name: "multihop on iBGP", edit: func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = s.MyASN; s.EBGPMultiHop = true },
			want: []string{`BGPPeer/tor: spec.ebgpMultiHop: only applies to eBGP sessions, and myASN equals peerASN (iBGP)`}},
		{name: "secret without namespace", edit: func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecret = &corev1.SecretReference{Name: "tor"} },
			want: []string{`BGPPeer/tor: spec.passwordSecret: needs both name and namespace of the Secret holding the password`}},
		{name: "bad node selector", edit: func(s *v1alpha1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "not ok"}}}
		}, want: []string{`BGPPeer/tor: spec.nodeSelectors[0]: invalid label selector: values[0][rack]: Invalid value: "not ok": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bgppeer("tor", 0, "10.0.0.1")
			tt.edit(&p.Spec)
			c, ps := Build(Input{BGPPeers: []v1alpha1.BGPPeer{p}}, nil)
			if diff := cmp.Diff(tt.want, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			valid := len(tt.want) == 0 || ps[0].Outcome == Warning
			if got := len(c.BGPPeers) == 1; got != valid {
				t.Errorf("peer in Config = %v, want %v", got, valid)
			}
		})
	}
}

func TestBGPPeerDefaults(t *testing.T) {
	c, ps := Build(Input{BGPPeers: []v1alpha1.BGPPeer{bgppeer("tor", 0, "10.0.0.1")}}, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	want := &BGPPeer{
		Name: "tor", Source: ObjectRef{Kind: "BGPPeer", Name: "tor"}, MyASN: 64500, PeerASN: 64501,
		PeerAddress: mustAddr("10.0.0.1"), PeerPort: 179, HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second,
	}
	if diff := cmp.Diff([]*BGPPeer{want}, c.BGPPeers, addrComparer, selectorComparer); diff != "" {
		t.Errorf("BGPPeers (-want +got):\n%s", diff)
	}
}

func TestBFDProfileRules(t *testing.T) {
	tests := []struct {
		name string
		spec v1alpha1.BFDProfileSpec
		want *BFDProfile
		errs []string
	}{
		{name: "defaults", want: &BFDProfile{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond,
			EchoInterval: 50 * time.Millisecond, DetectMultiplier: 3, MinimumTTL: 254}},
		{name: "set", spec: v1alpha1.BFDProfileSpec{ReceiveInterval: new(uint32(10)), TransmitInterval: new(uint32(60000)), EchoInterval: new(uint32(100)),
			DetectMultiplier: new(uint32(255)), MinimumTTL: new(uint32(1)), EchoMode: true, PassiveMode: true},
			want: &BFDProfile{ReceiveInterval: 10 * time.Millisecond, TransmitInterval: time.Minute, EchoInterval: 100 * time.Millisecond,
				DetectMultiplier: 255, MinimumTTL: 1, EchoMode: true, PassiveMode: true}},
		{name: "out of range", spec: v1alpha1.BFDProfileSpec{ReceiveInterval: new(uint32(9)), TransmitInterval: new(uint32(60001)), EchoInterval: new(uint32(0)),
			DetectMultiplier: new(uint32(1)), MinimumTTL: new(uint32(255))}, errs: []string{
			`BFDProfile/fast: spec.receiveInterval: 9: must be from 10 to 60000`,
			`BFDProfile/fast: spec.transmitInterval: 60001: must be from 10 to 60000`,
			`BFDProfile/fast: spec.echoInterval: 0: must be from 10 to 60000`,
			`BFDProfile/fast: spec.detectMultiplier: 1: must be from 2 to 255`,
			`BFDProfile/fast: spec.minimumTTL: 255: must be from 1 to 254`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := bfdprofile("fast", 0)
			p.Spec = tt.spec
			c, ps := Build(Input{BFDProfiles: []v1alpha1.BFDProfile{p}}, nil)
			if diff := cmp.Diff(tt.errs, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tt.want != nil {
				tt.want.Name, tt.want.Source = "fast", ObjectRef{Kind: "BFDProfile", Name: "fast"}
			}
			if diff := cmp.Diff(tt.want, c.BFDProfiles["fast"]); diff != "" {
				t.Errorf("BFDProfiles[fast] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestL2AnnouncementRules(t *testing.T) {
	tests := []struct {
		name  string
		spec  v1alpha1.L2AnnouncementSpec
		pools []string // resolved
		errs  []string
	}{
		{name: "no selection means every pool", pools: []string{"lan", "wan"}},
		{name: "by name", spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"wan", "wan"}}, pools: []string{"wan"}},
		{name: "by label", spec: v1alpha1.L2AnnouncementSpec{IPPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "office"}}}}, pools: []string{"lan"}},
		{name: "by name and label", spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"wan"}, IPPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "office"}}}}, pools: []string{"lan", "wan"}},
		{name: "selector matching nothing", spec: v1alpha1.L2AnnouncementSpec{IPPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "mars"}}}}},
		{name: "missing pool is a warning", spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"lan", "lna"}}, pools: []string{"lan"},
			errs: []string{`warning: L2Announcement/office: spec.ipPools[1]: no pool named "lna"; nothing is announced for it until one exists`}},
		{name: "interfaces", spec: v1alpha1.L2AnnouncementSpec{Interfaces: []string{"eth0", "bond0.100", "eth0"}}, pools: []string{"lan", "wan"}},
		{name: "bad interfaces", spec: v1alpha1.L2AnnouncementSpec{Interfaces: []string{"eth/0", "..", "averyveryverylongname", ""}}, errs: []string{
			`L2Announcement/office: spec.interfaces[0]: "eth/0" is not a network interface name (1 to 15 characters, no '/', ':' or spaces)`,
			`L2Announcement/office: spec.interfaces[1]: ".." is not a network interface name (1 to 15 characters, no '/', ':' or spaces)`,
			`L2Announcement/office: spec.interfaces[2]: "averyveryverylongname" is not a network interface name (1 to 15 characters, no '/', ':' or spaces)`,
			`L2Announcement/office: spec.interfaces[3]: "" is not a network interface name (1 to 15 characters, no '/', ':' or spaces)`,
		}},
		{name: "empty pool name", spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{""}}, errs: []string{`L2Announcement/office: spec.ipPools[0]: empty name`}},
		{name: "bad node selector", spec: v1alpha1.L2AnnouncementSpec{NodeSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "In"}}}}},
			errs: []string{`L2Announcement/office: spec.nodeSelectors[0]: invalid label selector: values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lan := ippool("lan", 0, "192.168.1.0/24")
			lan.Labels = map[string]string{"zone": "office"}
			a := l2ann("office", 0)
			a.Spec = tt.spec
			c, ps := Build(Input{Pools: []v1alpha1.IPPool{lan, ippool("wan", 0, "198.51.100.0/24")}, L2: []v1alpha1.L2Announcement{a}}, nil)
			if diff := cmp.Diff(tt.errs, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			valid := len(tt.errs) == 0 || ps[0].Outcome == Warning
			if len(c.L2) != 1 {
				if valid {
					t.Fatalf("announcement left out")
				}
				return
			}
			if !valid {
				t.Fatalf("invalid announcement in Config")
			}
			if diff := cmp.Diff(tt.pools, c.L2[0].Pools); diff != "" {
				t.Errorf("Pools (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBGPAnnouncementRules(t *testing.T) {
	tests := []struct {
		name  string
		spec  v1alpha1.BGPAnnouncementSpec
		peers []v1alpha1.BGPPeer
		want  *BGPAnnouncement // Source filled in
		errs  []string
	}{
		{name: "defaults", want: &BGPAnnouncement{Pools: []string{"v4", "v6"}, AggregationLength: 32, AggregationLengthV6: 128}},
		{name: "everything", peers: []v1alpha1.BGPPeer{bgppeer("tor1", 0, "10.0.0.1")}, spec: v1alpha1.BGPAnnouncementSpec{
			IPPools: []string{"v4"}, AggregationLength: new(int32(24)), AggregationLengthV6: new(int32(64)), LocalPref: new(uint32(150)),
			Communities: []string{"65535:65282", "no-export", "large:64500:1:2", "no-advertise"}, Peers: []string{"tor1"},
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}},
		}, want: &BGPAnnouncement{
			IPPools: []string{"v4"}, Pools: []string{"v4"}, AggregationLength: 24, AggregationLengthV6: 64, LocalPref: new(uint32(150)),
			Communities: []Community{{High: 65535, Low: 65282}, {High: 65535, Low: 65281}, {Large: true, Global: 64500, Local1: 1, Local2: 2}},
			Peers:       []string{"tor1"}, NodeSelectors: []labels.Selector{mustSelector(t, "rack=1")},
		}},
		{name: "aggregation out of range", spec: v1alpha1.BGPAnnouncementSpec{AggregationLength: new(int32(33)), AggregationLengthV6: new(int32(-1))}, errs: []string{
			`BGPAnnouncement/out: spec.aggregationLength: 33: must be from 0 to 32`,
			`BGPAnnouncement/out: spec.aggregationLengthV6: -1: must be from 0 to 128`,
		}},
		{name: "aggregation too short for a pool", spec: v1alpha1.BGPAnnouncementSpec{AggregationLength: new(int32(16))},
			want: &BGPAnnouncement{Pools: []string{"v6"}, AggregationLength: 16, AggregationLengthV6: 128},
			errs: []string{`warning: BGPAnnouncement/out: spec.aggregationLength: pool "v4" is not announced by this object: 16 would announce addresses outside pool "v4": its entry 198.51.100.0/24 (spec.addresses[0]) is made of blocks no wider than /24; use 24 or more`}},
		{name: "v6 aggregation too short", spec: v1alpha1.BGPAnnouncementSpec{AggregationLengthV6: new(int32(48))},
			want: &BGPAnnouncement{Pools: []string{"v4"}, AggregationLength: 32, AggregationLengthV6: 48},
			errs: []string{`warning: BGPAnnouncement/out: spec.aggregationLengthV6: pool "v6" is not announced by this object: 48 would announce addresses outside pool "v6": its entry 2001:db8::/64 (spec.addresses[0]) is made of blocks no wider than /64; use 64 or more`}},
		{name: "bad community", spec: v1alpha1.BGPAnnouncementSpec{Communities: []string{"65535:65536", "no-exprot"}}, errs: []string{
			`BGPAnnouncement/out: spec.communities[0]: "65535:65536" is not a community: both parts of ASN:value must be numbers from 0 to 65535 (use large:global:local1:local2 for bigger numbers)`,
			`BGPAnnouncement/out: spec.communities[1]: "no-exprot" is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap`,
		}},
		{name: "missing peer is a warning", spec: v1alpha1.BGPAnnouncementSpec{Peers: []string{"tor9"}},
			want: &BGPAnnouncement{Pools: []string{"v4", "v6"}, AggregationLength: 32, AggregationLengthV6: 128, Peers: []string{"tor9"}},
			errs: []string{`warning: BGPAnnouncement/out: spec.peers[0]: no BGPPeer named "tor9"; nothing is sent to it until one exists`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := bgpann("out", 0)
			a.Spec = tt.spec
			c, ps := Build(Input{
				Pools:            []v1alpha1.IPPool{ippool("v4", 0, "198.51.100.0/24"), ippool("v6", 0, "2001:db8::/64")},
				BGPPeers:         tt.peers,
				BGPAnnouncements: []v1alpha1.BGPAnnouncement{a},
			}, nil)
			if diff := cmp.Diff(tt.errs, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			var want []*BGPAnnouncement
			if tt.want != nil {
				tt.want.Source = ObjectRef{Kind: "BGPAnnouncement", Name: "out"}
				want = append(want, tt.want)
			}
			if diff := cmp.Diff(want, c.BGPAnnouncements, selectorComparer); diff != "" {
				t.Errorf("BGPAnnouncements (-want +got):\n%s", diff)
			}
		})
	}
}
