package benchstat

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func ExamplePercentile() {
	gaps := []time.Duration{900 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, 400 * time.Millisecond}
	fmt.Println(Percentile(gaps, 50), Percentile(gaps, 99), Percentile(nil, 50))
	// Output: 400ms 900ms 0s
}

func ExampleMedian() {
	fmt.Println(Median([]float64{4, 1, 3}), Median([]float64{4, 1, 3, 2}), Median(nil))
	// Output: 3 2.5 NaN
}

func TestMetricString(t *testing.T) {
	for m, want := range map[Metric]string{
		{"failover_unplanned_gap_p99", 0.6204, "s"}:  "failover_unplanned_gap_p99 0.620 s",
		{"arp_ironlb_p50", 12.345, "us"}:             "arp_ironlb_p50 12.3 us",
		{"speaker_max_peak_rss", 41.234, "MiB"}:      "speaker_max_peak_rss 41.23 MiB",
		{"arp_p50_ratio", 1.5, "x"}:                  "arp_p50_ratio 1.50 x",
		{"failover_planned_probes_lost", 2, "count"}: "failover_planned_probes_lost 2 count",
		{"speaker_cpu_p50", 3.456, "ms_per_s"}:       "speaker_cpu_p50 3.46 ms_per_s",
	} {
		if got := m.String(); got != want {
			t.Errorf("%+v: got %q, want %q", m, got, want)
		}
	}
	if got := Ratio(1, 0); !math.IsNaN(got) {
		t.Errorf("Ratio(1, 0) = %v, want NaN", got)
	}
}
