package install

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// devImage is the image config/default names; `make manifests` replaces it
// with $(IMAGE):$(IMAGE_TAG).
const devImage = "ghcr.io/ironlb/ironlb:dev"

var imageLine = regexp.MustCompile(`(?m)^\s+image: (\S+)$`)

// distImage is the one image dist/ironlb.yaml runs, and its tag.
func distImage(t *testing.T) (image, tag string) {
	t.Helper()
	ms := imageLine.FindAllStringSubmatch(string(read(t, "dist", "ironlb.yaml")), -1)
	if len(ms) != 2 {
		t.Fatalf("dist/ironlb.yaml has %d image lines, want 2 (controller and speaker)", len(ms))
	}
	if ms[0][1] != ms[1][1] {
		t.Fatalf("dist/ironlb.yaml runs two images, %s and %s; want one", ms[0][1], ms[1][1])
	}
	image = ms[0][1]
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		t.Fatalf("dist/ironlb.yaml's image %s has no tag", image)
	}
	return image, image[i+1:]
}

// renderDist does what `make manifests` does to write dist/ironlb.yaml.
func renderDist(t *testing.T, image, tag string) []byte {
	t.Helper()
	out := mustKubectl(t, nil, "kustomize", "config/default")
	if n := strings.Count(out, "image: "+devImage+"\n"); n != 2 {
		t.Fatalf("kubectl kustomize config/default: %d lines run %s, want 2", n, devImage)
	}
	out = strings.ReplaceAll(out, "image: "+devImage+"\n", "image: "+image+"\n")
	return []byte("# ironlb " + tag + ": rendered by `make manifests` from config/default; do not edit.\n" + out)
}

// golden compares a checked-in generated file with what its generator
// writes now, or rewrites it under -update.
func golden(t *testing.T, path string, want []byte, how string) {
	t.Helper()
	p := repo(t, path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v: run %s", err, how)
	}
	if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); diff != "" {
		t.Errorf("%s is stale; run %s (-want +got):\n%s", path, how, diff)
	}
}

// TestDistIsCurrent checks that dist/ironlb.yaml is what `make manifests`
// renders from config/ now, whatever image tag it was rendered with.
func TestDistIsCurrent(t *testing.T) {
	image, tag := distImage(t)
	golden(t, "dist/ironlb.yaml", renderDist(t, image, tag), "`make manifests VERSION="+tag+"`")
}

// TestChartCopiesAreCurrent checks the chart's copies of generated files:
// its CRDs and the roles generated from the code's RBAC markers.
func TestChartCopiesAreCurrent(t *testing.T) {
	golden(t, "charts/ironlb/crds/ironlb.io.yaml", []byte(mustKubectl(t, nil, "kustomize", "config/crd")), "`make manifests`")
	for _, c := range []string{"controller", "speaker"} {
		golden(t, "charts/ironlb/files/rbac/"+c+".yaml", read(t, "config", "rbac", c, "role.yaml"), "`make manifests`")
	}
}

// TestEveryCRDIsInstalled checks that config/crd/kustomization.yaml lists
// every CRD that `make generate` writes, so a new kind cannot be left out
// of the install.
func TestEveryCRDIsInstalled(t *testing.T) {
	files, err := filepath.Glob(repo(t, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decode(t, b) {
			want = append(want, o.GetName())
		}
	}
	var got []string
	for _, o := range decode(t, read(t, "dist", "ironlb.yaml")) {
		if o.GetKind() == "CustomResourceDefinition" {
			got = append(got, o.GetName())
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CRDs in dist/ironlb.yaml differ from config/crd/bases; list every file in config/crd/kustomization.yaml and run `make manifests` (-bases +dist):\n%s", diff)
	}
}
