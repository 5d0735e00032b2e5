package labnet

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouter(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 2})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddRouter(ctx); err == nil {
		t.Error("a second router was added")
	}
	if r.Host.IPv4.String() != "198.51.100.1" || r.Host.IPv6.String() != "2001:db8:1::1" {
		t.Errorf("router has %s and %s", r.Host.IPv4, r.Host.IPv6)
	}
	if r.Outside.IPv4.String() != "203.0.113.130" || r.Outside.IPv6.String() != "2001:db8:2::2" {
		t.Errorf("outside has %s and %s", r.Outside.IPv4, r.Outside.IPv6)
	}
	// outside reaches the router on both of its links, and a node
	// reaches outside through the router (forwarding, routes both ways).
	for _, target := range []netip.Addr{routerOutsideV4, routerOutsideV6, r.Host.IPv4, r.Host.IPv6, l.Node(1).IPv4, l.Node(2).IPv6} {
		// Through the router, the router resolves the node's address
		// first, and on a loaded machine a first ping may time out.
		var err error
		for range 3 {
			if _, err = r.Outside.Ping(ctx, target); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("outside cannot ping %s: %v", target, err)
		}
	}
	hops, err := l.Node(1).RouteNextHops(outsideV4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{r.Host.IPv4}, hops, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("node-1's route to %s (-want +got):\n%s", outsideV4, diff)
	}
	if _, err := os.Stat(r.runDir); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.runDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run directory %s left behind: %v", r.runDir, err)
	}
}

func TestRouterDaemonsStartAndStop(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := RouterConfig{Neighbors: []RouterNeighbor{{Address: l.Node(1).IPv4, ASN: 64512, Password: "pw", BFD: true}}}
	f, err := r.StartFRR(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := f.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].Address != l.Node(1).IPv4 || ns[0].State == "Established" {
		t.Errorf("FRR neighbors: %+v", ns)
	}
	if rs, err := f.Routes(ctx); err != nil || len(rs) != 0 {
		t.Errorf("FRR routes: %v, %v", rs, err)
	}
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	b, err := r.StartBIRD(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err = b.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].Address != l.Node(1).IPv4 || ns[0].Since.IsZero() {
		t.Errorf("BIRD neighbors: %+v", ns)
	}
	if rs, err := b.Routes(ctx); err != nil || len(rs) != 0 {
		t.Errorf("BIRD routes: %v, %v", rs, err)
	}
	if err := (RouterConfig{Neighbors: []RouterNeighbor{{Address: l.Node(1).IPv4}}}).validate(); err == nil {
		t.Error("a neighbour without an AS number is accepted")
	}
}

func TestParseBIRDRoutes(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Table master4:
203.0.113.100/32     unicast [n_198_51_100_11 2026-11-26 22:30:38.706] * (100) [AS64512i]
	via 198.51.100.11 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 64512
	BGP.next_hop: 198.51.100.11
	BGP.local_pref: 100
	BGP.community: (64512,100) (65535,65281)
	BGP.large_community: (64512, 1, 2)
                     unicast [n_198_51_100_12 2026-11-26 22:30:38.710] (100) [AS64512i]
	via 198.51.100.12 on eth0
	Type: BGP univ
	BGP.next_hop: 198.51.100.12
Table master6:
2001:db8:3::100/128  unicast [n_2001_db8_1__11 2026-11-26 22:30:38.706] * (100) [i]
	via 2001:db8:1::11 on eth0
	BGP.next_hop: 2001:db8:1::11 fe80::1
	BGP.local_pref: 200
`
	got, err := parseBIRDRoutes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	want := []BGPRoute{
		{Prefix: netip.MustParsePrefix("203.0.113.100/32"), Paths: []BGPPath{
			{From: a("198.51.100.11"), NextHop: a("198.51.100.11"), LocalPref: 100, HasLocalPref: true,
				Communities: []string{"64512:100", "65535:65281"}, LargeCommunities: []string{"64512:1:2"}, ASPath: "64512", Best: true},
			{From: a("198.51.100.12"), NextHop: a("198.51.100.12")},
		}},
		{Prefix: netip.MustParsePrefix("2001:db8:3::100/128"), Paths: []BGPPath{
			{From: a("2001:db8:1::11"), NextHop: a("2001:db8:1::11"), LocalPref: 200, HasLocalPref: true, Best: true},
		}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("parseBIRDRoutes (-want +got):\n%s", diff)
	}
}

func TestParseBIRDProtocols(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-26 22:30:38.706  
n_198_51_100_11 BGP        ---        up     2026-11-26 22:30:40.001  Established   
  BGP state:          Established
    Neighbor address: 198.51.100.11
n_2001_db8_1__11 BGP        ---        start  2026-11-26 22:30:38.706  Active        Socket: Connection refused
  BGP state:          Active
    Last error:       Socket: Connection refused
`
	got := parseBIRDProtocols([]byte(out))
	if len(got) != 2 || got[0].State != "Established" || got[0].Address.String() != "198.51.100.11" ||
		got[1].Address.String() != "2001:db8:1::11" || !strings.Contains(got[1].Info, "refused") ||
		got[0].Since.Format(birdTime) != "2026-11-26 22:30:40.001" {
		t.Errorf("parseBIRDProtocols = %+v", got)
	}
}

func TestParseFRRPrefixes(t *testing.T) {
	out := `{"prefix":"203.0.113.100/32","paths":[{"aspath":{"string":"64512"},"community":{"string":"64512:100 no-export"},
"largeCommunity":{"string":"64512:1:2"},"nexthops":[{"ip":"198.51.100.11","afi":"ipv4"}],"peer":{"peerId":"198.51.100.11"},
"bestpath":{"overall":true}}]}
{}
{"prefix":"2001:db8:3::100/128","paths":[{"aspath":{"string":"Local"},"locPrf":200,"nexthops":[{"ip":"2001:db8:1::11"},{"ip":"fe80::1"}],"peer":{"peerId":"2001:db8:1::11"}}]}`
	got, err := parseFRRPrefixes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parseFRRPrefixes = %+v", got)
	}
	p := got[0].Paths[0]
	if p.ASPath != "64512" || !cmp.Equal(p.Communities, []string{"64512:100", "65535:65281"}) || !p.Best || p.NextHop.String() != "198.51.100.11" {
		t.Errorf("IPv4 path %+v", p)
	}
	p = got[1].Paths[0]
	if p.ASPath != "" || p.LocalPref != 200 || !p.HasLocalPref || p.NextHop.String() != "2001:db8:1::11" {
		t.Errorf("IPv6 path %+v", p)
	}
}
