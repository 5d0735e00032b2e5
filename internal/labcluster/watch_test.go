package labcluster

import (
	"testing"
	"time"
)

func TestStretches(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	at := func(ms int, macs ...string) Sample {
		return Sample{At: t0.Add(time.Duration(ms) * time.Millisecond), MACs: macs}
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name                     string
		samples                  []Sample
		end                      int
		dark, multi, longestDark time.Duration
		multiSamples             int
	}{
		{"all one", []Sample{at(0, "a"), at(200, "a"), at(400, "b")}, 600, 0, 0, 0, 0},
		{"dark run", []Sample{at(0, "a"), at(200), at(400), at(600, "b"), at(800), at(1000, "b")}, 1200, ms(600), 0, ms(400), 0},
		{"dark at the end", []Sample{at(0, "a"), at(200)}, 700, ms(500), 0, ms(500), 0},
		{"two MACs", []Sample{at(0, "a"), at(200, "a", "b"), at(400, "b")}, 600, 0, ms(200), 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dark, multi, longest, n := stretches(c.samples, t0.Add(ms(c.end)))
			if dark != c.dark || multi != c.multi || longest != c.longestDark || n != c.multiSamples {
				t.Errorf("stretches = %s %s %s %d, want %s %s %s %d", dark, multi, longest, n, c.dark, c.multi, c.longestDark, c.multiSamples)
			}
		})
	}
}
