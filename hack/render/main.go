// Command render prints the kustomization in a directory as `kubectl
// kustomize DIR` prints it, byte for byte: `make manifests` renders
// dist/ironlb.yaml and the chart's CRDs with it, so that pointing the install
// at another image needs no Kubernetes tool built first.
//
// It runs the kustomize library (sigs.k8s.io/kustomize/api, the version
// hack/tools' kubectl is built with) with the options `kubectl kustomize`
// runs it with when given no flags: the kustomization's directory as the load
// root, no plugins, no Helm, and the legacy order (Namespaces and CRDs first)
// unless the kustomization sets sortOptions.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render DIR")
		os.Exit(2)
	}
	out, err := Render(filesys.MakeFsOnDisk(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// Render returns the YAML of the kustomization in dir of fsys, as `kubectl
// kustomize` writes it.
func Render(fsys filesys.FileSystem, dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	// The library's default is no reordering; kustomize's build command (and
	// so kubectl's) passes "unspecified" when --reorder is not given.
	opts.Reorder = krusty.ReorderOptionUnspecified
	m, err := krusty.MakeKustomizer(opts).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	return m.AsYaml()
}
