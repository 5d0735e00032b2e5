package labcluster

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestStretches(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	at := func(ms int, macs ...string) Sample {
		return Sample{At: t0.Add(time.Duration(ms) * time.Millisecond), MACs: macs}
	}
	route := func(ms int, hops ...string) Sample {
		s := Sample{At: t0.Add(time.Duration(ms) * time.Millisecond)}
		for _, h := range hops {
			s.NextHops = append(s.NextHops, netip.MustParseAddr(h))
		}
		return s
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name                     string
		samples                  []Sample
		end                      int
		dark, multi, longestDark time.Duration
		longestAt                int // ms; -1 for none
		multiSamples             int
	}{
		{"all one", []Sample{at(0, "a"), at(200, "a"), at(400, "b")}, 600, 0, 0, 0, -1, 0},
		{"dark run", []Sample{at(0, "a"), at(200), at(400), at(600, "b"), at(800), at(1000, "b")}, 1200, ms(600), 0, ms(400), 200, 0},
		{"longer later", []Sample{at(0), at(100, "a"), at(200), at(300), at(500, "a")}, 600, ms(400), 0, ms(300), 200, 0},
		{"dark at the end", []Sample{at(0, "a"), at(200)}, 700, ms(500), 0, ms(500), 200, 0},
		{"two MACs", []Sample{at(0, "a"), at(200, "a", "b"), at(400, "b")}, 600, 0, ms(200), 0, -1, 1},
		// Routed: several next hops are ECMP, none is dark.
		{"routes", []Sample{route(0, "198.51.100.11", "198.51.100.12"), route(200), route(300, "198.51.100.12")}, 500, ms(100), 0, ms(100), 200, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dark, multi, longest, at, n := stretches(c.samples, t0.Add(ms(c.end)))
			wantAt := time.Time{}
			if c.longestAt >= 0 {
				wantAt = t0.Add(ms(c.longestAt))
			}
			if dark != c.dark || multi != c.multi || longest != c.longestDark || !at.Equal(wantAt) || n != c.multiSamples {
				t.Errorf("stretches = %s %s %s at %s %d, want %s %s %s at %s %d", dark, multi, longest, at, n, c.dark, c.multi, c.longestDark, wantAt, c.multiSamples)
			}
		})
	}
}

func TestRoutedReport(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12")
	ip := netip.MustParseAddr("203.0.113.113")
	ss := []Sample{
		{At: t0, NextHops: []netip.Addr{a, b}},
		{At: t0.Add(100 * time.Millisecond), NextHops: []netip.Addr{a, b}},
		{At: t0.Add(200 * time.Millisecond), NextHops: []netip.Addr{b}},
		{At: t0.Add(300 * time.Millisecond)},
		{At: t0.Add(400 * time.Millisecond), NextHops: []netip.Addr{a, b}},
	}
	if got, want := hopChanges(ss, t0), "[198.51.100.11 198.51.100.12] at 0s, [198.51.100.12] at 200ms, [] at 300ms, [198.51.100.11 198.51.100.12] at 400ms"; got != want {
		t.Errorf("hopChanges = %q, want %q", got, want)
	}
	ir := &IPReport{Samples: ss}
	ir.Dark, ir.Multi, ir.LongestDark, ir.LongestDarkAt, ir.MultiSamples = stretches(ss, t0.Add(500*time.Millisecond))
	r := Report{Start: t0, Duration: 500 * time.Millisecond, IPs: map[netip.Addr]*IPReport{ip: ir}, Routed: true}
	want := []string{"x_longest_gap 0.000 s", "x_no_route 0.100 s"}
	if got := r.Figures("x"); !slices.Equal(got, want) {
		t.Errorf("Figures = %q, want %q", got, want)
	}
	if err := r.Check(Bounds{MaxGap: time.Second, MaxDark: 50 * time.Millisecond}); err == nil {
		t.Error("Check passed a 100 ms stretch without a route against a 50 ms bound")
	}
	if err := r.Check(Bounds{}); err != nil {
		t.Errorf("Check: %v (two next hops are ECMP, not two MACs)", err)
	}
}
