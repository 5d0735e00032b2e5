package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // reversed: percentile sorts
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"max", hundred, 100, 100 * time.Millisecond},
		{"p50 of 4 is the 2nd", ms(4, 3, 2, 1), 50, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 2, 3}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestReportPrintsMedians(t *testing.T) {
	r := newReport()
	r.add(metric{"burst_ironlb_p99", 0.5, "s"}, metric{"restart_ips_changed", 0, "count"})
	r.add(metric{"burst_ironlb_p99", 0.7, "s"}, metric{"restart_ips_changed", 0, "count"})
	r.add(metric{"burst_ironlb_p99", 0.6, "s"}, metric{"restart_ips_changed", 1, "count"})
	var b strings.Builder
	r.print(&b)
	want := "burst_ironlb_p99 0.600 s\nrestart_ips_changed 0 count\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestParseRequestCounts(t *testing.T) {
	text := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="POST",version="v1"} 500
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="PUT",version="v1"} 498
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="PUT",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 501
apiserver_request_total{code="201",component="apiserver",dry_run="",group="networking.k8s.io",resource="ipaddresses",scope="resource",subresource="",verb="POST",version="v1"} 500
apiserver_request_duration_seconds_count{verb="POST"} 9
`
	before := requestCounts{"PUT services/status 200": 8}
	got := parseRequestCounts(text).since(before)
	want := []countDiff{
		{"POST events 201", 501},
		{"POST ipaddresses 201", 500},
		{"POST services 201", 500},
		{"PUT services/status 200", 490},
		{"PUT services/status 409", 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("since (-want +got):\n%s", diff)
	}
	if w := allocatorWrites(got); w != 993 {
		t.Errorf("allocatorWrites = %v, want 993 (events, status writes and conflicts)", w)
	}
}

func TestLoggedDuration(t *testing.T) {
	line := `time=2026-11-26T15:54:08.221Z level=INFO msg="allocations restored" services=500 displaced=0 pools=1 took=299ms`
	if got, err := loggedDuration(line, "took"); err != nil || got != 299*time.Millisecond {
		t.Errorf("loggedDuration = %v, %v; want 299ms", got, err)
	}
	if _, err := loggedDuration(`msg="allocations restored"`, "took"); err == nil {
		t.Error("loggedDuration of a line without took= succeeded")
	}
}
