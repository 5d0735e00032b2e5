package speaker

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps the two daemons siblings (ARCHITECTURE.md): the
// speaker reads what it shares with the controller from internal/kube.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "the speaker must not import the controller", "github.com/ironlb/ironlb/internal/controller")
}
