package controller

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps the two daemons siblings (ARCHITECTURE.md), and
// the controller off the network: it allocates, it never announces.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "the controller must not import the speaker or its network stack",
		"github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/l2",
		"github.com/ironlb/ironlb/internal/bgp", "github.com/osrg/gobgp", "github.com/hashicorp/memberlist")
}
