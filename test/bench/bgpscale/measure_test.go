package main

import (
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// TestFlapped checks the flap check after the node loss: FRR by its count
// of sessions established, BIRD by its since time, which may read a
// millisecond apart for the same state change.
func TestFlapped(t *testing.T) {
	start := time.Date(2026, 11, 27, 8, 32, 48, 0, time.UTC)
	est := 2860 * time.Millisecond
	for _, tc := range []struct {
		name string
		nb   labnet.BGPNeighbor
		want bool
	}{
		{"frr: same count", labnet.BGPNeighbor{State: "Established", Established: 1}, false},
		{"frr: came up again", labnet.BGPNeighbor{State: "Established", Established: 2}, true},
		{"frr: down", labnet.BGPNeighbor{State: "Active", Established: 1}, true},
		{"bird: same time", labnet.BGPNeighbor{State: "Established", Since: start.Add(est)}, false},
		{"bird: a millisecond apart", labnet.BGPNeighbor{State: "Established", Since: start.Add(est + time.Millisecond)}, false},
		{"bird: reset", labnet.BGPNeighbor{State: "Established", Since: start.Add(est + 2*time.Second)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flapped(tc.nb, start, est, 1); got != tc.want {
				t.Errorf("flapped %v, want %v", got, tc.want)
			}
		})
	}
}
