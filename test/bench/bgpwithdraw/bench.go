package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchbin"
)

// Polling periods and limits of a run.
const (
	// startupPoll is how often the router is asked about its sessions
	// while the speakers start. A BGP flap takes seconds to heal (the
	// speaker's idle hold is 2 s), a BFD session that went down at
	// least a slow-start interval (1 s): neither escapes it.
	startupPoll = 50 * time.Millisecond
	// startupTimeout bounds the wait for every session to be up with BFD,
	// after a flap too.
	startupTimeout = 90 * time.Second
	// withdrawTimeout bounds the wait for the dead node's route to go;
	// without BFD the hold time (90 s) would take it.
	withdrawTimeout = 20 * time.Second
)

// bench is one benchmark invocation on one lab cluster.
type bench struct {
	opts   options
	cl     *labcluster.Cluster
	router *labnet.Router
	out    io.Writer // `name value unit` lines
	diag   io.Writer // `#` lines
}

// run runs the benchmark and returns each router's runs.
func run(ctx context.Context, o options, out, diag io.Writer) (_ map[routerKind][]runResult, err error) {
	if o.Ironlb, err = benchbin.Resolve(ctx, o.Ironlb, diag); err != nil {
		return nil, err
	}
	fmt.Fprintln(diag, "# starting a lab of 3 nodes with a router, its control plane and the controller")
	start := time.Now()
	cl, err := labcluster.Start(ctx, labcluster.Options{
		Lab: labnet.Options{
			Dir:       o.LogDir,
			StopGrace: 5 * time.Second,
			Logger:    slog.New(slog.NewTextHandler(diag, &slog.HandlerOptions{Level: slog.LevelWarn})),
		},
		Bin:            o.Ironlb,
		ControllerArgs: []string{"--log-level=info"},
		NoSpeakers:     true,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && o.LogDir == "" {
			fmt.Fprintln(diag, "# the lab's logs go with it; rerun with -log-dir to keep them")
		}
		err = errors.Join(err, cl.Close())
	}()
	b := &bench{opts: o, cl: cl, out: out, diag: diag}
	if b.router, err = cl.Lab.AddRouter(ctx); err != nil {
		return nil, err
	}
	if err := b.configure(ctx); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	fmt.Fprintf(diag, "# lab %s ready after %s; logs in %s\n", cl.Lab.Suffix(), time.Since(start).Round(time.Millisecond), cl.Lab.Dir())
	all := map[routerKind][]runResult{}
	for _, k := range o.Routers {
		for r := 1; r <= o.Runs; r++ {
			res, err := b.runOnce(ctx, k, r)
			if err != nil {
				return all, fmt.Errorf("%s run %d: %w", k, r, err)
			}
			b.describe(k, r, res)
			all[k] = append(all[k], res)
		}
		b.report(k, all[k])
	}
	return all, nil
}

// runResult is what one run measured. Times of the node loss are from the
// cut, those of the start-up from the speakers' start.
type runResult struct {
	Startup startup
	// Withdraw is when the router's kernel route lost the dead node's
	// next hop; Dark whether it had no route at all on the way.
	Withdraw time.Duration
	Dark     bool
	// LastBFD is when the router got the dead node's last BFD packet
	// (before the cut, so negative); TxInterval the median interval of
	// its packets before. Both zero if none was seen.
	LastBFD, TxInterval time.Duration
	// BFDDown is when the router declared the BFD session down (its
	// first packet to the node in state Down), zero if not seen.
	BFDDown time.Duration
	// Stalls are the machine's stalls (see stallWatch) from the cut
	// until the route went.
	Stalls []stall
	// cut is when the link was cut, for the diagnostics.
	cut time.Time
}

// afterLastBFD is how long after the dead node's last BFD packet the
// route went: BFD's detection time and the router's own work.
func (r runResult) afterLastBFD() time.Duration { return r.Withdraw - r.LastBFD }

// startup is what the router saw while the speakers started.
type startup struct {
	// Established is when every session was Established, BFDUp when
	// every BFD session was up, Routed when the kernel routed the
	// Service via every node.
	Established, BFDUp, Routed time.Duration
	// Flaps counts the sessions that left Established, BFDDowns the BFD
	// sessions that went down, until all had been up for -settle.
	Flaps, BFDDowns int
	// Events describes each, for the diagnostics.
	Events []string
	// Stalls are the times this process was not scheduled for stallMin
	// or more meanwhile: a machine too busy for BFD at 100 ms x 3.
	Stalls []stall
}

// runOnce starts a daemon of kind k afresh and the speakers, watches the
// start-up, kills a node and times the withdrawal; then it stops the
// speakers and the daemon and brings the node back, for the next run.
func (b *bench) runOnce(ctx context.Context, k routerKind, run int) (res runResult, err error) {
	nodes := b.cl.Lab.Nodes()
	rc := labnet.RouterConfig{ASN: routerASN, Debug: b.opts.RouterDebug,
		BFD: labnet.RouterBFD{Interval: b.opts.BFDInterval, Multiplier: b.opts.BFDMultiplier}}
	for _, h := range nodes {
		rc.Neighbors = append(rc.Neighbors, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN, BFD: true})
	}
	rd, err := startRouter(ctx, k, b.router, rc)
	if err != nil {
		return res, err
	}
	dead := nodes[len(nodes)-1]
	linkDown := false
	defer func() {
		err = errors.Join(err, b.cl.StopSpeakers())
		err = errors.Join(err, rd.Stop())
		if linkDown {
			err = errors.Join(err, dead.LinkUp())
		}
	}()
	// Both watches start before the speakers, so that nothing is missed.
	capture, err := captureBFD(b.router.Host, dead.IPv4)
	if err != nil {
		return res, err
	}
	defer capture.Stop()
	fib, err := watchFIB(b.router.Host)
	if err != nil {
		return res, err
	}
	defer fib.Close()

	stalls := watchStalls()
	defer stalls.Stop()
	start := time.Now()
	for _, h := range nodes {
		if _, err := b.cl.StartSpeaker(h.Name, "--log-level=info"); err != nil {
			return res, err
		}
	}
	res.Startup, err = b.watchStartup(ctx, rd, start, stalls)
	res.Startup.Stalls = stalls.since(start)
	if err != nil {
		return res, err
	}

	// The node dies: first its link, so that nothing it does on the way
	// down (a FIN, a NOTIFICATION) reaches the router and only BFD can
	// tell, then its speaker.
	var survivors []netip.Addr
	for _, h := range nodes[:len(nodes)-1] {
		survivors = append(survivors, h.IPv4)
	}
	slices.SortFunc(survivors, netip.Addr.Compare)
	cut := time.Now()
	res.cut = cut
	linkDown = true
	if err := dead.LinkDown(); err != nil {
		return res, err
	}
	if err := b.cl.Speaker(dead.Name).Kill(); err != nil {
		return res, err
	}
	seen, err := fib.wait(ctx, servicePrefix(), survivors, withdrawTimeout)
	if err != nil {
		return res, err
	}
	res.Withdraw, res.Dark = seen.At.Sub(cut), seen.Dark
	res.Stalls = stalls.since(cut)
	arrived, down, err := capture.Stop()
	if err != nil {
		return res, fmt.Errorf("BFD capture: %w", err)
	}
	if n := len(arrived); n > 0 {
		res.LastBFD = arrived[n-1].Sub(cut)
		res.TxInterval = medianGap(arrived)
	}
	if down.After(cut) {
		res.BFDDown = down.Sub(cut)
	}
	// The survivors' sessions must have stayed up.
	st, err := rd.state()
	if err != nil {
		return res, err
	}
	for _, a := range survivors {
		if s := st[a]; !s.Established {
			return res, fmt.Errorf("the session with survivor %s went down with the dead node: %s", a, s.Info)
		}
	}
	return res, nil
}

func servicePrefix() netip.Prefix { return netip.PrefixFrom(serviceIP, 32) }

// watchStartup polls the router from the speakers' start until every
// session has been Established with BFD up, and the kernel has routed the
// Service via every node, for -settle, counting flaps. A flap starts the
// settling again: the node loss is timed from sessions that are up.
func (b *bench) watchStartup(ctx context.Context, rd *routerDaemon, start time.Time, stalls *stallWatch) (startup, error) {
	var su startup
	nodes := b.cl.Lab.Nodes()
	prev := map[netip.Addr]peerState{}
	var upAt time.Time // when all was up
	var last map[netip.Addr]peerState
	for {
		st, err := rd.state()
		if err != nil {
			return su, err
		}
		now := time.Since(start)
		last = st
		allEst, allBFD := true, true
		for _, h := range nodes {
			a := h.IPv4
			s, p := st[a], prev[a]
			if p.Established && !s.Established {
				su.Flaps++
				su.Events = append(su.Events, fmt.Sprintf("+%.3f s %s: BGP session left Established: %s%s", now.Seconds(), h.Name, s.Info, stalledBefore(stalls, start)))
			}
			if p.BFDUp && !s.BFDUp {
				su.BFDDowns++
				su.Events = append(su.Events, fmt.Sprintf("+%.3f s %s: BFD went down (BGP %s)%s", now.Seconds(), h.Name, s.Info, stalledBefore(stalls, start)))
			}
			allEst = allEst && s.Established
			allBFD = allBFD && s.BFDUp
		}
		prev = st
		if allEst && su.Established == 0 {
			su.Established = now
		}
		if allEst && allBFD && su.BFDUp == 0 {
			su.BFDUp = now
		}
		hops, err := b.router.Host.RouteNextHops(servicePrefix())
		if err != nil {
			return su, err
		}
		routed := len(hops) == len(nodes)
		if routed && su.Routed == 0 {
			su.Routed = now
		}
		switch up := allEst && allBFD && routed; {
		case up && upAt.IsZero():
			upAt = time.Now()
		case !up:
			upAt = time.Time{}
		}
		if !upAt.IsZero() && time.Since(upAt) >= b.opts.Settle {
			break
		}
		if upAt.IsZero() && now > startupTimeout {
			return su, fmt.Errorf("not every session up with BFD and routed after %v: %v (routed after %v)", startupTimeout, describeStates(st), su.Routed)
		}
		select {
		case <-ctx.Done():
			return su, ctx.Err()
		case <-time.After(startupPoll):
		}
	}
	// The daemon's own counts, where it keeps them, see what a poll
	// could miss; the router was started afresh, so they count from 0.
	drops, downs := 0, 0
	for _, s := range last {
		drops += max(s.Drops, 0)
		downs += max(s.BFDDowns, 0)
	}
	if drops > su.Flaps {
		su.Events = append(su.Events, fmt.Sprintf("the router counts %d dropped sessions, the polls saw %d", drops, su.Flaps))
		su.Flaps = drops
	}
	if downs > su.BFDDowns {
		su.Events = append(su.Events, fmt.Sprintf("the router counts %d BFD session-down events, the polls saw %d", downs, su.BFDDowns))
		su.BFDDowns = downs
	}
	return su, nil
}

// stalledBefore describes the stalls of this process in the second
// before now, which would explain a BFD failure, or "".
func stalledBefore(w *stallWatch, start time.Time) string {
	var parts []string
	for _, s := range w.since(time.Now().Add(-time.Second)) {
		parts = append(parts, fmt.Sprintf("%.0f ms at +%.3f s", s.Gap.Seconds()*1000, s.At.Sub(start).Seconds()))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; the benchmark itself stalled " + strings.Join(parts, ", ")
}

// describeStates is states for an error message.
func describeStates(st map[netip.Addr]peerState) string {
	var parts []string
	for _, a := range slices.SortedFunc(maps.Keys(st), netip.Addr.Compare) {
		s := st[a]
		parts = append(parts, fmt.Sprintf("%s: BGP %s, BFD up %v", a, s.Info, s.BFDUp))
	}
	return strings.Join(parts, "; ")
}
