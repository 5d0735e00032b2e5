package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ironlb/ironlb/test/bench/benchstat"
)

// The statistics and the line format are shared with the other benchmark
// programs (test/bench/benchstat); these short names keep this program's
// code as it was.

// metric is one printed figure: benchstat.Metric, as a type of this
// package so that its literals may leave out the field names (vet allows
// that only for a package's own types).
type metric struct {
	Name  string
	Value float64
	Unit  string
}

func percentile(ds []time.Duration, p float64) time.Duration { return benchstat.Percentile(ds, p) }

func median(xs []float64) float64 { return benchstat.Median(xs) }

func formatMetric(m metric) string { return benchstat.Metric(m).String() }

func seconds(d time.Duration) float64 { return d.Seconds() }

func mib(bytes int64) float64 { return benchstat.MiB(bytes) }

func ratio(a, b float64) float64 { return benchstat.Ratio(a, b) }

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
