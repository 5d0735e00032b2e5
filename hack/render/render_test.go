package main

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestRenderAsKubectl renders a kustomization that uses what config/default
// uses and compares it with what `kubectl kustomize` (hack/tools' build)
// wrote for it: `bin/kubectl kustomize testdata/kustomize >
// testdata/kustomize.golden.yaml` regenerates the golden file.
func TestRenderAsKubectl(t *testing.T) {
	want, err := os.ReadFile("testdata/kustomize.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(filesys.MakeFsOnDisk(), "testdata/kustomize")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Render against kubectl kustomize (-kubectl +Render):\n%s", diff)
	}
}

// TestRenderStaysInRoot checks kubectl's load restriction: a kustomization
// may not read files above its own directory.
func TestRenderStaysInRoot(t *testing.T) {
	fsys := filesys.MakeFsInMemory()
	for name, data := range map[string]string{
		"/outside.yaml":           "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
		"/dir/kustomization.yaml": "resources:\n- ../outside.yaml\n",
	} {
		if err := fsys.WriteFile(name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := Render(fsys, "/dir"); err == nil {
		t.Errorf("Render read a file outside its root:\n%s", out)
	}
}
