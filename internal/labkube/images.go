package labkube

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Images the lab builds from this package's images/ directory. Their
// registry name is one that cannot resolve (.test, RFC 2606), so a kubelet
// told to pull them would fail rather than fetch anything.
const (
	// PauseImage is the pod sandbox image (containerd's sandbox_image).
	PauseImage = "registry.ironlb.test/lab/pause:1"
	// HelloImage is the HTTP workload: it answers on port HelloPort with
	// its pod's name.
	HelloImage = "registry.ironlb.test/lab/hello:1"
	// HelloPort is the port HelloImage listens on.
	HelloPort = 8080
)

// imageSource is a Go program built into a one-file image.
type imageSource struct {
	name string // image reference
	pkg  string // Go package, built static
	bin  string // file name in the image, also the entrypoint
}

var labImages = []imageSource{
	{PauseImage, "github.com/ironlb/ironlb/internal/labkube/images/pause", "pause"},
	{HelloImage, "github.com/ironlb/ironlb/internal/labkube/images/hello", "hello"},
}

// buildImages builds the lab's images into dir and returns the paths of
// their OCI archives, ready for `ctr images import`.
func buildImages(ctx context.Context, dir string) ([]string, error) {
	var archives []string
	for _, src := range labImages {
		bin := filepath.Join(dir, src.bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %w: %s", src.pkg, err, out)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		archive := filepath.Join(dir, src.bin+".oci.tar")
		if err := writeOCIArchive(archive, src.name, src.bin, b); err != nil {
			return nil, fmt.Errorf("image %s: %w", src.name, err)
		}
		archives = append(archives, archive)
	}
	return archives, nil
}

// Annotations naming an image in an OCI layout's index: the OCI one, and
// the full name containerd's import prefers over it.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// writeOCIArchive writes a tar of an OCI image layout holding one image
// named name: a single layer with the executable bin at /file, which is
// also its entrypoint. `ctr images import` reads it.
func writeOCIArchive(path, name, file string, bin []byte) error {
	var layerTar bytes.Buffer
	if err := writeTar(&layerTar, map[string][]byte{file: bin}, 0o755); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.Entrypoint = []string{"/" + file}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}

	dir, err := os.MkdirTemp(filepath.Dir(path), "layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: name, annotationContainerdName: name})); err != nil {
		return err
	}
	files := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := writeTar(&out, files, 0o644); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// writeTar writes files (with their parent directories) to w in name
// order, with fixed owners and times so that equal input gives equal
// digests: an image's one layer, and the archive of an OCI layout.
func writeTar(w *bytes.Buffer, files map[string][]byte, mode int64) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, name := range sortedKeys(files) {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range sortedKeys(dirs) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(files) {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// HelloName GETs url from a HelloImage server through hc and returns its
// body's first line: the name of the pod that answered.
func HelloName(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}
