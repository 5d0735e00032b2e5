package faults

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
)

// Scenario is one row of issue 14's fault table.
type Scenario struct {
	Row  int
	Name string
	Run  func(ctx context.Context, e *Env) Result
}

// Scenarios are the rows the suite runs, in the table's order.
var Scenarios = []Scenario{
	{2, "APIServerCutOff", apiServerCutOff},
	{3, "GossipCutBetweenTwo", gossipCutBetweenTwo},
	{5, "RestartCutOff", restartCutOff},
	{13, "RollingUpgrade", rollingUpgrade},
}

// run is the frame of every scenario: it reads the owners, starts the
// watch, injects the fault with f, and stops the watch once f returns.
// f gets the owners before the fault and adds its row's own findings to
// the result.
func run(ctx context.Context, e *Env, bounds labcluster.Bounds, f func(owners map[netip.Addr]string, r *Result)) Result {
	r := Result{Bounds: bounds}
	owners, err := e.Owners(ctx)
	if err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("before the fault: %w", err))
		return r
	}
	w, err := e.watch()
	if err != nil {
		r.Errs = append(r.Errs, err)
		return r
	}
	// A moment of normal traffic first: a gap at the start is the probe's,
	// not the fault's.
	sleep(ctx, time.Second)
	f(owners, &r)
	r.Report = w.Stop()
	return r
}

// fail adds err to r if it is not nil, and reports whether it was.
func (r *Result) fail(err error) bool {
	if err != nil {
		r.Errs = append(r.Errs, err)
	}
	return err != nil
}

// hold watches the ServiceAnnouncements for d: every half second, each
// must still name the node it named at the start (nothing moves), and
// none may name a node in never. It returns the owners at the end.
func (e *Env) hold(ctx context.Context, d time.Duration, r *Result, never ...string) map[netip.Addr]string {
	start := e.announcerNodes(ctx)
	reported := map[string]bool{}
	for t0 := time.Now(); time.Since(t0) < d; sleep(ctx, 500*time.Millisecond) {
		now := e.announcerNodes(ctx)
		for ip, n := range now {
			why := ""
			switch {
			case n != start[ip]:
				why = fmt.Sprintf("%s moved from %s to %s %s into the fault", ip, start[ip], n, time.Since(t0).Round(time.Second))
			case contains(never, n):
				why = fmt.Sprintf("%s announced by %s, which must announce nothing, %s into the fault", ip, n, time.Since(t0).Round(time.Second))
			}
			if why != "" && !reported[ip.String()+n] {
				reported[ip.String()+n] = true
				r.Errs = append(r.Errs, fmt.Errorf("%s", why))
			}
		}
	}
	return e.announcerNodes(ctx)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s && s != "" {
			return true
		}
	}
	return false
}

// afterHeal checks the row-wide expectation once a fault heals: one
// announcer per address within 2 s, and the same one as during the fault.
func (e *Env) afterHeal(ctx context.Context, during map[netip.Addr]string, r *Result) {
	var after map[netip.Addr]string
	err := labcluster.Eventually(ctx, 2*time.Second, func() (err error) {
		after, err = e.Owners(ctx)
		return err
	})
	if r.fail(err) {
		return
	}
	// A takeback would come after the first check: look again.
	sleep(ctx, 3*time.Second)
	if late, err := e.Owners(ctx); !r.fail(err) {
		after = late
	}
	r.Errs = append(r.Errs, noTakeback(during, after)...)
}

// apiServerCutOff is row 2: one node cut off from the API server while
// its LAN and gossip work; 20 s later (the node monitor's grace, 40 s by
// default, shortened) its Node goes NotReady, as the API server would
// mark it. Its addresses must move with no moment of two MACs and a gap
// of at most 1 s, and stay moved when it comes back.
func apiServerCutOff(ctx context.Context, e *Env) Result {
	return run(ctx, e, labcluster.Bounds{}, func(owners map[netip.Addr]string, r *Result) {
		victim := busiest(owners)
		e.Logf("cutting %s (owner of %v) off the API server", victim, owned(owners, victim))
		heal, err := e.C.CutAPIServer(ctx, victim)
		if r.fail(err) {
			return
		}
		defer heal()
		sleep(ctx, 20*time.Second)
		if r.fail(e.C.CP.SetNodeReady(ctx, victim, false)) {
			return
		}
		err = labcluster.Eventually(ctx, 15*time.Second, func() error {
			now, err := e.Owners(ctx)
			if err == nil && len(owned(now, victim)) > 0 {
				err = fmt.Errorf("%s still announces %v", victim, owned(now, victim))
			}
			return err
		})
		r.fail(err)
		during := e.hold(ctx, 10*time.Second, r, victim)
		r.fail(e.C.CP.SetNodeReady(ctx, victim, true))
		r.fail(heal())
		e.afterHeal(ctx, during, r)
	})
}

// gossipCutBetweenTwo is row 3: the gossip port blocked between two
// nodes only, for 2 minutes (1 in make test). Each still reaches the
// third, which relays their probes: no address may move.
func gossipCutBetweenTwo(ctx context.Context, e *Env) Result {
	d := 2 * time.Minute
	if e.Short {
		d = time.Minute
	}
	return run(ctx, e, labcluster.Bounds{}, func(owners map[netip.Addr]string, r *Result) {
		nodes := e.nodeNames()
		heal, err := e.C.CutGossipBetween(ctx, nodes[0], nodes[1])
		if r.fail(err) {
			return
		}
		defer heal()
		e.Logf("gossip cut between %s and %s for %s", nodes[0], nodes[1], d)
		during := e.hold(ctx, d, r)
		if !maps.Equal(during, owners) {
			r.fail(fmt.Errorf("owners went from %v to %v", owners, during))
		}
		r.fail(heal())
		e.afterHeal(ctx, during, r)
	})
}

// restartCutOff is row 5: a speaker restarted while cut off from the
// others' gossip, held so for 60 s. It must announce nothing and write no
// ServiceAnnouncement meanwhile: a speaker that took itself for the only
// one would claim every address (two MACs) and report itself as their
// announcer, which the others then honour. Once healed, it takes nothing.
func restartCutOff(ctx context.Context, e *Env) Result {
	return run(ctx, e, labcluster.Bounds{}, func(owners map[netip.Addr]string, r *Result) {
		victim := busiest(owners)
		e.Logf("restarting %s (owner of %v) cut off from gossip", victim, owned(owners, victim))
		if r.fail(e.C.Speaker(victim).Stop()) {
			return
		}
		err := labcluster.Eventually(ctx, 15*time.Second, func() error {
			now, err := e.Owners(ctx)
			if err == nil && len(owned(now, victim)) > 0 {
				err = fmt.Errorf("%s still announces %v", victim, owned(now, victim))
			}
			return err
		})
		if r.fail(err) {
			return
		}
		heal, err := e.C.CutGossip(ctx, victim)
		if r.fail(err) {
			return
		}
		defer heal()
		if _, err := e.C.StartSpeaker(victim); r.fail(err) {
			return
		}
		during := e.hold(ctx, 60*time.Second, r, victim)
		r.fail(heal())
		e.afterHeal(ctx, during, r)
	})
}

// rollingUpgrade is row 13: each speaker in turn SIGTERMed and started
// again once the previous one is back among the others, as a DaemonSet
// update does. Every address is handed over before its owner stops
// answering: no probe may be lost.
func rollingUpgrade(ctx context.Context, e *Env) Result {
	r := run(ctx, e, labcluster.Bounds{MaxGap: 200 * time.Millisecond, MaxDark: time.Second}, func(owners map[netip.Addr]string, r *Result) {
		for _, n := range e.nodeNames() {
			e.Logf("upgrading %s's speaker", n)
			if r.fail(e.C.Speaker(n).Stop()) {
				return
			}
			if _, err := e.C.StartSpeaker(n); r.fail(err) {
				return
			}
			if r.fail(e.speakerJoined(ctx, n, 30*time.Second)) {
				return
			}
			sleep(ctx, 2*time.Second)
		}
	})
	r.Errs = append(r.Errs, lost(r.Report)...)
	return r
}

// lost returns an error for every address whose probes were lost
// (beyond the last one, which may be in flight when the probe stops).
func lost(rep labcluster.Report) []error {
	var errs []error
	for ip, ir := range rep.IPs {
		if n := ir.Probe.Sent - ir.Probe.Received; n > 1 {
			errs = append(errs, fmt.Errorf("%s: %d of %d probes lost", ip, n, ir.Probe.Sent))
		}
	}
	return errs
}
