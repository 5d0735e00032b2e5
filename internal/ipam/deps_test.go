package ipam

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the allocator pure (ARCHITECTURE.md: no Kubernetes
// imports, no I/O): its code may import only the standard library minus
// packages that reach outside the process, and its tests only go-cmp on
// top of that.
func TestImports(t *testing.T) {
	forbidden := []string{"os", "os/exec", "net/http", "io/fs", "syscall", "log", "log/slog", "time", "sync", "unsafe"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		test := strings.HasSuffix(name, "_test.go")
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case test && strings.HasPrefix(path, "github.com/google/go-cmp/"):
			case test:
				if strings.Contains(strings.Split(path, "/")[0], ".") {
					t.Errorf("%s imports %s: tests may add only go-cmp to the standard library", name, path)
				}
			case strings.Contains(strings.Split(path, "/")[0], "."):
				t.Errorf("%s imports %s: the allocator may import only the standard library", name, path)
			default:
				for _, bad := range forbidden {
					if path == bad {
						t.Errorf("%s imports %s: the allocator does no I/O, keeps no time and starts no goroutines", name, path)
					}
				}
			}
		}
	}
}
