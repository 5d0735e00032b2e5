package bgp

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/labnet"
)

// AS numbers of the lab: the router's, and the nodes' for eBGP. IPv6
// sessions are iBGP (the nodes use the router's AS), so that LOCAL_PREF,
// which only iBGP carries, reaches the router.
const (
	routerASN = 64500
	nodeASN   = 64512
)

// Service prefixes: from 203.0.113.96/27 (clear of the lab's pod CIDRs)
// and 2001:db8:3::/48.
var (
	svcAll  = netip.MustParsePrefix("203.0.113.100/32") // every node
	svcOne  = netip.MustParsePrefix("203.0.113.101/32") // node-1 only (eTP=Local, one endpoint)
	svcAgg  = netip.MustParsePrefix("203.0.113.112/28") // an aggregated route, every node
	svcV6   = netip.MustParsePrefix("2001:db8:3::100/128")
	comm    = uint32(64512<<16 | 100) // 64512:100
	comm2   = uint32(65535<<16 | 0xff01)
	lcomm   = [3]uint32{64512, 1, 2}
	lpref   = uint32(200)
	bfdFast = &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}
)

// bgpLab is a lab with a router running daemon and a speaker on every node.
type bgpLab struct {
	lab    *labnet.Lab
	router *labnet.Router
	daemon labnet.RouterDaemon
	nodes  []*node
}

// newBGPLab builds a three-node lab with a router running daemon ("frr" or
// "bird") configured by config, and a speaker on every node (no peers yet).
func newBGPLab(t *testing.T, daemon string, config func(l *labnet.Lab) labnet.RouterConfig) *bgpLab {
	t.Helper()
	l := labnet.NewForTest(t, labnet.Options{})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc := config(l)
	if testing.Verbose() {
		rc.Debug = true
	}
	var d labnet.RouterDaemon
	switch daemon {
	case "frr":
		d, err = r.StartFRR(ctx, rc)
	case "bird":
		d, err = r.StartBIRD(ctx, rc)
	default:
		err = fmt.Errorf("unknown daemon %q", daemon)
	}
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "ironlb-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	bl := &bgpLab{lab: l, router: r, daemon: d}
	for _, h := range l.Nodes() {
		bl.nodes = append(bl.nodes, startSpeaker(t, h, sockDir))
	}
	t.Cleanup(func() {
		if t.Failed() {
			bl.dump(t)
		}
	})
	return bl
}

// dump logs the router's view, for a failed test.
func (bl *bgpLab) dump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns, err := bl.daemon.Neighbors(ctx)
	t.Logf("router neighbors: %+v (%v)", ns, err)
	rs, err := bl.daemon.Routes(ctx)
	t.Logf("router routes: %+v (%v)", rs, err)
	for _, n := range bl.nodes {
		st, err := n.status()
		t.Logf("%s status: %+v (%v)", n.host.Name, st, err)
	}
}

// neighbors are the router's neighbours for the lab's nodes: eBGP over
// IPv4, iBGP over IPv6, with mod applied to each.
func neighbors(l *labnet.Lab, mod func(n *labnet.RouterNeighbor)) []labnet.RouterNeighbor {
	var out []labnet.RouterNeighbor
	for _, h := range l.Nodes() {
		for _, n := range []labnet.RouterNeighbor{{Address: h.IPv4, ASN: nodeASN}, {Address: h.IPv6, ASN: routerASN}} {
			if mod != nil {
				mod(&n)
			}
			out = append(out, n)
		}
	}
	return out
}

// peers are a node's sessions to the router: "router-v4" (eBGP) and
// "router-v6" (iBGP), with mod applied to each.
func (bl *bgpLab) peers(mod func(p *Peer)) []Peer {
	rh := bl.router.Host
	ps := []Peer{
		{Name: "router-v4", Address: rh.IPv4, MyASN: nodeASN, PeerASN: routerASN},
		{Name: "router-v6", Address: rh.IPv6, MyASN: routerASN, PeerASN: routerASN},
	}
	for i := range ps {
		if mod != nil {
			mod(&ps[i])
		}
	}
	return ps
}

// waitEstablished waits until every node's sessions are established.
func (bl *bgpLab) waitEstablished(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	return eventually(t, d, "sessions established", func() error {
		for _, n := range bl.nodes {
			st, err := n.status()
			if err != nil {
				return err
			}
			for _, s := range st {
				if s.State != StateEstablished {
					return fmt.Errorf("%s: %s is %s (%s)", n.host.Name, s.Name, s.State, s.LastError)
				}
			}
		}
		return nil
	})
}

// route returns the router's BGP route to p, or a zero BGPRoute.
func (bl *bgpLab) route(t *testing.T, p netip.Prefix) (labnet.BGPRoute, error) {
	rs, err := bl.daemon.Routes(t.Context())
	if err != nil {
		return labnet.BGPRoute{}, err
	}
	for _, r := range rs {
		if r.Prefix == p {
			return r, nil
		}
	}
	return labnet.BGPRoute{}, nil
}

// waitNextHops waits until the router's BGP table and its kernel both route
// p through exactly hops (none: no route), and returns how long it took.
func (bl *bgpLab) waitNextHops(t *testing.T, d time.Duration, p netip.Prefix, hops ...netip.Addr) time.Duration {
	t.Helper()
	slices.SortFunc(hops, netip.Addr.Compare)
	return eventually(t, d, fmt.Sprintf("%s via %v", p, hops), func() error {
		// The kernel first: netlink is cheap, a daemon's CLI is not.
		k, err := bl.router.Host.RouteNextHops(p)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(hops, k, cmpAddrs); diff != "" {
			return fmt.Errorf("kernel next hops (-want +got):\n%s", diff)
		}
		r, err := bl.route(t, p)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(hops, r.NextHops(), cmpAddrs); diff != "" {
			return fmt.Errorf("BGP next hops (-want +got):\n%s", diff)
		}
		return nil
	})
}

// cmpAddrs compares netip values, whose fields are unexported.
var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func nodeAddrs(ns []*node, v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, n := range ns {
		if v6 {
			out = append(out, n.host.IPv6)
		} else {
			out = append(out, n.host.IPv4)
		}
	}
	return out
}

// TestRouters peers three node speakers with FRR and with BIRD and checks,
// from the router's side, what they announce and how it changes.
func TestRouters(t *testing.T) {
	for _, daemon := range []string{"frr", "bird"} {
		t.Run(daemon, func(t *testing.T) {
			t.Parallel()
			testRouter(t, daemon)
		})
	}
}

func testRouter(t *testing.T, daemon string) {
	bl := newBGPLab(t, daemon, func(l *labnet.Lab) labnet.RouterConfig {
		return labnet.RouterConfig{ASN: routerASN, Neighbors: neighbors(l, func(n *labnet.RouterNeighbor) { n.HoldTime = 9 * time.Second })}
	})
	start := time.Now()
	for _, n := range bl.nodes {
		n.setPeers(t, bl.peers(func(p *Peer) { p.HoldTime, p.KeepaliveTime = 9*time.Second, 3*time.Second })...)
	}
	all := Route{Prefix: svcAll, Communities: []uint32{comm, comm2}, LargeCommunities: [][3]uint32{lcomm}}
	agg := Route{Prefix: svcAgg}
	v6 := Route{Prefix: svcV6, LocalPref: &lpref, Communities: []uint32{comm}}
	one := Route{Prefix: svcOne}
	for i, n := range bl.nodes {
		if i == 0 {
			n.setRoutes(t, all, agg, v6, one)
		} else {
			n.setRoutes(t, all, agg, v6)
		}
	}
	took := bl.waitEstablished(t, 20*time.Second)
	t.Logf("%s: %d sessions established %v after SetPeers", daemon, 2*len(bl.nodes), took.Round(time.Millisecond))
	v4hops, v6hops := nodeAddrs(bl.nodes, false), nodeAddrs(bl.nodes, true)
	bl.waitNextHops(t, 10*time.Second, svcAll, v4hops...)
	t.Logf("%s: routes in the kernel %v after SetPeers", daemon, time.Since(start).Round(time.Millisecond))
	bl.waitNextHops(t, 5*time.Second, svcAgg, v4hops...)
	bl.waitNextHops(t, 5*time.Second, svcV6, v6hops...)
	bl.waitNextHops(t, 5*time.Second, svcOne, bl.nodes[0].host.IPv4)

	t.Run("attributes", func(t *testing.T) {
		rs, err := bl.daemon.Routes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			for _, p := range r.Paths {
				var want labnet.BGPPath
				switch r.Prefix {
				case svcAll:
					want = labnet.BGPPath{Communities: []string{"64512:100", "65535:65281"}, LargeCommunities: []string{"64512:1:2"}, ASPath: "64512"}
				case svcV6:
					want = labnet.BGPPath{Communities: []string{"64512:100"}, LocalPref: lpref, HasLocalPref: true}
				case svcAgg, svcOne:
					want = labnet.BGPPath{ASPath: "64512"}
				default:
					t.Errorf("unexpected route %s", r.Prefix)
					continue
				}
				want.From, want.NextHop, want.Best = p.From, p.NextHop, p.Best
				if !r.Prefix.Addr().Is6() {
					// eBGP: no LOCAL_PREF on the wire; BIRD shows its
					// own default, FRR nothing.
					want.LocalPref, want.HasLocalPref = p.LocalPref, p.HasLocalPref
				}
				if diff := cmp.Diff(want, p, cmpAddrs); diff != "" {
					t.Errorf("%s from %s (-want +got):\n%s", r.Prefix, p.From, diff)
				}
				if p.From != p.NextHop {
					t.Errorf("%s from %s has next hop %s, want the node's own address", r.Prefix, p.From, p.NextHop)
				}
			}
		}
	})

	t.Run("client behind the router", func(t *testing.T) {
		ctx := t.Context()
		for _, p := range []netip.Prefix{svcAll, svcV6} {
			ip := p.Addr()
			for _, n := range bl.nodes {
				if err := n.host.AddServiceIP(ip); err != nil {
					t.Fatal(err)
				}
				eventually(t, 5*time.Second, "serve "+ip.String(), func() error {
					_, err := n.host.ServeHTTP(ctx, ip, 80)
					return err
				})
			}
			seen := map[string]int{}
			hc := bl.router.Outside.HTTPClient()
			for range 30 {
				resp, err := hc.Get("http://" + netip.AddrPortFrom(ip, 80).String() + "/")
				if err != nil {
					t.Fatalf("outside: GET %s: %v", ip, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[strings.TrimSpace(string(b))]++
			}
			t.Logf("%s: answers to outside by node: %v", ip, seen)
			if len(seen) == 0 {
				t.Errorf("no answer from %s", ip)
			}
		}
	})

	t.Run("withdraw", func(t *testing.T) {
		bl.nodes[0].setRoutes(t, all, agg, v6) // node-1 drops svcOne
		bl.nodes[1].setRoutes(t, agg, v6)      // node-2 drops svcAll
		bl.nodes[2].setRoutes(t, all, agg)     // node-3 drops svcV6
		bl.waitNextHops(t, 5*time.Second, svcOne)
		bl.waitNextHops(t, 5*time.Second, svcAll, bl.nodes[0].host.IPv4, bl.nodes[2].host.IPv4)
		bl.waitNextHops(t, 5*time.Second, svcV6, bl.nodes[0].host.IPv6, bl.nodes[1].host.IPv6)
		bl.waitNextHops(t, 5*time.Second, svcAgg, v4hops...)
	})

	t.Run("changing one session keeps the others", func(t *testing.T) {
		ctx := t.Context()
		before := map[string]PeerStatus{}
		for _, n := range bl.nodes {
			st, err := n.status()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				before[n.host.Name+"/"+s.Name] = s
			}
		}
		routerBefore, err := bl.daemon.Neighbors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// node-1: a new hold time on its IPv4 session re-opens that
		// session; new BFD settings on its IPv6 session do not.
		n1 := bl.nodes[0]
		n1.setPeers(t, bl.peers(func(p *Peer) {
			p.HoldTime, p.KeepaliveTime = 9*time.Second, 3*time.Second
			if p.Name == "router-v4" {
				p.HoldTime = 12 * time.Second
			} else {
				p.BFD = bfdFast
			}
		})...)
		eventually(t, 15*time.Second, "node-1 re-established", func() error {
			s, err := n1.peerStatus("router-v4")
			if err != nil {
				return err
			}
			if s.State != StateEstablished || !s.Since.After(before["node-1/router-v4"].Since) {
				return fmt.Errorf("node-1 router-v4: %+v", s)
			}
			return nil
		})
		bl.waitNextHops(t, 5*time.Second, svcAgg, v4hops...)
		for _, n := range bl.nodes {
			st, err := n.status()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				key := n.host.Name + "/" + s.Name
				if key == "node-1/router-v4" {
					continue
				}
				b := before[key]
				if s.State != StateEstablished || !s.Since.Equal(b.Since) || s.Drops != b.Drops {
					t.Errorf("%s was reset: before %+v, after %+v", key, b, s)
				}
			}
		}
		routerAfter, err := bl.daemon.Neighbors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range routerAfter {
			if i >= len(routerBefore) || a.Address == n1.host.IPv4 {
				continue
			}
			b := routerBefore[i]
			changed := a.State != "Established" || a.Established != b.Established
			if daemon == "bird" {
				// BIRD prints the time of the last state change from its
				// monotonic clock, so the same change can read a
				// millisecond apart; a reset would move it by the
				// seconds a reconnection takes.
				changed = changed || a.Since.Sub(b.Since).Abs() > 50*time.Millisecond
			}
			if changed {
				t.Errorf("router: session with %s was reset: before %+v, after %+v", a.Address, b, a)
			}
		}
	})
}

// TestMD5 has the router require a TCP MD5 password (RFC 2385) from every
// node: node-1 has the right one, node-2 a wrong one, node-3 none.
func TestMD5(t *testing.T) {
	for _, daemon := range []string{"frr", "bird"} {
		t.Run(daemon, func(t *testing.T) {
			t.Parallel()
			const password = "ironlb-md5"
			bl := newBGPLab(t, daemon, func(l *labnet.Lab) labnet.RouterConfig {
				var ns []labnet.RouterNeighbor
				for _, h := range l.Nodes() {
					ns = append(ns, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN, Password: password})
				}
				return labnet.RouterConfig{ASN: routerASN, Neighbors: ns}
			})
			for i, n := range bl.nodes {
				p := Peer{Name: "router", Address: bl.router.Host.IPv4, MyASN: nodeASN, PeerASN: routerASN}
				switch i {
				case 0:
					p.Password = password
				case 1:
					p.Password = "wrong"
				}
				n.setPeers(t, p)
				n.setRoutes(t, Route{Prefix: svcAll})
			}
			took := eventually(t, 20*time.Second, "node-1 established", func() error {
				s, err := bl.nodes[0].peerStatus("router")
				if err == nil && s.State != StateEstablished {
					err = fmt.Errorf("%+v", s)
				}
				return err
			})
			t.Logf("%s: session with the right password established after %v", daemon, took.Round(time.Millisecond))
			for _, n := range bl.nodes[1:] {
				eventually(t, 20*time.Second, n.host.Name+" reports why", func() error {
					s, err := n.peerStatus("router")
					if err != nil {
						return err
					}
					if s.State == StateEstablished || !strings.Contains(s.LastError, "i/o timeout") || !strings.Contains(s.LastError, "MD5") {
						return fmt.Errorf("%+v", s)
					}
					t.Logf("%s: %s: %s", daemon, n.host.Name, s.LastError)
					return nil
				})
			}
			bl.waitNextHops(t, 5*time.Second, svcAll, bl.nodes[0].host.IPv4)
		})
	}
}

// TestNodeLoss cuts node-3 off and kills its speaker, as a node that dies,
// and measures how long until the router stops sending it traffic: with
// BFD (300 ms x 3) within the detection time, without it at hold time
// expiry (3 s here).
func TestNodeLoss(t *testing.T) {
	for _, tc := range []struct {
		name, daemon string
		bfd          bool
		max          time.Duration
	}{
		{"frr/bfd", "frr", true, 2 * time.Second},
		{"bird/bfd", "bird", true, 2 * time.Second},
		{"frr/holdtime", "frr", false, 5 * time.Second},
		{"bird/holdtime", "bird", false, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const hold = 3 * time.Second
			bl := newBGPLab(t, tc.daemon, func(l *labnet.Lab) labnet.RouterConfig {
				var ns []labnet.RouterNeighbor
				for _, h := range l.Nodes() {
					ns = append(ns, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN, BFD: tc.bfd, HoldTime: hold})
				}
				return labnet.RouterConfig{ASN: routerASN, Neighbors: ns}
			})
			for _, n := range bl.nodes {
				p := Peer{Name: "router", Address: bl.router.Host.IPv4, MyASN: nodeASN, PeerASN: routerASN, HoldTime: hold, KeepaliveTime: time.Second}
				if tc.bfd {
					p.BFD = bfdFast
				}
				n.setPeers(t, p)
				n.setRoutes(t, Route{Prefix: svcAll})
			}
			took := bl.waitEstablished(t, 20*time.Second)
			t.Logf("%s: sessions established after %v", tc.name, took.Round(time.Millisecond))
			if tc.bfd {
				took = eventually(t, 10*time.Second, "BFD up", func() error {
					for _, n := range bl.nodes {
						s, err := n.peerStatus("router")
						if err != nil {
							return err
						}
						// Stable for a moment: a session
						// that flapped as it came up would
						// show here.
						if s.BFD != "Up" || s.State != StateEstablished || time.Since(s.Since) < 2*time.Second {
							return fmt.Errorf("%s: %+v", n.host.Name, s)
						}
					}
					return nil
				})
				t.Logf("%s: BFD up and sessions stable %v later", tc.name, took.Round(time.Millisecond))
			}
			bl.waitNextHops(t, 10*time.Second, svcAll, nodeAddrs(bl.nodes, false)...)

			// The node dies: first its link, so that nothing it does
			// on the way down (a FIN, a NOTIFICATION) reaches the
			// router, then its speaker.
			dead := bl.nodes[2]
			start := time.Now()
			if err := dead.host.LinkDown(); err != nil {
				t.Fatal(err)
			}
			if err := dead.proc.Kill(); err != nil {
				t.Fatal(err)
			}
			want := nodeAddrs(bl.nodes[:2], false)
			var gone time.Duration
			for {
				k, err := bl.router.Host.RouteNextHops(svcAll)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(k, want) {
					gone = time.Since(start)
					break
				}
				if time.Since(start) > tc.max+5*time.Second {
					t.Fatalf("the router still routes %s via %v %v after node-3 died", svcAll, k, time.Since(start))
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%s: router's kernel dropped the dead node's next hop %v after it died", tc.name, gone.Round(time.Millisecond))
			if gone > tc.max {
				t.Errorf("withdrawal took %v, want at most %v", gone, tc.max)
			}
			if !tc.bfd && gone < hold-time.Second {
				t.Errorf("withdrawal after %v without BFD, before the %v hold time could expire", gone, hold)
			}
			bl.waitNextHops(t, 2*time.Second, svcAll, want...)
		})
	}
}

// TestPerPeerRoutes runs two routers at once, FRR on 198.51.100.1 and BIRD
// on 198.51.100.3, and checks that a route naming peers goes to those only,
// also when the names change (which re-sends to the peers concerned).
func TestPerPeerRoutes(t *testing.T) {
	t.Parallel()
	l := labnet.NewForTest(t, labnet.Options{})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	birdAddr := netip.MustParseAddr("198.51.100.3")
	var ns []labnet.RouterNeighbor
	for _, h := range l.Nodes() {
		ns = append(ns, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN})
	}
	frr, err := r.StartFRR(ctx, labnet.RouterConfig{ASN: routerASN, Neighbors: ns, ListenAddress: r.Host.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	bird, err := r.StartBIRD(ctx, labnet.RouterConfig{ASN: routerASN, Neighbors: ns, ListenAddress: birdAddr, NoKernel: true})
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "ironlb-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	var nodes []*node
	for _, h := range l.Nodes() {
		n := startSpeaker(t, h, sockDir)
		n.setPeers(t,
			Peer{Name: "frr", Address: r.Host.IPv4, MyASN: nodeASN, PeerASN: routerASN},
			Peer{Name: "bird", Address: birdAddr, MyASN: nodeASN, PeerASN: routerASN})
		nodes = append(nodes, n)
	}
	a := netip.MustParsePrefix("203.0.113.100/32")
	b := netip.MustParsePrefix("203.0.113.101/32")
	c := netip.MustParsePrefix("203.0.113.102/32")
	hops := nodeAddrs(nodes, false)
	// check waits until daemon d has exactly the prefixes want, each via
	// every node.
	check := func(name string, d labnet.RouterDaemon, want ...netip.Prefix) {
		t.Helper()
		eventually(t, 15*time.Second, name+" has "+fmt.Sprint(want), func() error {
			rs, err := d.Routes(ctx)
			if err != nil {
				return err
			}
			got := map[netip.Prefix][]netip.Addr{}
			for _, r := range rs {
				got[r.Prefix] = r.NextHops()
			}
			wantM := map[netip.Prefix][]netip.Addr{}
			for _, p := range want {
				wantM[p] = hops
			}
			if diff := cmp.Diff(wantM, got, cmpAddrs); diff != "" {
				return fmt.Errorf("(-want +got):\n%s", diff)
			}
			return nil
		})
	}
	set := func(routes ...Route) {
		t.Helper()
		for _, n := range nodes {
			n.setRoutes(t, routes...)
		}
	}
	// sent checks that every node reports sending frrN prefixes to FRR
	// and birdN to BIRD.
	sent := func(frrN, birdN int) {
		t.Helper()
		for _, n := range nodes {
			for peer, want := range map[string]int{"frr": frrN, "bird": birdN} {
				st, err := n.peerStatus(peer)
				if err != nil {
					t.Fatal(err)
				}
				if st.State != StateEstablished || st.PrefixesSent != want {
					t.Errorf("%s to %s: %s, %d prefixes sent, want Established, %d", n.host.Name, peer, st.State, st.PrefixesSent, want)
				}
			}
		}
	}

	set(Route{Prefix: a}, Route{Prefix: b, Peers: []string{"frr"}}, Route{Prefix: c, Peers: []string{"bird"}})
	check("FRR", frr, a, b)
	check("BIRD", bird, a, c)
	sent(2, 2)

	// b moves from FRR to BIRD, c goes to both.
	set(Route{Prefix: a}, Route{Prefix: b, Peers: []string{"bird"}}, Route{Prefix: c})
	check("FRR", frr, a, c)
	check("BIRD", bird, a, b, c)
	sent(2, 3)

	// Two routes for one prefix merge their peers.
	set(Route{Prefix: b, Peers: []string{"bird"}}, Route{Prefix: b, Peers: []string{"frr"}}, Route{Prefix: c, Peers: []string{"frr"}})
	check("FRR", frr, b, c)
	check("BIRD", bird, b)
	sent(2, 1)
}
