package speaker

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
)

// testConfig has pool "l2" (198.51.100.80/28, 2001:db8:1::80/124),
// announced by an L2Announcement for nodes labelled l2=yes on eth0 or
// eth1, and pool "bgp" (203.0.113.0/28) with no L2Announcement.
func testConfig(t *testing.T) *config.Config {
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

func ready(name string, labels ...string) Node {
	l := map[string]string{"l2": "yes"}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		l[k] = v
	}
	return Node{Name: name, Ready: true, Labels: l}
}

func eth0(mac string) []Iface { return []Iface{{Name: "eth0", MAC: mac}} }

var (
	ip1   = netip.MustParseAddr("198.51.100.88")
	ip6   = netip.MustParseAddr("2001:db8:1::88")
	bgpIP = netip.MustParseAddr("203.0.113.5")
)

func TestDecide(t *testing.T) {
	cfg := testConfig(t)
	three := nodes(ready("node-1"), ready("node-2"), ready("node-3"))
	all := map[string]bool{"node-1": true, "node-2": true, "node-3": true}
	ifaces := map[string][]Iface{"node-1": eth0("02:00:00:00:00:01"), "node-2": eth0("02:00:00:00:00:02"), "node-3": eth0("02:00:00:00:00:03")}
	hashOwner := election.Owner(ip1, []string{"node-1", "node-2", "node-3"})
	other := "node-1"
	if hashOwner == other {
		other = "node-2"
	}
	withoutOwner := map[string]bool{}
	for n := range all {
		withoutOwner[n] = n != hashOwner
	}
	svc := func(key string, ips ...netip.Addr) Service { return Service{Key: key, IPs: ips} }
	tests := []struct {
		name       string
		view       View
		ip         netip.Addr
		owner      string // "-" : no decision at all
		reason     string // substring, when owner is ""
		wantIfaces []string
	}{
		{name: "hash over alive eligible nodes", ip: ip1, owner: hashOwner, wantIfaces: []string{"eth0"},
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "sticky current stays", ip: ip1, owner: other,
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: other}, Services: []Service{svc("a/x", ip1)}}},
		{name: "dead current moves", ip: ip1, owner: election.Owner(ip1, keys(withoutOwner)),
			view: View{Nodes: three, Alive: withoutOwner, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: []Service{svc("a/x", ip1)}}},
		{name: "not ready loses even if alive", ip: ip1, owner: "node-3",
			view: View{Nodes: nodes(Node{Name: "node-1", Labels: map[string]string{"l2": "yes"}}, ready("node-2", v1alpha1.LabelExcludeFromLoadBalancers+"="), ready("node-3")), Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "node selector", ip: ip1, owner: "node-2",
			view: View{Nodes: nodes(Node{Name: "node-1", Ready: true}, ready("node-2")), Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "interface missing", ip: ip1, owner: "node-2", wantIfaces: []string{"eth1"},
			view: View{Nodes: nodes(ready("node-1"), ready("node-2")), Alive: all, Ifaces: map[string][]Iface{"node-1": {{Name: "wlan0"}}, "node-2": {{Name: "eth1"}, {Name: "eth9"}}}, Services: []Service{svc("a/x", ip1)}}},
		{name: "no membership: readiness decides, interfaces unknown", ip: ip1, owner: election.Owner(ip1, []string{"node-1", "node-2", "node-3"}),
			view: View{Nodes: three, Services: []Service{svc("a/x", ip1)}}},
		{name: "eTP Local: only endpoint nodes", ip: ip1, owner: "node-3",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{{Key: "a/x", IPs: []netip.Addr{ip1}, Local: true, EndpointNodes: map[string]bool{"node-3": true}}}}},
		{name: "eTP Local without endpoints: none, with reason", ip: ip1, owner: "", reason: "no ready endpoint of a/x",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{{Key: "a/x", IPs: []netip.Addr{ip1}, Local: true}}}},
		{name: "all dead", ip: ip1, owner: "", reason: "speaker not running",
			view: View{Nodes: three, Alive: map[string]bool{}, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "IPv6 too", ip: ip6, owner: election.Owner(ip6, []string{"node-1", "node-2", "node-3"}),
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1, ip6)}}},
		{name: "BGP pool: not ours", ip: bgpIP, owner: "-",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", bgpIP)}}},
		{name: "outside every pool", ip: netip.MustParseAddr("198.51.100.1"), owner: "-",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", netip.MustParseAddr("198.51.100.1"))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.view.Config = cfg
			ds := Decide(tt.view)
			d := ds[tt.ip]
			if tt.owner == "-" {
				if d != nil {
					t.Fatalf("decision %+v, want none", d)
				}
				return
			}
			if d == nil {
				t.Fatal("no decision")
			}
			if d.Owner != tt.owner {
				t.Errorf("owner %q, want %q (reason %q)", d.Owner, tt.owner, d.Reason)
			}
			if tt.owner == "" && !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tt.reason)
			}
			if tt.wantIfaces != nil {
				var got []string
				for _, i := range d.Ifaces {
					got = append(got, i.Name)
				}
				if strings.Join(got, ",") != strings.Join(tt.wantIfaces, ",") {
					t.Errorf("interfaces %v, want %v", got, tt.wantIfaces)
				}
			}
		})
	}
}

// TestSharedIPOneOwner: Services sharing an address get one decision, and
// an eTP=Local Service among them narrows the candidates for both.
func TestSharedIPOneOwner(t *testing.T) {
	v := View{
		Config: testConfig(t),
		Nodes:  nodes(ready("node-1"), ready("node-2"), ready("node-3")),
		Services: []Service{
			{Key: "a/tcp", IPs: []netip.Addr{ip1}, Local: true, EndpointNodes: map[string]bool{"node-2": true}},
			{Key: "a/udp", IPs: []netip.Addr{ip1}, Local: true, EndpointNodes: map[string]bool{"node-2": true, "node-3": true}},
		},
	}
	ds := Decide(v)
	if len(ds) != 1 || ds[ip1].Owner != "node-2" || strings.Join(ds[ip1].Services, " ") != "a/tcp a/udp" {
		t.Fatalf("got %+v", ds[ip1])
	}
}

func TestMine(t *testing.T) {
	ds := map[netip.Addr]*Decision{
		ip1:   {IP: ip1, Owner: "node-1", Ifaces: []Iface{{Name: "eth1"}}},
		ip6:   {IP: ip6, Owner: "node-1"}, // owner's interfaces unknown: all
		bgpIP: {IP: bgpIP, Owner: "node-2"},
	}
	got := Mine(ds, "node-1", []Iface{{Name: "eth0"}, {Name: "eth1"}})
	if len(got["eth1"]) != 2 || len(got["eth0"]) != 1 || got["eth0"][0] != ip6 {
		t.Fatalf("got %v", got)
	}
}

func TestIfacesMeta(t *testing.T) {
	in := []Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "eth1", MAC: "02:00:00:00:00:02"}}
	s := encodeIfaces(in, election.MaxMeta)
	out := decodeIfaces(s)
	if len(out) != 2 || out[1] != in[1] {
		t.Fatalf("round trip %q: %v", s, out)
	}
	if s := encodeIfaces(in, 25); s != "eth0=02:00:00:00:00:01" {
		t.Fatalf("truncated to %q", s)
	}
	if out := decodeIfaces(""); len(out) != 0 || out == nil {
		t.Fatalf("empty meta gives %#v, want an empty list (a node with no interface)", out)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	return out
}
