package controller

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/ipam"
)

// metrics are the controller's Prometheus series. They are registered once
// per registry; a second controller in the same process (tests restart the
// controller) shares the first one's collectors.
type metrics struct {
	poolAddresses  *prometheus.GaugeVec
	allocations    *prometheus.CounterVec
	latency        prometheus.Histogram
	configProblems prometheus.Gauge

	mu   sync.Mutex
	seen map[string]time.Time // when a Service change was first seen, per key
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		poolAddresses: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_pool_addresses",
			Help: "Addresses per pool, IP family and state (total, used, free, reserved: held by IPReservations, in use or not; free excludes them). IPv6 totals saturate at 2^64-1.",
		}, []string{"pool", "family", "state"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_allocations_total",
			Help: "Service allocation decisions written, by reason (Allocated, or why not).",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ironlb_allocation_latency_seconds",
			Help:    "Time from the controller seeing a Service change to the Service's status being written.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		configProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_config_problems",
			Help: "Problems found in config objects at the last config build (0 when all are valid).",
		}),
		seen: map[string]time.Time{},
	}
	m.poolAddresses = register(reg, m.poolAddresses)
	m.allocations = register(reg, m.allocations)
	m.latency = register(reg, m.latency)
	m.configProblems = register(reg, m.configProblems)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// saw records the first time a change to key was seen.
func (m *metrics) saw(key string) {
	m.mu.Lock()
	if _, ok := m.seen[key]; !ok {
		m.seen[key] = time.Now()
	}
	m.mu.Unlock()
}

// done records that key's status is now what the controller wants.
// reason is "" when nothing had to be written.
func (m *metrics) done(key, reason string) {
	m.mu.Lock()
	t, ok := m.seen[key]
	delete(m.seen, key)
	m.mu.Unlock()
	if reason == "" {
		return
	}
	m.allocations.WithLabelValues(reason).Inc()
	if ok {
		m.latency.Observe(time.Since(t).Seconds())
	}
}

func (m *metrics) forget(key string) {
	m.mu.Lock()
	delete(m.seen, key)
	m.mu.Unlock()
}

func (m *metrics) setPools(stats map[string]ipam.Stats) {
	m.poolAddresses.Reset()
	for pool, st := range stats {
		for f, total := range st.Total {
			fam := f.String()
			m.poolAddresses.WithLabelValues(pool, fam, "total").Set(float64(total))
			m.poolAddresses.WithLabelValues(pool, fam, "used").Set(float64(st.Used[f]))
			m.poolAddresses.WithLabelValues(pool, fam, "free").Set(float64(st.Free[f]))
			m.poolAddresses.WithLabelValues(pool, fam, "reserved").Set(float64(st.Reserved[f]))
		}
	}
}
