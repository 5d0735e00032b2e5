// Package benchbin checks the ironlb binary a benchmark is about to
// measure.
package benchbin

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/apiservertest"
)

// Resolve returns the ironlb binary a benchmark measures: bin, or
// bin/ironlb in the repository when bin is empty, checked by CheckFresh.
func Resolve(ctx context.Context, bin string, diag io.Writer) (string, error) {
	root, err := apiservertest.RepoRoot()
	if err != nil {
		return "", err
	}
	if bin == "" {
		bin = filepath.Join(root, "bin", "ironlb")
	}
	return bin, CheckFresh(ctx, bin, root, diag)
}

// CheckFresh reports on diag when the ironlb binary bin was built, and
// warns there when it is older than a Go source of a package of this
// module that ./cmd/ironlb is built from (root is the repository): people
// edit ironlb while benchmarks run. It fails when bin is missing or the
// sources cannot be listed.
func CheckFresh(ctx context.Context, bin, root string, diag io.Writer) error {
	st, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	fmt.Fprintf(diag, "# ironlb binary %s built %s\n", bin, st.ModTime().Format(time.RFC3339))
	list := exec.CommandContext(ctx, "go", "list", "-deps", "-f",
		`{{if .Module}}{{if eq .Module.Path "github.com/ironlb/ironlb"}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/ironlb")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		return fmt.Errorf("list the sources of ironlb: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if info, err := os.Stat(f); err == nil && info.ModTime().After(st.ModTime()) {
			fmt.Fprintf(diag, "# warning: %s is newer than the binary; `make build` to measure the current code\n", f)
			break
		}
	}
	return nil
}
