package install

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// imageFiles are the files the Dockerfile's final stage copies to the
// image's root, from its COPY --from=build lines.
func imageFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	final := false
	sc := bufio.NewScanner(bytes.NewReader(read(t, "Dockerfile")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "FROM":
			final = !slices.Contains(f, "AS") && !slices.Contains(f, "as")
		case final && f[0] == "COPY" && len(f) > 3 && f[1] == "--from=build" && f[len(f)-1] == "/":
			for _, src := range f[2 : len(f)-1] {
				files = append(files, "/"+src[strings.LastIndex(src, "/")+1:])
			}
		}
	}
	return files
}

var commandLine = regexp.MustCompile(`(?m)^\s+command:\n\s+- (\S+)$`)

// TestImageHoldsWhatManifestsRun: every command dist/ironlb.yaml runs is
// a file the Dockerfile puts in the image, and the binaries `make build`
// writes are static (the image is FROM scratch: no libc).
func TestImageHoldsWhatManifestsRun(t *testing.T) {
	files := imageFiles(t)
	if len(files) == 0 {
		t.Fatal("found no COPY --from=build ... / in the Dockerfile's final stage")
	}
	ms := commandLine.FindAllStringSubmatch(string(read(t, "dist", "ironlb.yaml")), -1)
	if len(ms) != 2 {
		t.Fatalf("dist/ironlb.yaml has %d commands, want 2 (controller and speaker)", len(ms))
	}
	for _, m := range ms {
		if !slices.Contains(files, m[1]) {
			t.Errorf("dist/ironlb.yaml runs %s, which the Dockerfile does not put in the image (it has %v)", m[1], files)
		}
	}
	for _, tags := range [][]string{nil, {"ironlb_controller"}} {
		f, err := elf.Open(buildIronlb(t, "ironlb", tags...))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("ironlb built with tags %v is dynamically linked; the image has no libc", tags)
			}
		}
		f.Close()
	}
}

// TestImageBuildsForArm64: the Dockerfile cross-compiles for each target
// platform with CGO_ENABLED=0 (no emulation), so a multi-arch image needs
// every binary to build for arm64 that way; the result must be an arm64
// static executable.
func TestImageBuildsForArm64(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles everything for arm64")
	}
	dir := t.TempDir()
	// ironlb-controller is ironlb less the speaker: no build of its own.
	builds := []struct {
		name, tags, pkg string
	}{
		{"ironlb", "", "./cmd/ironlb"},
		{"ironlbctl", "", "./cmd/ironlbctl"},
	}
	for _, b := range builds {
		out := filepath.Join(dir, b.name)
		cmd := exec.Command("go", "build", "-trimpath", "-tags", b.tags, "-ldflags", "-s -w", "-o", out, b.pkg)
		cmd.Dir = repo(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GOARCH=arm64 go build %s (%s): %v\n%s", b.pkg, b.tags, err, msg)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: machine %v, want arm64", b.name, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s for arm64 is dynamically linked", b.name)
			}
		}
		f.Close()
	}
}
