package config

import (
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// TestPureDependencies keeps this package free of Kubernetes clients:
// it must be usable from any process (and fuzzed, and benchmarked) with no
// API server.
func TestPureDependencies(t *testing.T) {
	deptest.Forbid(t, "internal/config must not use a Kubernetes client",
		"k8s.io/client-go", "sigs.k8s.io/controller-runtime")
}
