package kube

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps the adapter beneath both daemons: it may not reach
// either of them, nor their network stacks.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "internal/kube sits beneath the daemons",
		"github.com/ironlb/ironlb/internal/controller", "github.com/ironlb/ironlb/internal/speaker",
		"github.com/ironlb/ironlb/internal/l2", "github.com/ironlb/ironlb/internal/bgp",
		"github.com/ironlb/ironlb/internal/election", "github.com/osrg/gobgp", "github.com/hashicorp/memberlist")
}
