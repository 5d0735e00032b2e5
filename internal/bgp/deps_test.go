package bgp

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps the package below the reconcilers
// (ARCHITECTURE.md): no Kubernetes client (the speaker reads Secrets and
// hands PeersFor the passwords) and no reconciler.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "internal/bgp stays below the reconcilers",
		"k8s.io/client-go", "sigs.k8s.io/controller-runtime",
		"github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/controller")
}
