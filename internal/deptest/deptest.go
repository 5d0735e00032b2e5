// Package deptest checks, in a package's tests, the dependency rules of
// ARCHITECTURE.md: which packages a package may not reach, directly or
// through another one. It asks the go command, which sees what a file's
// imports cannot: a dependency that a dependency brings.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Deps returns every package that the package in the test's directory
// depends on, directly or not, itself included (`go list -deps .`; test
// files do not count). It skips t when there is no go command.
func Deps(t testing.TB) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	return strings.Fields(string(out))
}

// Forbid fails t for each dependency of the package in the test's
// directory that is one of forbidden or below one of them (a path prefix
// up to a slash), saying why it is not allowed.
func Forbid(t testing.TB, why string, forbidden ...string) {
	t.Helper()
	for _, pkg := range Deps(t) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("depends on %s: %s", pkg, why)
			}
		}
	}
}
