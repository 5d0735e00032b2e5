package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/ironlb/ironlb/api/v1alpha1"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TestMetrics: pool capacity and usage per pool and family, decisions by
// reason, and the change-to-status latency are exported.
func TestMetrics(t *testing.T) {
	ns := "metrics"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("metered", "198.51.100.240/30", "2001:db8:2::/126"))
	create(t, lbService(ns, "one"))
	waitIPs(t, ns, "one", "198.51.100.240")
	bad := lbService(ns, "bad")
	bad.Spec.LoadBalancerIP = "203.0.113.1"
	create(t, bad)
	waitPending(t, ns, "bad", v1alpha1.ReasonNotInPool)

	eventually(t, 15*time.Second, func() string {
		fams, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err.Error()
		}
		checks := []struct {
			name   string
			labels map[string]string
			want   float64 // exact for gauges, minimum for counters
		}{
			{"ironlb_pool_addresses", map[string]string{"pool": "metered", "family": "IPv4", "state": "total"}, 4},
			{"ironlb_pool_addresses", map[string]string{"pool": "metered", "family": "IPv4", "state": "used"}, 1},
			{"ironlb_pool_addresses", map[string]string{"pool": "metered", "family": "IPv6", "state": "free"}, 4},
			{"ironlb_allocations_total", map[string]string{"reason": v1alpha1.ReasonAllocated}, 1},
			{"ironlb_allocations_total", map[string]string{"reason": v1alpha1.ReasonNotInPool}, 1},
		}
		for _, c := range checks {
			got, ok := metricValue(fams, c.name, c.labels)
			if !ok || (c.name == "ironlb_pool_addresses" && got != c.want) || got < c.want {
				return fmt.Sprintf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
			}
		}
		if n, ok := histogramCount(fams, "ironlb_allocation_latency_seconds"); !ok || n == 0 {
			return "no allocation latency observed"
		}
		return ""
	})
}

func metricValue(fams []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func histogramCount(fams []*dto.MetricFamily, name string) (uint64, bool) {
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount(), true
		}
	}
	return 0, false
}
