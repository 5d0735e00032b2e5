// Command realnodes runs the real-node scenario (test/realnodes) once per
// install path, dist/ironlb.yaml and the Helm chart, each on a fresh lab
// cluster of real nodes, and prints its figures as `name value unit`
// lines: the time from apply to every ironlb pod Ready, from the
// tutorial's `kubectl edit svc` to the first HTTP answer at the LAN
// client, the failover gap when the announcing node dies, the probes lost
// during the upgrade in place, and each component's memory as the
// kubelets report it. Progress goes to stderr. Needs root, `make tools
// build`, and Debian's containerd, runc and containernetworking-plugins:
//
//	make tools build && go run ./test/bench/realnodes
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/realnodes"
)

func main() {
	only := flag.String("path", "", "run only this install path (manifests or helm)")
	logs := flag.String("logs", "", "keep the labs' logs (every daemon's) in this directory")
	flag.Parse()
	if err := run(realnodes.Path(*only), *logs); err != nil {
		fmt.Fprintln(os.Stderr, "realnodes:", err)
		os.Exit(1)
	}
}

func run(only realnodes.Path, logs string) error {
	root, err := realnodes.RepoRoot()
	if err != nil {
		return err
	}
	if reason := realnodes.Missing(root); reason != "" {
		return fmt.Errorf("cannot run: %s", reason)
	}
	dir, err := os.MkdirTemp("", "ironlb-bench-realnodes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "# "+format+"\n", args...) }
	old, err := realnodes.BuildImage(ctx, root, dir, realnodes.VersionOld)
	if err != nil {
		return err
	}
	new, err := realnodes.BuildImage(ctx, root, dir, realnodes.VersionNew)
	if err != nil {
		return err
	}
	for _, path := range []realnodes.Path{realnodes.Manifests, realnodes.Helm} {
		if only != "" && path != only {
			continue
		}
		if err := runPath(ctx, path, root, dir, logs, logf, old, new); err != nil {
			return err
		}
	}
	return nil
}

// runPath runs the scenario by path in a lab of its own and prints its
// figures.
func runPath(ctx context.Context, path realnodes.Path, root, dir, logs string, logf func(string, ...any), old, new realnodes.Image) error {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	labDir := logs
	if labDir != "" {
		labDir = labDir + "/" + string(path)
	}
	l, err := labnet.New(labnet.Options{Nodes: realnodes.Nodes, Logger: log, Dir: labDir})
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := realnodes.StartCluster(ctx, l, log)
	if err != nil {
		return err
	}
	e, err := realnodes.NewEnv(c, root, dir+"/"+string(path), logf)
	if err != nil {
		return err
	}
	err = e.Scenario(ctx, path, old, new)
	for _, f := range e.Figures {
		fmt.Println(f)
	}
	return err
}
