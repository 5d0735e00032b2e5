package election

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Detection time is what an unplanned failover waits for: from the owner's
// crash until the survivors drop it from Alive and the next owner starts
// announcing. These tests only log it (timings on a shared, noisy machine
// make poor assertions); BenchmarkDetection reports it as metrics:
//
//	go test ./internal/election -run '^$' -bench Detection -benchtime 20x

// crashTrials crashes a member of a 3-member loopback cluster trials times,
// cycling through the members, and returns for each trial when the first
// and when the last survivor noticed. After each crash it restarts the
// member and waits for the cluster to be whole again.
func crashTrials(t testing.TB, trials int, tuning Tuning) (first, last []time.Duration) {
	opts := clusterOptions(t, 3, nil)
	for i := range opts {
		opts[i].Tuning = tuning
	}
	ms := startClusterOpts(t, opts)
	all := names(ms)
	for i := range trials {
		// A member is watched for silence from its first heartbeat on
		// (heartbeat.go): let a few go out since the last (re)join, as
		// they have on any cluster that has run for a moment.
		time.Sleep(4 * DefaultHeartbeatInterval)
		v := i % len(ms)
		wait := watchGone(others(ms, v), ms[v].name, 5*time.Second)
		t0 := time.Now()
		ms[v].crash()
		took, err := wait(t0)
		if err != nil {
			t.Fatalf("trial %d: %v", i, err)
		}
		first = append(first, slices.Min(took))
		last = append(last, slices.Max(took))
		ms[v] = startMember(t, ms[v].opts)
		waitConverged(t, ms, all, 10*time.Second)
	}
	return first, last
}

// quantile returns the q-quantile (0..1) of ds by the nearest-rank method.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func summary(ds []time.Duration) string {
	return fmt.Sprintf("median %s, p99 %s, min %s, max %s (n=%d)",
		quantile(ds, 0.5).Round(time.Millisecond), quantile(ds, 0.99).Round(time.Millisecond),
		slices.Min(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond), len(ds))
}

// TestDetectionTimes crashes members of a loopback cluster a few times and
// logs how long detection took. It fails only on a gross error (more than
// 5 s: memberlist's defaults instead of ours).
func TestDetectionTimes(t *testing.T) {
	trials := 6
	if testing.Short() {
		trials = 2
	}
	first, last := crashTrials(t, trials, Tuning{})
	t.Logf("crash noticed by the first survivor: %s", summary(first))
	t.Logf("crash noticed by every survivor:     %s", summary(last))
}

// BenchmarkDetection reports crash detection on loopback in milliseconds:
// one crash per iteration, so use -benchtime Nx with N >= 20 for a
// meaningful p99.
func BenchmarkDetection(b *testing.B) {
	first, last := crashTrials(b, b.N, Tuning{})
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(quantile(last, 0.5)), "ms-median")
	b.ReportMetric(ms(quantile(last, 0.99)), "ms-p99")
	b.ReportMetric(ms(quantile(first, 0.5)), "ms-first-median")
	b.ReportMetric(0, "ns/op") // an iteration's wall time is mostly rejoining; meaningless
}
