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

// TestLean keeps the speaker off controller-runtime and client-go's
// clientset, which every node would pay for in resident memory (some
// 13 MiB: they register every API group of Kubernetes as the process
// starts). It reaches the API server through internal/apiclient.
func TestLean(t *testing.T) {
	deptest.Forbid(t, "the speaker reaches the API server through internal/apiclient",
		"sigs.k8s.io/controller-runtime", "k8s.io/client-go/kubernetes",
		"k8s.io/client-go/tools/events", "k8s.io/client-go/tools/record",
		"github.com/ironlb/ironlb/internal/kubecr")
}
