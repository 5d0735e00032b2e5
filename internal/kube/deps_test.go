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

// TestNoControllerRuntime keeps internal/kube light enough for the
// speaker, which links it: controller-runtime, client-go's clientset
// (with its scheme and typed clients) and the event recorders cost each
// node about 13 MiB of resident memory. What only the controller and
// ironlbctl use of them lives in internal/kubecr.
func TestNoControllerRuntime(t *testing.T) {
	deptest.Forbid(t, "the speaker links internal/kube; put what needs it in internal/kubecr",
		"sigs.k8s.io/controller-runtime", "k8s.io/client-go/kubernetes",
		"k8s.io/client-go/tools/events", "k8s.io/client-go/tools/record")
}
