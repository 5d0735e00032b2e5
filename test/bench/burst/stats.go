package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// ds, or 0 for none. ds is not modified.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// median returns the median of xs (the mean of the middle two for an even
// count), or NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// metric is one printed figure.
type metric struct {
	Name  string
	Value float64
	Unit  string
}

// report collects the figures of the runs, in the order they were first
// added, and prints each once, as the median over the runs.
type report struct {
	names  []string
	units  map[string]string
	values map[string][]float64
}

func newReport() *report {
	return &report{units: map[string]string{}, values: map[string][]float64{}}
}

func (r *report) add(ms ...metric) {
	for _, m := range ms {
		if _, ok := r.units[m.Name]; !ok {
			r.names = append(r.names, m.Name)
			r.units[m.Name] = m.Unit
		}
		r.values[m.Name] = append(r.values[m.Name], m.Value)
	}
}

// print writes `name value unit` lines, the median of each figure.
func (r *report) print(w io.Writer) {
	for _, name := range r.names {
		fmt.Fprintln(w, formatMetric(metric{name, median(r.values[name]), r.units[name]}))
	}
}

func formatMetric(m metric) string {
	var v string
	switch m.Unit {
	case "s", "ms":
		v = fmt.Sprintf("%.3f", m.Value)
	case "MiB", "x", "per_s", "per_svc":
		v = fmt.Sprintf("%.2f", m.Value)
	default: // count
		v = fmt.Sprintf("%.0f", m.Value)
	}
	return m.Name + " " + v + " " + m.Unit
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// ratio is a/b, or NaN when b is zero.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
