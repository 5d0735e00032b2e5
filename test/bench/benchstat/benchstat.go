// Package benchstat holds what the benchmark programs under test/bench
// share: percentiles and medians of their samples, and the `name value
// unit` line each figure is printed as (design/PERFORMANCE.md, "How to
// report"). It does no I/O beyond formatting.
package benchstat

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// ds, or 0 for none. ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or NaN for none. xs is not modified.
func Median(xs []float64) float64 {
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

// Metric is one printed figure.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// String is the metric's `name value unit` line (without a newline), the
// value rounded by its unit: times in seconds or milliseconds to the
// millisecond or microsecond, microseconds to a tenth, sizes, ratios and
// rates (CPU in ms_per_s among them) to two decimals, counts to whole
// numbers.
func (m Metric) String() string {
	decimals := 0 // counts
	switch m.Unit {
	case "s", "ms":
		decimals = 3
	case "us":
		decimals = 1
	case "MiB", "x", "per_s", "per_svc", "ms_per_s":
		decimals = 2
	}
	return m.Name + " " + strconv.FormatFloat(m.Value, 'f', decimals, 64) + " " + m.Unit
}

// MiB converts bytes to mebibytes.
func MiB(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// Ratio is a/b, or NaN when b is zero.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
