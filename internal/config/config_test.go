package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

func TestObjectRefString(t *testing.T) {
	tests := []struct {
		ref  ObjectRef
		want string
	}{
		{ObjectRef{Kind: "IPPool", Name: "default"}, "IPPool/default"},
		{ObjectRef{Kind: "ConfigMap", Namespace: "ironlb-system", Name: "config"}, "ConfigMap ironlb-system/config"},
	}
	for _, tt := range tests {
		if got := tt.ref.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestProblemError(t *testing.T) {
	lan := ObjectRef{Kind: "IPPool", Name: "lan"}
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"field", Problem{Object: lan, Field: "spec.addresses[1]", Message: `invalid range "10.0.0.5-10.0.0.1": start is after end`},
			`IPPool/lan: spec.addresses[1]: invalid range "10.0.0.5-10.0.0.1": start is after end`},
		{"no field", Problem{Object: lan, Message: "broken"}, "IPPool/lan: broken"},
		{"kept", Problem{Object: lan, Field: "spec.addresses[0]", Message: "bad", Outcome: KeptLastGood},
			"IPPool/lan: spec.addresses[0]: bad (the last valid version stays in force)"},
		{"warning", Problem{Object: lan, Field: "spec", Message: "meh", Outcome: Warning}, "IPPool/lan: spec: meh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestPoolAllows(t *testing.T) {
	tests := []struct {
		name      string
		alloc     *Allocation
		ns        string
		nsLabels  map[string]string
		svcLabels map[string]string
		want      bool
	}{
		{name: "no allocation", ns: "kubeflow", want: true},
		{name: "empty allocation", alloc: &Allocation{Priority: 5}, ns: "kubeflow", want: true},
		{name: "namespace listed", alloc: &Allocation{Namespaces: []string{"kubeflow", "istio-system"}}, ns: "istio-system", want: true},
		{name: "namespace not listed", alloc: &Allocation{Namespaces: []string{"kubeflow"}}, ns: "seldon-system", want: false},
		{name: "namespace selector matches", alloc: &Allocation{NamespaceSelectors: []labels.Selector{mustSelector(t, "team=ml")}},
			ns: "kubeflow", nsLabels: map[string]string{"team": "ml"}, want: true},
		{name: "namespace selector does not match", alloc: &Allocation{NamespaceSelectors: []labels.Selector{mustSelector(t, "team=ml")}},
			ns: "kubeflow", nsLabels: map[string]string{"team": "web"}, want: false},
		{name: "listed or selected is enough", alloc: &Allocation{Namespaces: []string{"kubeflow"}, NamespaceSelectors: []labels.Selector{mustSelector(t, "team=ml")}},
			ns: "kubeflow", nsLabels: map[string]string{"team": "web"}, want: true},
		{name: "service selector matches one of two", alloc: &Allocation{ServiceSelectors: []labels.Selector{mustSelector(t, "tier=gold"), mustSelector(t, "app=grafana")}},
			ns: "seldon-system", svcLabels: map[string]string{"app": "grafana"}, want: true},
		{name: "service selector does not match", alloc: &Allocation{ServiceSelectors: []labels.Selector{mustSelector(t, "tier=gold")}},
			ns: "seldon-system", svcLabels: map[string]string{"app": "grafana"}, want: false},
		{name: "namespace ok but service not", alloc: &Allocation{Namespaces: []string{"kubeflow"}, ServiceSelectors: []labels.Selector{mustSelector(t, "tier=gold")}},
			ns: "kubeflow", want: false},
		{name: "both ok", alloc: &Allocation{Namespaces: []string{"kubeflow"}, ServiceSelectors: []labels.Selector{mustSelector(t, "tier=gold")}},
			ns: "kubeflow", svcLabels: map[string]string{"tier": "gold"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Pool{Name: "p", Allocation: tt.alloc}
			if got := p.Allows(tt.ns, tt.nsLabels, tt.svcLabels); got != tt.want {
				t.Errorf("Allows(%q, %v, %v) = %v, want %v", tt.ns, tt.nsLabels, tt.svcLabels, got, tt.want)
			}
		})
	}
}

func TestPoolsFor(t *testing.T) {
	pool := func(name string, prio int, auto bool, namespaces ...string) v1alpha1.IPPool {
		p := ippool(name, 0, "10.0.0.1") // addresses do not matter here, but must not overlap
		p.Spec.AutoAssign = new(auto)
		if prio >= 0 {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: int32(prio), Namespaces: namespaces}
		}
		return p
	}
	pools := []v1alpha1.IPPool{
		pool("plain-b", -1, true),
		pool("plain-a", -1, true),
		pool("manual", -1, false),
		pool("prio-0", 0, true),
		pool("prio-20", 20, true),
		pool("prio-10", 10, true),
		pool("prio-10-b", 10, true),
		pool("kubeflow-only", 1, true, "kubeflow"),
	}
	for i := range pools {
		pools[i].Spec.Addresses = []string{netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}).String()}
	}
	c, ps := Build(Input{Pools: pools}, nil)
	if len(ps) > 0 {
		t.Fatalf("Build: %v", errorStrings(ps))
	}
	tests := []struct {
		ns   string
		want []string
	}{
		{"default", []string{"prio-10", "prio-10-b", "prio-20", "prio-0", "plain-a", "plain-b"}},
		{"kubeflow", []string{"kubeflow-only", "prio-10", "prio-10-b", "prio-20", "prio-0", "plain-a", "plain-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			var got []string
			for _, p := range c.PoolsFor(tt.ns, nil, nil) {
				got = append(got, p.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PoolsFor(%q) (-want +got):\n%s", tt.ns, diff)
			}
		})
	}
}

func TestPoolForAndContains(t *testing.T) {
	c, ps := Build(Input{Pools: []v1alpha1.IPPool{
		ippool("lan", 0, "192.168.1.87-192.168.1.97"),
		ippool("v6", 0, "fd00::/120"),
	}}, nil)
	if len(ps) > 0 {
		t.Fatalf("Build: %v", errorStrings(ps))
	}
	tests := []struct {
		addr string
		want string
	}{
		{"192.168.1.88", "lan"},
		{"192.168.1.97", "lan"},
		{"192.168.1.98", ""},
		{"fd00::ff", "v6"},
		{"fd00::100", ""},
	}
	for _, tt := range tests {
		got := ""
		if p := c.PoolFor(netip.MustParseAddr(tt.addr)); p != nil {
			got = p.Name
		}
		if got != tt.want {
			t.Errorf("PoolFor(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestSelects(t *testing.T) {
	rack1 := map[string]string{"rack": "1"}
	sel := []labels.Selector{mustSelector(t, "rack=1")}
	if !(&L2Announcement{}).SelectsNode(rack1) || !(&L2Announcement{NodeSelectors: sel}).SelectsNode(rack1) ||
		(&L2Announcement{NodeSelectors: sel}).SelectsNode(nil) {
		t.Error("L2Announcement.SelectsNode: wrong answer")
	}
	if !(&BGPPeer{}).SelectsNode(nil) || (&BGPPeer{NodeSelectors: sel}).SelectsNode(nil) {
		t.Error("BGPPeer.SelectsNode: wrong answer")
	}
	a := &BGPAnnouncement{Peers: []string{"tor1"}}
	if !a.SelectsPeer("tor1") || a.SelectsPeer("tor2") || !(&BGPAnnouncement{}).SelectsPeer("tor2") {
		t.Error("BGPAnnouncement.SelectsPeer: wrong answer")
	}
}

func TestResolveCommunity(t *testing.T) {
	aliases := map[string]Community{"no-advertise-please": {High: 65535, Low: 65282}, "no-export": {High: 1, Low: 1}}
	tests := []struct {
		in      string
		want    Community
		wantErr string
	}{
		{in: "65535:65282", want: Community{High: 65535, Low: 65282}},
		{in: "0:0", want: Community{}},
		{in: "no-advertise", want: Community{High: 65535, Low: 65282}},
		{in: "NO-PEER", want: Community{High: 65535, Low: 65284}},
		{in: "blackhole", want: Community{High: 65535, Low: 666}},
		{in: "no-advertise-please", want: Community{High: 65535, Low: 65282}},
		{in: "no-export", want: Community{High: 1, Low: 1}}, // an alias wins over a well-known name, as in MetalLB
		{in: "large:1:2:3", want: Community{Large: true, Global: 1, Local1: 2, Local2: 3}},
		{in: "large:4294967295:0:4294967295", want: Community{Large: true, Global: 4294967295, Local2: 4294967295}},
		{in: "65536:1", wantErr: `"65536:1" is not a community: both parts of ASN:value must be numbers from 0 to 65535 (use large:global:local1:local2 for bigger numbers)`},
		{in: "1:2:3", wantErr: `"1:2:3" is not a community: write ASN:value (65535:65282) or large:global:local1:local2`},
		{in: "large:1:2", wantErr: `"large:1:2" is not a large community: write large:global:local1:local2`},
		{in: "large:1:2:4294967296", wantErr: `"large:1:2:4294967296" is not a large community: each part must be a number from 0 to 4294967295`},
		{in: "-1:5", wantErr: `"-1:5" is not a community: both parts of ASN:value must be numbers from 0 to 65535 (use large:global:local1:local2 for bigger numbers)`},
		{in: "nope", wantErr: `"nope" is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := resolveCommunity(tt.in, aliases)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("resolveCommunity(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("resolveCommunity(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if got := (Community{High: 65535, Low: 65281}); got.String() != "65535:65281" || got.Value() != 0xFFFFFF01 {
		t.Errorf("standard community formats as %q, value %#x", got.String(), got.Value())
	}
	if got := (Community{Large: true, Global: 1, Local1: 2, Local2: 3}).String(); got != "large:1:2:3" {
		t.Errorf("large community formats as %q", got)
	}
}

func TestWidestBlock(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"192.168.1.0/24", 24},
		{"192.168.1.7", 32},
		{"192.168.1.87-192.168.1.97", 29}, // .87/32 .88/29 .96/31
		{"10.0.0.0-10.255.255.255", 8},
		{"0.0.0.0/0", 0},
		{"fd00::/64", 64},
		{"fd00::1-fd00::2", 128},
		{"fd00::2-fd00::3", 127},
		{"8000::/1", 1},
	}
	for _, tt := range tests {
		r, err := ipam.ParseRange(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := widestBlock(r); got != tt.want {
			t.Errorf("widestBlock(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestSharingAcrossNamespaces checks where a pool's permission to share
// addresses across namespaces comes from: an IPPool says so explicitly,
// and a legacy ConfigMap pool, which has no key for it, never allows it.
func TestSharingAcrossNamespaces(t *testing.T) {
	open := ippool("open", 0, "10.0.1.0/24")
	open.Spec.AllowSharingAcrossNamespaces = true
	in := Input{
		Pools:     []v1alpha1.IPPool{ippool("closed", 0, "10.0.0.0/24"), open},
		ConfigMap: configMap(0, "address-pools:\n- {name: legacy, protocol: layer2, addresses: [10.0.2.0/24]}\n"),
	}
	c, ps := Build(in, nil)
	if len(ps) > 0 {
		t.Fatal(errorStrings(ps))
	}
	got := map[string]bool{}
	for name, p := range c.Pools {
		got[name] = p.AllowSharingAcrossNamespaces
	}
	want := map[string]bool{"closed": false, "open": true, "legacy": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AllowSharingAcrossNamespaces per pool (-want +got):\n%s", diff)
	}
}
