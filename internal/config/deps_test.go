package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureDependencies keeps this package free of Kubernetes clients:
// it must be usable from any process (and fuzzed, and benchmarked) with no
// API server. It lists every package the non-test code depends on.
func TestPureDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("internal/config depends on %s; it must not use a Kubernetes client", pkg)
			}
		}
	}
}
