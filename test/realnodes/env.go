// Package realnodes installs ironlb the way a user does, on a lab cluster
// of real nodes (internal/labkube: kubelet, containerd, kube-proxy in
// nftables mode, kube-controller-manager and kube-scheduler): the image
// built by `make image` and imported into every node's containerd,
// dist/ironlb.yaml applied with kubectl or the chart installed with helm,
// the tutorial's configuration and Services (shared/seed/SCENARIO.md) in
// front of real pods, a LAN client reaching each address through
// kube-proxy, an upgrade in place while the client probes, an uninstall,
// and the death of the node announcing an address.
//
// The tests in this package run the scenario for each install path; the
// benchmark test/bench/realnodes prints its figures as `name value unit`
// lines. Both need root, `make tools` and `make build` (bin/kubectl,
// bin/helm, bin/ironlbctl), and Debian's containerd, runc and
// containernetworking-plugins.
package realnodes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// ImageRepository names the images the scenario builds. It cannot resolve
// (.test, RFC 2606), so a kubelet that did not find an image imported
// would fail to pull it rather than fetch anything.
const ImageRepository = "registry.ironlb.test/ironlb"

// Versions of the two builds: the first is installed, the second is the
// upgrade. Both are built from the working tree.
const (
	VersionOld = "v0.1.0-lab"
	VersionNew = "v0.1.1-lab"
)

// Namespace is ironlb's namespace in both install paths.
const Namespace = "ironlb-system"

// Pool is the address range of the tutorial's pool, moved to the lab's LAN
// (198.51.100.0/24): the tutorial's 192.168.1.87-192.168.1.97 is an office
// LAN's. Requested addresses move with it (RequestedIP).
const Pool = "198.51.100.200-198.51.100.220"

// Image is one built image: its reference and OCI archive.
type Image struct {
	Ref, Archive, Version string
}

// BuildImage runs `make image` for this machine's platform with VERSION
// version into dir (binaries and archive; nothing in the repository
// changes) and returns the image.
func BuildImage(ctx context.Context, root, dir, version string) (Image, error) {
	img := Image{
		Ref:     ImageRepository + ":" + version,
		Archive: filepath.Join(dir, "ironlb-image-"+version+".tar"),
		Version: version,
	}
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "image",
		"IMAGE_PLATFORMS=linux/"+runtime.GOARCH,
		"IMAGE="+ImageRepository,
		"VERSION="+version,
		"IMAGE_ARCHIVE="+img.Archive,
		"BIN="+filepath.Join(dir, "bin-"+version),
	)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return img, fmt.Errorf("make image VERSION=%s: %w\n%s", version, err, out)
	}
	return img, nil
}

// Env is one scenario's cluster and tools. Its methods log through Logf
// and record figures in Figures.
type Env struct {
	C    *labkube.Cluster
	Lab  *labnet.Lab
	Root string // the repository
	Dir  string // scratch files: rewritten manifests, helm's home
	Logf func(format string, args ...any)

	// Figures are the measurements so far, in order.
	Figures []Figure
}

// Figure is one measurement, printed as `name value unit`.
type Figure struct {
	Name  string
	Value float64
	Unit  string
}

func (f Figure) String() string { return fmt.Sprintf("%s %g %s", f.Name, f.Value, f.Unit) }

// record adds a figure, to three decimals.
func (e *Env) record(name string, value float64, unit string) {
	value = math.Round(value*1000) / 1000
	e.Figures = append(e.Figures, Figure{name, value, unit})
	e.Logf("figure: %s %g %s", name, value, unit)
}

// recordDuration adds a duration figure in seconds.
func (e *Env) recordDuration(name string, d time.Duration) {
	e.record(name, d.Round(time.Millisecond).Seconds(), "s")
}

// bin is a program in the repository's bin directory.
func (e *Env) bin(name string) string { return filepath.Join(e.Root, "bin", name) }

// Run runs a program of bin/ (kubectl, helm, ironlbctl) in the lab's
// client host, as a user on the LAN runs it: in the repository's root,
// with KUBECONFIG set to the lab's admin kubeconfig and helm's
// directories in the scenario's scratch directory. It returns the
// combined output.
func (e *Env) Run(ctx context.Context, program string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	envArgs := []string{
		"-C", e.Root,
		"KUBECONFIG=" + e.C.CP.Kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(e.Dir, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(e.Dir, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(e.Dir, "helm", "data"),
		"PATH=" + filepath.Join(e.Root, "bin") + ":" + os.Getenv("PATH"),
		e.bin(program),
	}
	start := time.Now()
	out, err := e.Lab.Client().Run(ctx, "env", append(envArgs, args...)...)
	e.Logf("$ %s %s (%v)\n%s", program, strings.Join(args, " "), since(start), indent(out))
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", program, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// indent indents output for the log.
func indent(b []byte) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return ""
	}
	return "    " + strings.ReplaceAll(string(b), "\n", "\n    ")
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// ImportImages imports the images into every node's containerd, as the
// README says (`ctr -n k8s.io images import`), the nodes in parallel.
func (e *Env) ImportImages(ctx context.Context, imgs ...Image) error {
	var wg sync.WaitGroup
	errs := make([]error, len(e.C.Nodes))
	for i, n := range e.C.Nodes {
		wg.Go(func() {
			for _, img := range imgs {
				if err := n.ImportImage(ctx, img.Archive); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RepoRoot finds the repository's root from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/ironlb/ironlb\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the ironlb repository is not above the working directory")
		}
		dir = parent
	}
}

// Missing says what keeps this machine from running the scenario (bin/
// programs, packages), or "".
func Missing(root string) string {
	if reason := labkube.Missing(""); reason != "" {
		return reason
	}
	for _, p := range []string{"kubectl", "helm", "ironlbctl"} {
		if _, err := os.Stat(filepath.Join(root, "bin", p)); err != nil {
			return fmt.Sprintf("bin/%s missing: run `make tools build`", p)
		}
	}
	if _, err := exec.LookPath("make"); err != nil {
		return "make not found"
	}
	return ""
}
