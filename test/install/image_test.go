package install

import (
	"bufio"
	"bytes"
	"debug/elf"
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
// writes are static (the image is distroless/static: no libc).
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
