package main

import (
	"fmt"
	"time"

	"github.com/ironlb/ironlb/test/bench/benchstat"
)

// target is issue 17's bound on the withdrawal with BFD at 100 ms x 3.
const target = 400 * time.Millisecond

// detection is BFD's detection time at the router: the node's multiplier
// times the slower of the node's transmit and the router's receive
// interval (RFC 5880 section 6.8.4), which are both -bfd-interval.
func (o options) detection() time.Duration {
	return time.Duration(o.BFDMultiplier) * o.BFDInterval
}

// figures are the `name value unit` lines for router k's runs.
func figures(k routerKind, o options, rs []runResult) []benchstat.Metric {
	pre := "bgp_withdraw_" + string(k) + "_"
	durs := func(f func(runResult) time.Duration) []time.Duration {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		return ds
	}
	sec := func(d time.Duration) float64 { return d.Seconds() }
	withdraw := durs(func(r runResult) time.Duration { return r.Withdraw })
	after := durs(runResult.afterLastBFD)
	// Only runs where the router's Down packet was seen.
	var detect, work []time.Duration
	wstalls := 0
	for _, r := range rs {
		if r.BFDDown != 0 {
			detect = append(detect, r.BFDDown-r.LastBFD)
			work = append(work, r.Withdraw-r.BFDDown)
		}
		wstalls += len(r.Stalls)
	}
	det := o.detection()
	p50 := benchstat.Percentile(withdraw, 50)
	over, dark, flaps, bfdDowns, stalls := 0, 0, 0, 0, 0
	for _, r := range rs {
		if r.Withdraw > target {
			over++
		}
		if r.Dark {
			dark++
		}
		flaps += r.Startup.Flaps
		bfdDowns += r.Startup.BFDDowns
		stalls += len(r.Startup.Stalls)
	}
	return []benchstat.Metric{
		{Name: pre + "runs", Value: float64(len(rs)), Unit: "count"},
		{Name: pre + "p50", Value: sec(p50), Unit: "s"},
		{Name: pre + "p99", Value: sec(benchstat.Percentile(withdraw, 99)), Unit: "s"},
		{Name: pre + "max", Value: sec(benchstat.Percentile(withdraw, 100)), Unit: "s"},
		{Name: pre + "min", Value: sec(benchstat.Percentile(withdraw, 0)), Unit: "s"},
		{Name: "reference_bfd_detection_time", Value: sec(det), Unit: "s"},
		{Name: pre + "p50_vs_bfd_detection_ratio", Value: benchstat.Ratio(sec(p50), sec(det)), Unit: "x"},
		{Name: "target_bgp_withdraw", Value: sec(target), Unit: "s"},
		{Name: pre + "runs_over_target", Value: float64(over), Unit: "count"},
		// From the dead node's last BFD packet to the route's removal,
		// in two parts: the router's BFD declaring the session down (its
		// detection time, ideally exactly det), and then the router's
		// BGP dropping the session and the FIB change.
		{Name: pre + "after_last_bfd_p50", Value: sec(benchstat.Percentile(after, 50)), Unit: "s"},
		{Name: pre + "after_last_bfd_max", Value: sec(benchstat.Percentile(after, 100)), Unit: "s"},
		{Name: pre + "runs_with_bfd_down_seen", Value: float64(len(detect)), Unit: "count"},
		{Name: pre + "bfd_detect_p50", Value: sec(benchstat.Percentile(detect, 50)), Unit: "s"},
		{Name: pre + "bfd_detect_max", Value: sec(benchstat.Percentile(detect, 100)), Unit: "s"},
		{Name: pre + "router_work_p50", Value: sec(benchstat.Percentile(work, 50)), Unit: "s"},
		{Name: pre + "router_work_max", Value: sec(benchstat.Percentile(work, 100)), Unit: "s"},
		{Name: pre + "withdraw_machine_stalls", Value: float64(wstalls), Unit: "count"},
		{Name: pre + "last_bfd_before_cut_p50", Value: -sec(benchstat.Percentile(durs(func(r runResult) time.Duration { return r.LastBFD }), 50)), Unit: "s"},
		{Name: pre + "node_bfd_tx_interval_p50", Value: sec(benchstat.Percentile(durs(func(r runResult) time.Duration { return r.TxInterval }), 50)), Unit: "s"},
		{Name: pre + "runs_without_route", Value: float64(dark), Unit: "count"},
		{Name: pre + "startup_bgp_flaps", Value: float64(flaps), Unit: "count"},
		{Name: pre + "startup_bfd_down_events", Value: float64(bfdDowns), Unit: "count"},
		// The machine's stalls (stallMin or more) the benchmark saw
		// meanwhile: a flap may be theirs.
		{Name: pre + "startup_machine_stalls", Value: float64(stalls), Unit: "count"},
		{Name: pre + "startup_established_p50", Value: sec(benchstat.Percentile(durs(func(r runResult) time.Duration { return r.Startup.Established }), 50)), Unit: "s"},
		{Name: pre + "startup_bfd_up_p50", Value: sec(benchstat.Percentile(durs(func(r runResult) time.Duration { return r.Startup.BFDUp }), 50)), Unit: "s"},
	}
}

// report prints router k's figures.
func (b *bench) report(k routerKind, rs []runResult) {
	for _, m := range figures(k, b.opts, rs) {
		fmt.Fprintln(b.out, m)
	}
}

// describe prints one run's details on the diagnostics stream.
func (b *bench) describe(k routerKind, run int, r runResult) {
	su := r.Startup
	fmt.Fprintf(b.diag, "# %s run %d: start-up: established %.3f s, BFD up %.3f s, routed via every node %.3f s after the speakers' start; %d BGP flaps, %d BFD down events\n",
		k, run, su.Established.Seconds(), su.BFDUp.Seconds(), su.Routed.Seconds(), su.Flaps, su.BFDDowns)
	for _, e := range su.Events {
		fmt.Fprintf(b.diag, "#   %s\n", e)
	}
	if len(su.Stalls) > 0 {
		var worst time.Duration
		for _, s := range su.Stalls {
			worst = max(worst, s.Gap)
		}
		fmt.Fprintf(b.diag, "#   the benchmark was not scheduled for %d stretches of %v or more meanwhile, the longest %v\n", len(su.Stalls), stallMin, worst.Round(time.Millisecond))
	}
	fmt.Fprintf(b.diag, "# %s run %d: node lost: route via it gone %.3f s after the cut, %.3f s after its last BFD packet (%.3f s before the cut; it sent every %.3f s)",
		k, run, r.Withdraw.Seconds(), r.afterLastBFD().Seconds(), -r.LastBFD.Seconds(), r.TxInterval.Seconds())
	if r.BFDDown != 0 {
		fmt.Fprintf(b.diag, "; the router declared BFD down %.3f s after that packet and the route went %.3f s later",
			(r.BFDDown - r.LastBFD).Seconds(), (r.Withdraw - r.BFDDown).Seconds())
	}
	if r.Dark {
		fmt.Fprint(b.diag, "; the route was gone altogether for a moment")
	}
	for _, s := range r.Stalls {
		fmt.Fprintf(b.diag, "; the benchmark was not scheduled for %v until %.3f s after the cut", s.Gap.Round(time.Millisecond), s.At.Sub(r.cut).Seconds())
	}
	fmt.Fprintln(b.diag)
}
