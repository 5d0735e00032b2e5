package deptest

import (
	"slices"
	"testing"
)

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Helper()               {}

func TestForbid(t *testing.T) {
	deps := Deps(t)
	if !slices.Contains(deps, "os/exec") || !slices.Contains(deps, "github.com/ironlb/ironlb/internal/deptest") {
		t.Fatalf("deps of this package lack os/exec or itself: %v", deps)
	}
	for _, tc := range []struct {
		forbidden []string
		want      int
	}{
		{[]string{"os"}, 2},                 // os, and os/exec below it
		{[]string{"os/exec"}, 1},            // exactly
		{[]string{"os/ex"}, 0},              // a prefix that is not a path element
		{[]string{"k8s.io/client-go"}, 0},   // nothing of it
		{[]string{"os/exec", "strings"}, 2}, // each
	} {
		r := &recorder{TB: t}
		Forbid(r, "test", tc.forbidden...)
		if r.errors != tc.want {
			t.Errorf("Forbid(%v): %d errors, want %d", tc.forbidden, r.errors, tc.want)
		}
	}
}
