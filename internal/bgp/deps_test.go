package bgp

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package below the reconcilers
// (ARCHITECTURE.md): no Kubernetes client (the speaker reads Secrets and
// hands PeersFor the passwords) and no reconciler.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/controller"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("internal/bgp depends on %s", pkg)
			}
		}
	}
}
