package announce

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/election"
)

func decide(v View) map[netip.Addr]*Decision {
	return NewRound(v).Layer2(election.StickyOwner)
}

func TestLayer2(t *testing.T) {
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
		wantAnns   []string // Announcements, when the owner's interfaces are unknown
	}{
		{name: "hash over alive eligible nodes", ip: ip1, owner: hashOwner, wantIfaces: []string{"eth0"},
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "sticky current stays", ip: ip1, owner: other,
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: other}, Services: []Service{svc("a/x", ip1)}}},
		{name: "dead current moves", ip: ip1, owner: election.Owner(ip1, keys(withoutOwner)),
			view: View{Nodes: three, Alive: withoutOwner, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: []Service{svc("a/x", ip1)}}},
		{name: "not ready loses even if alive", ip: ip1, owner: "node-3",
			view: View{Nodes: nodes(Node{Name: "node-1", Labels: map[string]string{"l2": "yes"}}, excluded(ready("node-2")), ready("node-3")), Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "no node Ready: readiness ignored, the membership decides", ip: ip1, owner: election.Owner(ip1, keys(withoutOwner)),
			view: View{Nodes: nodes(notReady(ready("node-1")), notReady(ready("node-2")), notReady(ready("node-3"))), Alive: withoutOwner, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "a new member gets nothing while others may", ip: ip1, owner: election.Owner(ip1, keys(withoutOwner)),
			view: View{Nodes: three, Alive: all, New: map[string]bool{hashOwner: true}, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "new members only: they may", ip: ip1, owner: hashOwner,
			view: View{Nodes: three, Alive: all, New: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "node selector", ip: ip1, owner: "node-2",
			view: View{Nodes: nodes(Node{Name: "node-1", Ready: true}, ready("node-2")), Alive: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "interface missing", ip: ip1, owner: "node-2", wantIfaces: []string{"eth1"},
			view: View{Nodes: nodes(ready("node-1"), ready("node-2")), Alive: all, Ifaces: map[string][]Iface{"node-1": {{Name: "wlan0"}}, "node-2": {{Name: "eth1"}, {Name: "eth9"}}}, Services: []Service{svc("a/x", ip1)}}},
		{name: "no membership: readiness decides, interfaces unknown", ip: ip1, owner: election.Owner(ip1, []string{"node-1", "node-2", "node-3"}),
			wantAnns: []string{"eth0", "eth1"},
			view:     View{Nodes: three, Services: []Service{svc("a/x", ip1)}}},
		{name: "eTP Local: only endpoint nodes", ip: ip1, owner: "node-3",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{{Key: "a/x", IPs: []netip.Addr{ip1}, Local: true, EndpointNodes: map[string]bool{"node-3": true}}}}},
		{name: "eTP Local without endpoints: none, with reason", ip: ip1, owner: "", reason: "no ready endpoint of a/x",
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Services: []Service{{Key: "a/x", IPs: []netip.Addr{ip1}, Local: true}}}},
		{name: "all dead", ip: ip1, owner: "", reason: "speaker not running",
			view: View{Nodes: three, Alive: map[string]bool{}, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "data path down: the owner's addresses move", ip: ip1, owner: election.Owner(ip1, keys(withoutOwner)),
			view: View{Nodes: three, Alive: all, DataPathDown: map[string]bool{hashOwner: true}, DataPathUp: withoutOwner, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: []Service{svc("a/x", ip1)}}},
		{name: "data path down, the others' unknown (a degraded view): ignored", ip: ip1, owner: hashOwner,
			view: View{Nodes: three, Alive: all, DataPathDown: map[string]bool{hashOwner: true}, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: []Service{svc("a/x", ip1)}}},
		{name: "data path up again: sticky, nothing moves back", ip: ip1, owner: other,
			view: View{Nodes: three, Alive: all, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: other}, Services: []Service{svc("a/x", ip1)}}},
		{name: "data path down on every node: ignored", ip: ip1, owner: hashOwner,
			view: View{Nodes: three, Alive: all, DataPathDown: all, Ifaces: ifaces, Services: []Service{svc("a/x", ip1)}}},
		{name: "data path up only where no node may announce: ignored", ip: ip1, owner: election.Owner(ip1, []string{"node-1", "node-2"}),
			view: View{Nodes: nodes(ready("node-1"), ready("node-2"), notReady(ready("node-3")), excluded(ready("node-4")), ready("node-5")),
				Alive: map[string]bool{"node-1": true, "node-2": true, "node-3": true, "node-4": true}, DataPathDown: map[string]bool{"node-1": true, "node-2": true},
				DataPathUp: map[string]bool{"node-3": true, "node-4": true, "node-5": true},
				Ifaces:     ifaces, Services: []Service{svc("a/x", ip1)}}},
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
			ds := decide(tt.view)
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
			if tt.wantAnns != nil {
				if d.Ifaces != nil {
					t.Errorf("interfaces %v, want none (unknown)", d.Ifaces)
				}
				if diff := cmp.Diff(tt.wantAnns, d.Announcements); diff != "" {
					t.Errorf("announcements (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestLayer2Reason checks the whole message a Service carries when no
// node may answer for its address: every node with the first check it
// fails, grouped by reason in the order the reasons first appear (nodes
// by name), at most three names per reason.
func TestLayer2Reason(t *testing.T) {
	cfg := testConfig(t)
	local := Service{Key: "a/x", IPs: []netip.Addr{ip1}, Local: true, EndpointNodes: map[string]bool{"node-1": true}}
	for _, tt := range []struct {
		name string
		view View
		want string
	}{
		{"no nodes", View{Services: []Service{local}}, "no node may announce it: the cluster has no nodes"},
		{"each check", View{
			Nodes: nodes(
				Node{Name: "node-1", Labels: map[string]string{"l2": "yes"}},
				excluded(ready("node-2")),
				ready("node-3"),
				Node{Name: "node-4", Ready: true},
				ready("node-5"),
				ready("node-6"),
			),
			Alive:    map[string]bool{"node-1": true, "node-2": true, "node-4": true, "node-5": true, "node-6": true},
			Ifaces:   map[string][]Iface{"node-5": {{Name: "wlan0"}}},
			Services: []Service{local},
		}, "no node may announce it (node-1: not Ready; node-2: labelled " + v1alpha1.LabelExcludeFromLoadBalancers +
			"; node-3: speaker not running or unreachable; node-4: not selected by any L2Announcement's nodeSelectors" +
			"; node-5: has none of the announced interfaces; node-6: no ready endpoint of a/x (externalTrafficPolicy: Local))"},
		{"data path down", View{
			Nodes:        nodes(ready("node-1"), Node{Name: "node-2", Ready: true}),
			Alive:        map[string]bool{"node-1": true, "node-2": true},
			DataPathDown: map[string]bool{"node-1": true},
			DataPathUp:   map[string]bool{"node-2": true},
			Services:     []Service{{Key: "a/x", IPs: []netip.Addr{ip1}}},
		}, "no node may announce it (node-1: kube-proxy's health endpoint fails; node-2: not selected by any L2Announcement's nodeSelectors)"},
		{"more than three nodes", View{
			Nodes:    nodes(ready("node-1"), ready("node-2"), ready("node-3"), ready("node-4"), ready("node-5")),
			Alive:    map[string]bool{},
			Services: []Service{{Key: "a/x", IPs: []netip.Addr{ip1}}},
		}, "no node may announce it (node-1, node-2, node-3 and 2 more: speaker not running or unreachable)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.view.Config = cfg
			d := decide(tt.view)[ip1]
			if d == nil || d.Owner != "" {
				t.Fatalf("decision %+v, want one with no owner", d)
			}
			if d.Reason != tt.want {
				t.Errorf("reason\n%q, want\n%q", d.Reason, tt.want)
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
	ds := decide(v)
	if len(ds) != 1 || ds[ip1].Owner != "node-2" || strings.Join(ds[ip1].Services, " ") != "a/tcp a/udp" {
		t.Fatalf("got %+v", ds[ip1])
	}
	// In Layer 2 one node gets the address's traffic for every Service:
	// a Cluster Service sharing it does not lift the Local one's rule.
	v.Services[1] = Service{Key: "a/udp", IPs: []netip.Addr{ip1}}
	if d := decide(v)[ip1]; d.Owner != "node-2" {
		t.Fatalf("shared with a Cluster Service: got %+v", d)
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

// TestLayer2Restarting: a node whose speaker restarts in place keeps the
// addresses it announces, and the running node the election would pick
// without it answers in its name; it takes no address it did not have,
// and loses its addresses as any node does when it is not Ready.
func TestLayer2Restarting(t *testing.T) {
	cfg := testConfig(t)
	three := nodes(ready("node-1"), ready("node-2"), ready("node-3"))
	ifaces := map[string][]Iface{"node-1": eth0("02:00:00:00:00:01"), "node-2": eth0("02:00:00:00:00:02"), "node-3": eth0("02:00:00:00:00:03")}
	all := []string{"node-1", "node-2", "node-3"}
	hashOwner := election.Owner(ip1, all)
	var running []string
	alive := map[string]bool{}
	for _, n := range all {
		if n != hashOwner {
			running = append(running, n)
			alive[n] = true
		}
	}
	successor := election.Owner(ip1, running)
	svc := []Service{{Key: "a/x", IPs: []netip.Addr{ip1}}}
	restarting := map[string]bool{hashOwner: true}
	for _, tt := range []struct {
		name         string
		view         View
		owner, proxy string
	}{
		{"keeps its address, answered in its name", View{Nodes: three, Alive: alive, Restarting: restarting, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: svc},
			hashOwner, successor},
		{"takes no address it did not announce", View{Nodes: three, Alive: alive, Restarting: restarting, Ifaces: ifaces, Services: svc},
			successor, ""},
		{"another's address stays there", View{Nodes: three, Alive: alive, Restarting: restarting, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: running[0]}, Services: svc},
			running[0], ""},
		{"not Ready: moves", View{Nodes: nodes(notReady(ready(hashOwner)), ready(running[0]), ready(running[1])), Alive: alive, Restarting: restarting, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: svc},
			successor, ""},
		{"time ran out (not listed): moves", View{Nodes: three, Alive: alive, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: svc},
			successor, ""},
		{"nobody else may: kept, nobody answers", View{Nodes: three, Alive: map[string]bool{}, Restarting: restarting, Ifaces: ifaces, Current: map[netip.Addr]string{ip1: hashOwner}, Services: svc},
			hashOwner, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.view.Config = cfg
			d := decide(tt.view)[ip1]
			if d == nil || d.Owner != tt.owner || d.Proxy != tt.proxy {
				t.Fatalf("decision %+v, want owner %q, proxy %q", d, tt.owner, tt.proxy)
			}
			if tt.owner == hashOwner && (len(d.Ifaces) != 1 || d.Ifaces[0].MAC == "") {
				t.Errorf("the restarting owner's interfaces are %v, want its published ones", d.Ifaces)
			}
		})
	}
}

func TestProxied(t *testing.T) {
	ds := map[netip.Addr]*Decision{
		ip1:   {IP: ip1, Owner: "node-1", Proxy: "node-2", Ifaces: []Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "eth1", MAC: "02:00:00:00:01:01"}}},
		ip6:   {IP: ip6, Owner: "node-1", Proxy: "node-2"}, // the owner's interfaces unknown: no MAC to name
		bgpIP: {IP: bgpIP, Owner: "node-2"},
	}
	got := Proxied(ds, "node-2", []Iface{{Name: "eth0", MAC: "02:00:00:00:00:02"}, {Name: "eth2"}})
	want := map[string]map[netip.Addr]string{"eth0": {ip1: "02:00:00:00:00:01"}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Proxied (-want +got):\n%s", diff)
	}
	if got := Proxied(ds, "node-3", nil); len(got) != 0 {
		t.Errorf("node-3 proxies %v", got)
	}
}
