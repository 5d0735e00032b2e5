package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/labnet"
)

// replies makes probe answers: one per node name, one sequence number
// each, 10 ms apart, skipping the sequence numbers in skip.
func replies(t0 time.Time, nodes []string, skip map[int]bool) []labnet.ProbeReply {
	var out []labnet.ProbeReply
	seq := 0
	for _, n := range nodes {
		seq++
		for skip[seq] {
			seq++
		}
		at := t0.Add(time.Duration(seq) * 10 * time.Millisecond)
		out = append(out, labnet.ProbeReply{Seq: seq, Node: n, Sent: at, Received: at.Add(time.Millisecond)})
	}
	return out
}

func TestRunSummaries(t *testing.T) {
	t0 := time.Unix(1000, 0)
	back := replies(t0, []string{"node-3", "node-1", "node-3", "node-3"}, map[int]bool{2: true, 3: true})
	res := labnet.ProbeResult{Sent: 8, Received: 4, Replies: back} // answered: 1, 4, 5, 6
	if got := switches(back); got != 2 {
		t.Errorf("switches = %d, want 2", got)
	}
	if got, want := lostSpans(res), "unanswered probes 2-3, 7-8 of 8"; got != want {
		t.Errorf("lostSpans = %q, want %q", got, want)
	}
	if got, want := nodeSequence(back, t0), "node-3 x1 from +0.011 s, node-1 x1 from +0.041 s, node-3 x2 from +0.051 s"; got != want {
		t.Errorf("nodeSequence (-want +got):\n%s", cmp.Diff(want, got))
	}

	rs := []failoverRun{
		{Probe: labnet.ProbeResult{Sent: 10, Received: 10, LongestGap: 20 * time.Millisecond}, Switches: 1, MACsAfter: 1},
		{Probe: labnet.ProbeResult{Sent: 10, Received: 7, LongestGap: 3 * time.Second}, Switches: 3, MACsAfter: 1},
		{Probe: labnet.ProbeResult{Sent: 10, Received: 10, LongestGap: 30 * time.Millisecond}, Switches: 1, MACsAfter: 2},
	}
	got := map[string]float64{}
	for _, m := range runFigures("planned", rs) {
		got[m.Name] = m.Value
	}
	want := map[string]float64{
		"failover_planned_runs":                  3,
		"failover_planned_gap_p50":               0.03,
		"failover_planned_gap_p99":               3,
		"failover_planned_gap_max":               3,
		"failover_planned_probes_lost_p50":       0,
		"failover_planned_probes_lost_max":       3,
		"failover_planned_probes_lost_total":     3,
		"failover_planned_answer_switches_max":   3,
		"failover_planned_macs_after_return_min": 1,
		"failover_planned_macs_after_return_max": 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runFigures (-want +got):\n%s", diff)
	}
}
