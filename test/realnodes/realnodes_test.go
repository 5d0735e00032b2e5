package realnodes

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// images are built once per test run: the installed version and the
// upgrade.
var (
	imagesOnce     sync.Once
	imgOld, imgNew Image
	imagesErr      error
)

func buildImages(t *testing.T, root string) (Image, Image) {
	imagesOnce.Do(func() {
		dir, err := imageDir()
		if err != nil {
			imagesErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		if imgOld, imagesErr = BuildImage(ctx, root, dir, VersionOld); imagesErr != nil {
			return
		}
		imgNew, imagesErr = BuildImage(ctx, root, dir, VersionNew)
		t.Logf("timing: make image, two versions: %v", since(start))
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imgOld, imgNew
}

// TestTutorial runs the tutorial through real pods (Env.Run) once per
// install path, each on a fresh cluster.
func TestTutorial(t *testing.T) {
	labnet.Require(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if reason := Missing(root); reason != "" {
		labkube.SkipOrFail(t, "realnodes: "+reason)
	}
	for _, path := range []Path{Manifests, Helm} {
		t.Run(string(path), func(t *testing.T) {
			old, new := buildImages(t, root)
			ctx, cancel := context.WithTimeout(t.Context(), 7*time.Minute)
			defer cancel()
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			l := labnet.NewForTest(t, labnet.Options{Nodes: Nodes, Logger: log})
			start := time.Now()
			c, err := StartCluster(ctx, l, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("timing: cluster of %d real nodes %v", len(c.Nodes), since(start))
			e, err := NewEnv(c, root, t.TempDir(), t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Scenario(ctx, path, old, new)
			for _, f := range e.Figures {
				t.Logf("%s", f)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// imageDir is where the images are built, kept for the test binary's
// life and removed by TestMain.
func imageDir() (string, error) { return sharedDir, nil }
