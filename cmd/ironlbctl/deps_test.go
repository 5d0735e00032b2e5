package main

import (
	"testing"

	"github.com/ironlb/ironlb/internal/testdeps"
)

// TestDependencies keeps the speaker's BGP stack out of ironlbctl: it
// computes who announces over BGP itself (status_bgp.go) rather than
// importing internal/speaker, which would link GoBGP into the binary.
func TestDependencies(t *testing.T) {
	testdeps.Forbid(t, "ironlbctl must not link the speaker's BGP stack",
		"github.com/osrg/gobgp", "github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/bgp")
}
