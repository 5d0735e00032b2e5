package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// The graceful restart tests' timers: the restart time the speakers offer
// (short, so that a speaker that does not come back is given up within
// the test), the hold time, and BFD at the fault suite's 100 ms x 3.
const (
	grRestartTime = 5 * time.Second
	grHold        = 9 * time.Second
)

var grBFD = &BFD{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}

// grLab is a lab whose nodes' speakers offer graceful restart, each with a
// BFD-watched session to the router and the route svcAll.
type grLab struct {
	*bgpLab
	sockDir string
	// noBFD names the nodes whose sessions run without BFD.
	noBFD map[string]bool
}

// newGRLab builds the lab; the sessions of the nodes named in noBFD run
// without BFD.
func newGRLab(t *testing.T, daemon string, noBFD ...string) *grLab {
	t.Helper()
	skip := map[string]bool{}
	for _, n := range noBFD {
		skip[n] = true
	}
	l := labnet.NewForTest(t, labnet.Options{})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ns []labnet.RouterNeighbor
	for _, h := range l.Nodes() {
		ns = append(ns, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN, BFD: !skip[h.Name], HoldTime: grHold})
	}
	rc := labnet.RouterConfig{ASN: routerASN, Neighbors: ns, BFD: labnet.RouterBFD{Interval: 100 * time.Millisecond, Multiplier: 3}}
	if testing.Verbose() {
		rc.Debug = true
	}
	var d labnet.RouterDaemon
	switch daemon {
	case "frr":
		d, err = r.StartFRR(ctx, rc)
	case "bird":
		d, err = r.StartBIRD(ctx, rc)
	}
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "ironlb-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	gl := &grLab{bgpLab: &bgpLab{lab: l, router: r, daemon: d}, sockDir: sockDir, noBFD: skip}
	for _, h := range l.Nodes() {
		gl.nodes = append(gl.nodes, gl.start(t, h))
	}
	t.Cleanup(func() {
		if t.Failed() {
			gl.dump(t)
		}
	})
	return gl
}

// start starts a graceful-restart speaker on h, with its session and route.
func (gl *grLab) start(t *testing.T, h *labnet.Host) *node {
	t.Helper()
	n := startSpeakerEnv(t, h, gl.sockDir, helperRestartEnv+"="+grRestartTime.String())
	p := Peer{Name: "router", Address: gl.router.Host.IPv4, MyASN: nodeASN, PeerASN: routerASN,
		HoldTime: grHold, KeepaliveTime: 3 * time.Second, BFD: grBFD}
	if gl.noBFD[h.Name] {
		p.BFD = nil
	}
	n.setPeers(t, p)
	n.setRoutes(t, Route{Prefix: svcAll})
	return n
}

// waitUp waits until n's session is established with BFD up, if it has
// BFD.
func waitUp(t *testing.T, n *node, d time.Duration) time.Duration {
	t.Helper()
	return eventually(t, d, n.host.Name+" established, BFD up", func() error {
		s, err := n.peerStatus("router")
		if err == nil && (s.State != StateEstablished || s.BFD != "Up" && s.BFD != "") {
			err = fmt.Errorf("%+v", s)
		}
		return err
	})
}

// restart has n's speaker stop to restart (Speaker.PrepareRestart) and
// waits until its process has exited.
func restart(t *testing.T, n *node) {
	t.Helper()
	resp, err := n.hc.Post("http://speaker/restart", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-n.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: speaker did not stop", n.host.Name)
	}
}

// sample is one look at the router: the next hops of svcAll in its kernel
// and in its BGP table.
type sample struct {
	at           time.Duration
	kernel, bgp  []netip.Addr
	kerr, bgpErr error
}

func (s sample) has(a netip.Addr) bool {
	return s.kerr == nil && s.bgpErr == nil && slices.Contains(s.kernel, a) && slices.Contains(s.bgp, a)
}

func (s sample) lacks(a netip.Addr) bool {
	return s.kerr == nil && s.bgpErr == nil && !slices.Contains(s.kernel, a) && !slices.Contains(s.bgp, a)
}

// look samples the router once, at since start.
func (gl *grLab) look(ctx context.Context, start time.Time) sample {
	s := sample{at: time.Since(start)}
	s.kernel, s.kerr = gl.router.Host.RouteNextHops(svcAll)
	s.bgp, s.bgpErr = gl.bgpHops(ctx)
	return s
}

// bgpHops are the next hops of svcAll in the router's BGP table, read with
// one command (labnet's Routes reads every table, too slow to sample).
func (gl *grLab) bgpHops(ctx context.Context) ([]netip.Addr, error) {
	switch d := gl.daemon.(type) {
	case *labnet.FRR:
		out, err := d.VTY(ctx, "show bgp ipv4 unicast "+svcAll.String()+" json")
		if err != nil {
			return nil, err
		}
		var p struct {
			Paths []struct {
				Nexthops []struct {
					IP string `json:"ip"`
				} `json:"nexthops"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(out, &p); err != nil {
			return nil, err
		}
		var hops []netip.Addr
		for _, path := range p.Paths {
			for _, nh := range path.Nexthops {
				if a, err := netip.ParseAddr(nh.IP); err == nil {
					hops = append(hops, a)
				}
			}
		}
		slices.SortFunc(hops, netip.Addr.Compare)
		return hops, nil
	default:
		rs, err := gl.daemon.Routes(ctx)
		for _, r := range rs {
			if r.Prefix == svcAll {
				return r.NextHops(), err
			}
		}
		return nil, err
	}
}

// watch samples the router every 100 ms from start until done returns
// true or d has passed.
func (gl *grLab) watch(ctx context.Context, start time.Time, d time.Duration, done func(s sample) bool) []sample {
	var out []sample
	for time.Since(start) < d {
		next := time.Now().Add(100 * time.Millisecond)
		s := gl.look(ctx, start)
		out = append(out, s)
		if done(s) {
			return out
		}
		time.Sleep(time.Until(next))
	}
	return out
}

// watchBackground samples the router every 100 ms from start, in the
// background, until the returned function is called; that returns the
// samples.
func (gl *grLab) watchBackground(ctx context.Context, start time.Time) func() []sample {
	stop := make(chan struct{})
	res := make(chan []sample, 1)
	go func() {
		var out []sample
		for {
			next := time.Now().Add(100 * time.Millisecond)
			out = append(out, gl.look(ctx, start))
			select {
			case <-stop:
				res <- out
				return
			case <-ctx.Done():
				res <- out
				return
			case <-time.After(time.Until(next)):
			}
		}
	}()
	return func() []sample {
		close(stop)
		return <-res
	}
}

// stale is what the router says of the path from a: FRR's "stale" flag,
// BIRD's route detail, for the log.
func (gl *grLab) stale(ctx context.Context, a netip.Addr) string {
	switch d := gl.daemon.(type) {
	case *labnet.FRR:
		out, err := d.VTY(ctx, "show bgp ipv4 unicast "+svcAll.String()+" json")
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("FRR path from %s stale: %v", a, frrStale(string(out), a))
	case *labnet.BIRD:
		out, err := d.Command(ctx, "show", "route", "all", "for", svcAll.String(), "protocol", birdProto(a))
		if err != nil {
			return err.Error()
		}
		return "BIRD: " + strings.Join(strings.Fields(string(out)), " ")
	}
	return ""
}

// frrStale reports whether FRR's JSON for svcAll shows the path from a as
// stale. The JSON's paths name their peer before or after the flag, so it
// looks at each path's text.
func frrStale(out string, a netip.Addr) bool {
	for _, p := range strings.Split(out, "\"aspath\"") {
		if strings.Contains(p, "\""+a.String()+"\"") && strings.Contains(p, "\"stale\":true") {
			return true
		}
	}
	return false
}

// TestGracefulRestart runs three speakers offering graceful restart
// (restart time 5 s) with BFD (100 ms x 3) against FRR and BIRD, as
// routers with their default graceful restart helper, and checks from the
// router's table and kernel, sampled every 100 ms:
// (with BIRD, node-1's and node-2's sessions run without BFD: see below)
//   - node-1 stops to restart and a new speaker starts a second later: its
//     route stays in every sample, through the stop, the BFD session
//     going down, and the new session's End-of-RIB, and well past the
//     restart time;
//   - node-1's new speaker then stops for good (no PrepareRestart): the
//     route goes at once;
//   - node-2 stops to restart and never comes back: the route stays
//     until the restart time is nearly over, and goes when it is;
//   - node-3 dies (its link cut, then its speaker killed): BFD withdraws
//     its route within a second, graceful restart notwithstanding.
func TestGracefulRestart(t *testing.T) {
	for _, daemon := range []string{"frr", "bird"} {
		t.Run(daemon, func(t *testing.T) {
			t.Parallel()
			testGracefulRestart(t, daemon)
		})
	}
}

func testGracefulRestart(t *testing.T, daemon string) {
	var noBFD []string
	if daemon == "bird" {
		// BIRD 2.0.12's "bfd on" stops the protocol, flushing the
		// stale routes, on any BFD session going from Up to Down, even
		// while it keeps the routes of a restarting neighbour
		// (bgp_bfd_notify in proto/bgp/bgp.c), and a neighbour's
		// AdminDown is a Down to it (bfd_session_process_ctl): nothing
		// a restarting speaker sends keeps its routes there. So
		// graceful restart keeps routes at BIRD on sessions without BFD
		// only (TestGracefulRestartBIRDBFD shows the other case).
		noBFD = []string{"node-1", "node-2"}
	}
	gl := newGRLab(t, daemon, noBFD...)
	for _, n := range gl.nodes {
		waitUp(t, n, 20*time.Second)
	}
	all := nodeAddrs(gl.nodes, false)
	gl.waitNextHops(t, 10*time.Second, svcAll, all...)
	n1, n2, n3 := gl.nodes[0], gl.nodes[1], gl.nodes[2]
	a1, a2, a3 := n1.host.IPv4, n2.host.IPv4, n3.host.IPv4

	// Restart and come back.
	func() {
		start := time.Now()
		stopWatch := gl.watchBackground(t.Context(), start)
		restart(t, n1)
		t.Logf("%s: node-1 stopped to restart in %v", daemon, time.Since(start).Round(time.Millisecond))
		// Past BFD's detection time (0.3 s): the router's BFD session
		// is down by now.
		time.Sleep(time.Second)
		t.Logf("%s: %s", daemon, gl.stale(t.Context(), a1))
		n := gl.start(t, n1.host)
		gl.nodes[0] = n
		eventually(t, 15*time.Second, "node-1 established again", func() error {
			s, err := n.peerStatus("router")
			if err == nil && s.State != StateEstablished {
				err = fmt.Errorf("%+v", s)
			}
			return err
		})
		t.Logf("%s: new speaker established %v after the stop", daemon, time.Since(start).Round(time.Millisecond))
		waitUp(t, n, 10*time.Second)
		// On past the restart time, and until the path is not stale.
		time.Sleep(time.Until(start.Add(grRestartTime + 3*time.Second)))
		samples := stopWatch()
		fresh := time.Duration(-1)
		if d, ok := gl.daemon.(*labnet.FRR); ok {
			out, err := d.VTY(t.Context(), "show bgp ipv4 unicast "+svcAll.String()+" json")
			if err == nil && !frrStale(string(out), a1) {
				fresh = time.Since(start)
			}
		}
		t.Logf("%s: %s", daemon, gl.stale(t.Context(), a1))
		for _, s := range samples {
			if !s.has(a1) {
				t.Errorf("%v after node-1 stopped to restart: router routes %s via kernel %v, BGP %v (%v %v); want node-1 throughout", s.at.Round(time.Millisecond), svcAll, s.kernel, s.bgp, s.kerr, s.bgpErr)
			}
		}
		t.Logf("%s: node-1's route in all %d samples over %v (restart time %v); FRR stale flag cleared: %v", daemon, len(samples), samples[len(samples)-1].at.Round(time.Millisecond), grRestartTime, fresh >= 0)
		if fresh < 0 && daemon == "frr" {
			t.Errorf("FRR still marks node-1's path stale after its new speaker's End-of-RIB")
		}
	}()

	// Stop for good.
	func() {
		n := gl.nodes[0]
		start := time.Now()
		if err := n.proc.Stop(); err != nil {
			t.Fatal(err)
		}
		samples := gl.watch(t.Context(), start, 5*time.Second, func(s sample) bool { return s.lacks(a1) })
		last := samples[len(samples)-1]
		if !last.lacks(a1) {
			t.Fatalf("node-1's route still at the router %v after a plain stop: %+v", last.at, last)
		}
		t.Logf("%s: plain stop: node-1's route gone after %v", daemon, last.at.Round(time.Millisecond))
		if last.at > time.Second {
			t.Errorf("a plain stop withdrew after %v, want within a second", last.at)
		}
	}()

	// Restart and never come back.
	func() {
		start := time.Now()
		restart(t, n2)
		samples := gl.watch(t.Context(), start, grRestartTime+5*time.Second, func(s sample) bool { return s.lacks(a2) })
		last := samples[len(samples)-1]
		if !last.lacks(a2) {
			t.Fatalf("node-2's route still at the router %v after it stopped to restart: %+v", last.at, last)
		}
		for _, s := range samples[:len(samples)-1] {
			if !s.has(a2) && s.at < grRestartTime-time.Second {
				t.Errorf("%v after node-2 stopped to restart, its route is gone (kernel %v, BGP %v); want it kept for the restart time %v", s.at.Round(time.Millisecond), s.kernel, s.bgp, grRestartTime)
				break
			}
		}
		t.Logf("%s: node-2 not back: its route gone %v after it stopped (restart time %v)", daemon, last.at.Round(time.Millisecond), grRestartTime)
		if last.at < grRestartTime-time.Second || last.at > grRestartTime+2*time.Second {
			t.Errorf("node-2's route went %v after it stopped, want about the restart time %v", last.at, grRestartTime)
		}
	}()

	// Node death.
	func() {
		// As TestNodeLoss: the link first, so that nothing the speaker
		// does on its way down reaches the router.
		start := time.Now()
		if err := n3.host.LinkDown(); err != nil {
			t.Fatal(err)
		}
		if err := n3.proc.Kill(); err != nil {
			t.Fatal(err)
		}
		samples := gl.watch(t.Context(), start, 5*time.Second, func(s sample) bool { return s.lacks(a3) })
		last := samples[len(samples)-1]
		if !last.lacks(a3) {
			t.Fatalf("node-3's route still at the router %v after it died: %+v", last.at, last)
		}
		t.Logf("%s: node-3 died: its route gone after %v", daemon, last.at.Round(time.Millisecond))
		if last.at > time.Second {
			t.Errorf("a dead node's route went after %v, want within a second (BFD 100 ms x 3)", last.at)
		}
	}()
}

// TestGracefulRestartBIRDBFD shows what BIRD does to a restarting speaker
// whose session has BFD ("bfd on"): it keeps the routes for as long as its
// BFD session takes to fail (100 ms x 3 here), then withdraws them, as if
// the speaker had no graceful restart (see testGracefulRestart). The test
// fails if that changes: then the README's advice (no BFD on the sessions
// of restarting speakers, for BIRD) is to be revisited.
func TestGracefulRestartBIRDBFD(t *testing.T) {
	t.Parallel()
	gl := newGRLab(t, "bird")
	for _, n := range gl.nodes {
		waitUp(t, n, 20*time.Second)
	}
	gl.waitNextHops(t, 10*time.Second, svcAll, nodeAddrs(gl.nodes, false)...)
	n1 := gl.nodes[0]
	start := time.Now()
	restart(t, n1)
	samples := gl.watch(t.Context(), start, grRestartTime, func(s sample) bool { return s.lacks(n1.host.IPv4) })
	last := samples[len(samples)-1]
	t.Logf("bird, BFD on: node-1 stopped to restart; its route gone after %v (restart time %v)", last.at.Round(time.Millisecond), grRestartTime)
	if !last.lacks(n1.host.IPv4) || last.at > 2*time.Second {
		t.Errorf("BIRD kept the route of a restarting speaker with BFD %v: %+v", last.at, last)
	}
}

// TestRestartConfig checks the graceful restart capability the sessions
// are configured with, and when a session is opened as a restarting
// speaker's.
func TestRestartConfig(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {time.Second, true}, {20 * time.Second, true}, {4095 * time.Second, true},
		{-time.Second, false}, {500 * time.Millisecond, false}, {1500 * time.Millisecond, false}, {4096 * time.Second, false}} {
		if err := checkRestartTime(tc.d); (err == nil) != tc.ok {
			t.Errorf("checkRestartTime(%v) = %v, want ok %v", tc.d, err, tc.ok)
		}
	}
	p := Peer{Name: "r", Address: netip.MustParseAddr("2001:db8::1"), MyASN: 1, PeerASN: 2}
	if ap := apiPeer(p, Options{}); ap.GracefulRestart != nil || ap.AfiSafis[0].MpGracefulRestart != nil {
		t.Errorf("no restart time: graceful restart configured: %v", ap)
	}
	sp, err := New(Options{RouterID: netip.MustParseAddr("192.0.2.1"), RestartTime: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sp.since = time.Now()
	ap := sp.newPeer(p)
	gr := ap.GracefulRestart
	if gr == nil || !gr.Enabled || gr.RestartTime != 20 || gr.DeferralTime != 5 || !gr.LocalRestarting || gr.HelperOnly || gr.NotificationEnabled || gr.LonglivedEnabled {
		t.Errorf("just started: graceful restart %v, want enabled, 20 s, deferral 5 s, restarting", gr)
	}
	if mp := ap.AfiSafis[0].MpGracefulRestart; mp == nil || !mp.Config.Enabled {
		t.Errorf("graceful restart not enabled for the session's family: %v", ap.AfiSafis[0])
	}
	sp.since = time.Now().Add(-21 * time.Second)
	if gr := sp.newPeer(p).GracefulRestart; gr == nil || gr.LocalRestarting {
		t.Errorf("a restart time after the start: %v, want graceful restart, not restarting", gr)
	}
	if _, err := New(Options{RouterID: netip.MustParseAddr("192.0.2.1"), RestartTime: 2 * time.Hour}); err == nil {
		t.Error("New accepted a restart time over 4095 s")
	}
}
