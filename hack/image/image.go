// Command image builds ironlb's container image without a Docker daemon or a
// base image: `make image` writes it for every platform as one OCI archive
// (an OCI image layout in a tar), and `make release` pushes it to a registry
// as one multi-platform index. The image is what the Dockerfile's final stage
// builds, FROM scratch: the static binaries that `make build` writes, the
// files under rootfs/, and the same user and entrypoint; image_test.go holds
// the two together.
//
// The image format is go-containerregistry's work: this package only says
// which files go in with which modes, and what the config is.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rootfs holds the image's files other than the binaries. The Dockerfile
// copies the same directory (COPY hack/image/rootfs/ /).
//
//go:embed rootfs
var rootfs embed.FS

// Annotations on the archive's index.json entry that name the image, so that
// an import needs no name on its command line. containerd (ctr, nerdctl, the
// kubelet's runtime), Docker's containerd image store and Podman take the full
// name from the first; the OCI spec's own ref.name holds the tag alone, as
// containerd's and BuildKit's exporters write it.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// epoch is the time of every file in the image and of the image itself, so
// that the same binaries always give the same digests.
var epoch = time.Unix(0, 0).UTC()

// Spec is ironlb's image apart from the bytes of its binaries.
type Spec struct {
	// Binaries are the files `make build` writes, copied to / with mode
	// 0755, owned by root.
	Binaries []string
	// Root holds the other files, copied to / with mode 0644 (directories
	// 0755), owned by root.
	Root fs.FS
	// Config is what a container of the image starts with.
	Config v1.Config
}

// IronLB returns the spec of ironlb's image. It runs as 65532, the nonroot
// user of distroless images, which the controller's Deployment names too
// (runAsUser); the speaker's DaemonSet runs it as root with NET_RAW and
// NET_ADMIN only.
func IronLB() Spec {
	root, err := fs.Sub(rootfs, "rootfs")
	if err != nil {
		panic(err) // "rootfs" is a valid path, and fs.Sub fails on nothing else
	}
	return Spec{
		Binaries: []string{"ironlb", "ironlb-controller", "ironlb-speaker", "ironlbctl"},
		Root:     root,
		Config: v1.Config{
			User:       "65532:65532",
			Entrypoint: []string{"/ironlb"},
			// What a Dockerfile stage FROM scratch starts with (BuildKit's
			// dockerfile2llb emptyImage), so that both builds agree.
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir: "/",
		},
	}
}

// ParsePlatforms parses a list such as "linux/amd64 linux/arm64" (spaces or
// commas between the platforms).
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", f, err)
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: want OS/ARCH", f)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return out, nil
}

// BinDir is where `make build-platforms` puts the binaries for p under bin.
func BinDir(bin string, p v1.Platform) string {
	return filepath.Join(bin, p.OS+"_"+p.Architecture)
}

// Build returns the image for platform p, holding spec's files with the
// binaries read from binDir. It reads the binaries before it returns.
func Build(spec Spec, p v1.Platform, binDir string) (v1.Image, error) {
	files, err := spec.files(binDir)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.AddFS(files); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	layerTar := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           p.OS,
		Architecture: p.Architecture,
		Variant:      p.Variant,
		Config:       spec.Config,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "hack/image: " + strings.Join(spec.Binaries, ", ") + " and hack/image/rootfs",
		},
	})
}

// files lays out the image's file system: spec.Root's files, and the
// binaries from binDir.
func (spec Spec) files(binDir string) (fstest.MapFS, error) {
	files := fstest.MapFS{}
	err := fs.WalkDir(spec.Root, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == ".":
			return nil
		case d.IsDir():
			files[p] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, ModTime: epoch}
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("rootfs/%s: not a regular file", p)
		}
		data, err := fs.ReadFile(spec.Root, p)
		if err != nil {
			return err
		}
		files[p] = &fstest.MapFile{Data: data, Mode: 0o644, ModTime: epoch}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	for _, b := range spec.Binaries {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			return nil, fmt.Errorf("binary: %w", err)
		}
		files[b] = &fstest.MapFile{Data: data, Mode: 0o755, ModTime: epoch}
	}
	return files, nil
}

// Index returns the multi-platform index of imgs, one per platform, in the
// order given.
func Index(platforms []v1.Platform, imgs []v1.Image) v1.ImageIndex {
	adds := make([]mutate.IndexAddendum, len(imgs))
	for i, img := range imgs {
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platforms[i]}}
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// WriteArchive writes idx to w as an OCI archive: an OCI image layout in a
// tar, whose index.json names idx as ref. The layout is written by
// go-containerregistry into a temporary directory, which is removed.
//
// An index of one image also gets Docker's manifest.json, naming the same
// blobs: Docker's classic image store loads only that format (its
// containerd image store, ctr and Podman read the OCI layout). With several
// platforms there is none, as the classic store would load every platform's
// image under the one name.
func WriteArchive(w io.Writer, idx v1.ImageIndex, ref name.Tag) error {
	dir, err := os.MkdirTemp("", "ironlb-image-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationImageName: ref.String(),
		annotationRefName:   ref.TagStr(),
	}))
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) == 1 {
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			return err
		}
		if err := writeDockerManifest(p, img, ref); err != nil {
			return fmt.Errorf("docker manifest.json: %w", err)
		}
	}
	return archive(w, dir)
}

// writeDockerManifest writes the manifest.json of `docker save`'s format
// (go-containerregistry's tarball.Manifest) for img into the layout p,
// pointing at the layout's blobs, as `docker save` itself does.
func writeDockerManifest(p layout.Path, img v1.Image, ref name.Tag) error {
	cfg, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	d := tarball.Descriptor{Config: blobPath(cfg), RepoTags: []string{ref.String()}}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		d.Layers = append(d.Layers, blobPath(h))
	}
	data, err := json.Marshal(tarball.Manifest{d})
	if err != nil {
		return err
	}
	return p.WriteFile("manifest.json", data, 0o644)
}

// blobPath is where an OCI layout keeps the blob h.
func blobPath(h v1.Hash) string {
	return path.Join("blobs", h.Algorithm, h.Hex)
}

// archive writes the tree under dir to w as a tar, with fixed modes, owner
// and times, so that the same layout always gives the same archive.
func archive(w io.Writer, dir string) error {
	files := fstest.MapFS{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			files[rel] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, ModTime: epoch}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = &fstest.MapFile{Data: data, Mode: 0o644, ModTime: epoch}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := tw.AddFS(files); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return tw.Close()
}

// Push pushes idx, with every image and blob it holds, to ref, with the
// credentials keychain finds for ref's registry.
func Push(ctx context.Context, idx v1.ImageIndex, ref name.Reference, keychain authn.Keychain) error {
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
