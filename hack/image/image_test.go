package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// repoRoot is the repository, the Dockerfile's build context.
const repoRoot = "../.."

var testPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// fakeBinaries writes, for each platform, a stand-in for each of spec's
// binaries whose bytes name the binary and the platform, and returns the
// directory that holds the OS_ARCH/ directories (like bin/).
func fakeBinaries(t *testing.T, spec Spec) string {
	t.Helper()
	bin := t.TempDir()
	for _, p := range testPlatforms {
		dir := BinDir(bin, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range spec.Binaries {
			if err := os.WriteFile(filepath.Join(dir, b), fakeBinary(b, p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return bin
}

func fakeBinary(name string, p v1.Platform) []byte {
	return []byte("#!fake " + name + " for " + p.String() + "\n")
}

// buildIndex builds spec's image for testPlatforms from the binaries in bin.
func buildIndex(t *testing.T, spec Spec, bin string) v1.ImageIndex {
	t.Helper()
	imgs := make([]v1.Image, len(testPlatforms))
	for i, p := range testPlatforms {
		var err error
		if imgs[i], err = Build(spec, p, BinDir(bin, p)); err != nil {
			t.Fatalf("Build(%s): %v", p, err)
		}
	}
	return Index(testPlatforms, imgs)
}

// readArchive unpacks an OCI archive and returns its index.json and the
// image index that index.json names.
func readArchive(t *testing.T, archive []byte) (v1.ImageIndex, v1.Descriptor, v1.ImageIndex) {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("archive: %s: owner %d:%d, time %v; want 0:0 at %v", h.Name, h.Uid, h.Gid, h.ModTime, epoch)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("archive: %s: outside the layout", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		default:
			t.Fatalf("archive: %s: type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("archive is no OCI layout: %v", err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json names %d manifests, want the one index", len(im.Manifests))
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("index.json's entry: %v", err)
	}
	return top, im.Manifests[0], idx
}

// file is a regular file or a directory in an image.
type file struct {
	mode fs.FileMode
	data string
}

// imageFiles returns the file system of img, by path without a leading
// slash, checking that root owns every entry.
func imageFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("layer: %s is owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.Trim(path.Clean("/"+h.Name), "/")] = file{mode: h.FileInfo().Mode(), data: string(data)}
	}
}

// platformImages returns idx's images by platform, checking that it holds
// one image for each of platforms (testPlatforms if none are given).
func platformImages(t *testing.T, idx v1.ImageIndex, platforms ...v1.Platform) map[string]v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs[d.Platform.String()] = img
	}
	var got, want []string
	for p := range imgs {
		got = append(got, p)
	}
	if len(platforms) == 0 {
		platforms = testPlatforms
	}
	for _, p := range platforms {
		want = append(want, p.String())
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("platforms in the index (-want +got):\n%s", diff)
	}
	return imgs
}

// TestDockerfileAgrees builds the image as `make image` does, reads it back
// from the archive, and checks each platform's image against the
// Dockerfile's final stage: the config it sets, and the files it copies with
// the bytes of their sources.
func TestDockerfileAgrees(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseDockerfile(string(dockerfile), repoRoot)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}

	spec := IronLB()
	bin := fakeBinaries(t, spec)
	var buf bytes.Buffer
	if err := WriteArchive(&buf, buildIndex(t, spec, bin), name.MustParseReference("ghcr.io/ironlb/ironlb:test").(name.Tag)); err != nil {
		t.Fatal(err)
	}
	_, _, idx := readArchive(t, buf.Bytes())

	for _, p := range testPlatforms {
		t.Run(p.String(), func(t *testing.T) {
			img := platformImages(t, idx)[p.String()]
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != p.OS || cf.Architecture != p.Architecture {
				t.Errorf("config platform %s/%s, want %s", cf.OS, cf.Architecture, p)
			}
			if diff := cmp.Diff(st.config, cf.Config); diff != "" {
				t.Errorf("image config against the Dockerfile's final stage (-Dockerfile +make image):\n%s", diff)
			}

			want := map[string]file{}
			for dst, src := range st.files {
				switch {
				case src.stage == "build" && path.Dir(src.path) == "/out":
					// The build stage writes `make build`'s binaries to /out.
					want[dst] = file{mode: 0o755, data: string(fakeBinary(path.Base(src.path), p))}
				case src.stage == "":
					data, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(src.path)))
					if err != nil {
						t.Fatal(err)
					}
					want[dst] = file{mode: 0o644, data: string(data)}
				default:
					t.Fatalf("Dockerfile copies %s from stage %q: not modelled", src.path, src.stage)
				}
				// COPY makes the parent directories, owned by root.
				for d := path.Dir(dst); d != "."; d = path.Dir(d) {
					want[d] = file{mode: fs.ModeDir | 0o755}
				}
			}
			if diff := cmp.Diff(want, imageFiles(t, img), cmp.AllowUnexported(file{})); diff != "" {
				t.Errorf("image files against the Dockerfile's final stage (-Dockerfile +make image):\n%s", diff)
			}
		})
	}
}

// TestArchive checks what makes the archive importable by name: one
// index.json entry, the image index of both platforms, with the name
// annotations that ctr, Docker and Podman read.
func TestArchive(t *testing.T) {
	spec := IronLB()
	bin := fakeBinaries(t, spec)
	idx := buildIndex(t, spec, bin)
	var buf bytes.Buffer
	ref := name.MustParseReference("registry.example:5000/team/ironlb:v9.9.9").(name.Tag)
	if err := WriteArchive(&buf, idx, ref); err != nil {
		t.Fatal(err)
	}
	_, desc, got := readArchive(t, buf.Bytes())
	want := map[string]string{
		"io.containerd.image.name":          "registry.example:5000/team/ironlb:v9.9.9",
		"org.opencontainers.image.ref.name": "v9.9.9",
	}
	if diff := cmp.Diff(want, desc.Annotations); diff != "" {
		t.Errorf("index.json annotations (-want +got):\n%s", diff)
	}
	if desc.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index.json entry media type %s, want an OCI image index", desc.MediaType)
	}
	wantDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != wantDigest {
		t.Errorf("index.json names %s, want the index built, %s", desc.Digest, wantDigest)
	}
	platformImages(t, got)
	if slices.Contains(archiveNames(t, buf.Bytes()), "manifest.json") {
		t.Errorf("an archive of two platforms has Docker's manifest.json: the classic store would load both under one name")
	}

	// The same binaries give the same archive, byte for byte.
	var again bytes.Buffer
	if err := WriteArchive(&again, buildIndex(t, spec, bin), ref); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("two archives of the same binaries differ")
	}
}

// TestArchiveOnePlatform checks that an archive of one platform is also
// one in `docker save`'s format, as go-containerregistry's reader of that
// format (which reads manifest.json, as Docker's classic store does) sees it.
func TestArchiveOnePlatform(t *testing.T) {
	spec := IronLB()
	bin := fakeBinaries(t, spec)
	p := testPlatforms[0]
	img, err := Build(spec, p, BinDir(bin, p))
	if err != nil {
		t.Fatal(err)
	}
	ref := name.MustParseReference("ghcr.io/ironlb/ironlb:v9.9.9").(name.Tag)
	var buf bytes.Buffer
	if err := WriteArchive(&buf, Index([]v1.Platform{p}, []v1.Image{img}), ref); err != nil {
		t.Fatal(err)
	}
	_, _, idx := readArchive(t, buf.Bytes())
	if imgs := platformImages(t, idx, p); imgs[p.String()] == nil {
		t.Fatalf("no %s image in the OCI layout", p)
	}

	docker, err := tarball.Image(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, &ref)
	if err != nil {
		t.Fatalf("reading the archive as docker save's format: %v", err)
	}
	wantCfg, _ := img.RawConfigFile()
	gotCfg, err := docker.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wantCfg, gotCfg) {
		t.Errorf("manifest.json's config differs from the image's")
	}
	files := imageFiles(t, docker)
	for _, b := range spec.Binaries {
		if got, want := files[b].data, string(fakeBinary(b, p)); got != want {
			t.Errorf("/%s holds %q, want %q", b, got, want)
		}
	}
}

// archiveNames lists the names in a tar.
func archiveNames(t *testing.T, archive []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestBuildMissingBinary checks that a platform without its binaries is an
// error, not an image without them.
func TestBuildMissingBinary(t *testing.T) {
	spec := IronLB()
	bin := fakeBinaries(t, spec)
	p := testPlatforms[1]
	if err := os.Remove(filepath.Join(BinDir(bin, p), spec.Binaries[1])); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(spec, p, BinDir(bin, p)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Build without %s: %v, want fs.ErrNotExist", spec.Binaries[1], err)
	}
}

// TestPush pushes the index to go-containerregistry's in-memory registry on
// loopback, as `make release` pushes it, and pulls it back.
func TestPush(t *testing.T) {
	// An empty Docker config: the keychain finds no credentials and the
	// push is anonymous, whatever the machine's ~/.docker holds.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("registry at %s, want loopback", host)
	}

	spec := IronLB()
	bin := fakeBinaries(t, spec)
	idx := buildIndex(t, spec, bin)
	ref, err := name.ParseReference(host + "/you/ironlb:v0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Push(ctx, idx, ref, authn.DefaultKeychain); err != nil {
		t.Fatal(err)
	}

	pulled, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantDigest, _ := idx.Digest()
	if got, _ := pulled.Digest(); got != wantDigest {
		t.Errorf("pulled index %s, pushed %s", got, wantDigest)
	}
	imgs := platformImages(t, pulled)
	for _, p := range testPlatforms {
		files := imageFiles(t, imgs[p.String()])
		for _, b := range spec.Binaries {
			if got, want := files[b].data, string(fakeBinary(b, p)); got != want {
				t.Errorf("%s: /%s holds %q, want %q", p, b, got, want)
			}
		}
		cf, err := imgs[p.String()].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(spec.Config, cf.Config); diff != "" {
			t.Errorf("%s: pulled config (-want +got):\n%s", p, diff)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := ParsePlatforms("linux/amd64, linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testPlatforms, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "linux", " , "} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("ParsePlatforms(%q) = nil error", bad)
		}
	}
}
