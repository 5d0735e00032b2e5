package election

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/internal/deptest"
)

// kubernetes reports whether an import path belongs to Kubernetes or
// controller-runtime.
func kubernetes(path string) bool {
	return strings.HasPrefix(path, "k8s.io/") || strings.HasPrefix(path, "sigs.k8s.io/") ||
		strings.Contains(path, "controller-runtime")
}

// TestImports keeps the package's dependency rules (ARCHITECTURE.md):
// the owner choice is pure, and nothing here, memberlist code included,
// depends on Kubernetes, directly or through another package, so the
// failover path never waits for the API server.
func TestImports(t *testing.T) {
	// The files that hold the owner choice may import only these
	// standard-library packages, none of which reaches outside the
	// process or keeps time, so the choice stays a function of its
	// arguments (STYLE.md: pure core).
	pureFiles := []string{"owner.go", "doc.go"}
	pureAllowed := map[string]bool{"net/netip": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	pure := map[string]bool{}
	for _, f := range pureFiles {
		pure[f] = true
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if kubernetes(path) {
				t.Errorf("%s imports %s: package election must not depend on Kubernetes", name, path)
			}
			if pure[name] && !pureAllowed[path] {
				t.Errorf("%s imports %s: the owner choice may import only %v", name, path, pureAllowed)
			}
		}
		delete(pure, name)
	}
	for name := range pure {
		t.Errorf("pure file %s is missing; update pureFiles", name)
	}
}

// TestNoKubernetesDeps checks the transitive dependencies too, which the
// file check above cannot see (memberlist could grow one).
func TestNoKubernetesDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, dep := range deptest.Deps(t) {
		if kubernetes(dep) {
			t.Errorf("package election depends on %s", dep)
		}
	}
}
