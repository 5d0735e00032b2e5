package main

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps ironlbctl beside the daemons, not on top of
// them: what it shares with them (the scheme, reading the configuration,
// the rule of who may announce an address) comes from the packages beneath
// both (internal/kube, internal/announce). Importing internal/speaker
// would also link GoBGP and memberlist into the binary.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "ironlbctl must not import a daemon or link the speaker's BGP stack",
		"github.com/osrg/gobgp", "github.com/hashicorp/memberlist",
		"github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/bgp",
		"github.com/ironlb/ironlb/internal/controller")
}
