package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the speaker's BGP stack out of ironlbctl: it
// computes who announces over BGP itself (status_bgp.go) rather than
// importing internal/speaker, which would link GoBGP into the binary.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"github.com/osrg/gobgp", "github.com/ironlb/ironlb/internal/speaker", "github.com/ironlb/ironlb/internal/bgp"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("ironlbctl depends on %s", pkg)
			}
		}
	}
}
