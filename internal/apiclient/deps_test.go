package apiclient

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestDependencies keeps out of the package what it exists to replace:
// linking any of these costs the speaker about 13 MiB of resident memory.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "the speaker's API client must not link controller-runtime or client-go's clientset",
		"sigs.k8s.io/controller-runtime",
		"k8s.io/client-go/kubernetes", // the clientset, its scheme and typed packages
		"k8s.io/client-go/tools/events",
		"k8s.io/client-go/tools/record",
		"k8s.io/client-go/dynamic",
	)
}
