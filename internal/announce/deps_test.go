package announce

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps the rule pure (STYLE.md: pure core, thin shell):
// no Kubernetes client, no network stack, no membership, nothing of the
// daemons. ironlbctl calls it too, and must link none of those
// (cmd/ironlbctl/deps_test.go). That is also why the owner choice comes
// in as an OwnerFunc: package election holds memberlist beside it.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "internal/announce is a pure rule: no client, no I/O, no daemon",
		"k8s.io/client-go", "sigs.k8s.io/controller-runtime",
		"github.com/osrg/gobgp", "github.com/hashicorp/memberlist",
		"github.com/mdlayher", "github.com/vishvananda",
		"github.com/ironlb/ironlb/internal/kube", "github.com/ironlb/ironlb/internal/records",
		"github.com/ironlb/ironlb/internal/election", "github.com/ironlb/ironlb/internal/l2",
		"github.com/ironlb/ironlb/internal/bgp", "github.com/ironlb/ironlb/internal/speaker",
		"github.com/ironlb/ironlb/internal/controller")
}
