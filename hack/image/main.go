package main

import (
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const usage = `usage: image [flags] archive FILE   write the image as an OCI archive (make image)
       image [flags] push           push the image to -ref (make release)

Credentials for push come from ~/.docker/config.json ($DOCKER_CONFIG) and its
credential helpers, as docker login writes them.

flags:
`

func main() {
	bin := flag.String("bin", "bin", "directory whose OS_ARCH/ subdirectories hold each platform's binaries (make build-platforms)")
	platforms := flag.String("platforms", "linux/amd64 linux/arm64", "platforms of the image, separated by spaces or commas")
	ref := flag.String("ref", "ghcr.io/ironlb/ironlb:dev", "the image's name and tag: the push target, or the name an archive gives it")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *bin, *platforms, *ref, flag.Args())
	stop()
	if errors.Is(err, errUsage) {
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, bin, platformList, refStr string, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	ref, err := name.NewTag(refStr, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-ref: %w", err)
	}
	platforms, err := ParsePlatforms(platformList)
	if err != nil {
		return fmt.Errorf("-platforms: %w", err)
	}
	spec := IronLB()
	imgs := make([]v1.Image, len(platforms))
	for i, p := range platforms {
		dir := BinDir(bin, p)
		for _, b := range spec.Binaries {
			if err := checkBinary(filepath.Join(dir, b), p); err != nil {
				return err
			}
		}
		if imgs[i], err = Build(spec, p, dir); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	idx := Index(platforms, imgs)

	switch {
	case args[0] == "archive" && len(args) == 2:
		return writeArchiveFile(args[1], idx, ref)
	case args[0] == "push" && len(args) == 1:
		if err := Push(ctx, idx, ref, authn.DefaultKeychain); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s (%v)\n", ref, d, platforms)
		return nil
	}
	return errUsage
}

// writeArchiveFile writes the archive next to file and renames it into
// place, so that an interrupted build leaves no truncated archive.
func writeArchiveFile(file string, idx v1.ImageIndex, ref name.Tag) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := WriteArchive(f, idx, ref); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s@%s, %.1f MB\n", file, ref, d, float64(st.Size())/1e6)
	return nil
}

// elfMachines are the ELF machines of the architectures ironlb is built for.
var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"386":     elf.EM_386,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkBinary refuses a binary for another architecture than p's (the host's
// build where a cross-build was meant), and a dynamically linked one: the
// image has no C library.
func checkBinary(path string, p v1.Platform) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (make build-platforms writes it)", path, err)
	}
	defer f.Close()
	if want, ok := elfMachines[p.Architecture]; ok && f.Machine != want {
		return fmt.Errorf("%s: built for %v, not %s", path, f.Machine, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (build with CGO_ENABLED=0): the image has no C library", path)
		}
	}
	return nil
}
