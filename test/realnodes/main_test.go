package realnodes

import (
	"fmt"
	"os"
	"testing"
)

// sharedDir holds what every test of the run shares: the built images.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ironlb-realnodes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
