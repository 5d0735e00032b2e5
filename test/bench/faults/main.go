// Command faults runs the fault suite (test/faults) at full length in one
// lab cluster and prints, for each scenario, the longest gap the client's
// UDP probe saw and how long its addresses had no answering MAC and more
// than one, as `name value unit` lines (the worst over the scenario's
// addresses); whether each scenario held its invariants goes to stderr.
// The BGP scenarios (faults.BGPScenarios) run last, on the same cluster
// once the lab's router is added (faults.Env.SetupBGP), and print the
// time their addresses had no route at the router instead of MACs.
// Needs root (network namespaces) and `make build`:
//
//	make build && go run ./test/bench/faults
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/faults"
)

func main() {
	short := flag.Bool("short", false, "run the shortened scenarios, as make test does")
	only := flag.String("run", "", "run only the scenarios whose name contains this")
	open := flag.Bool("open", false, "run the open rows (faults.Open, which ironlb does not survive yet) instead")
	logs := flag.String("logs", "", "keep the lab's logs (every daemon's) in this directory")
	flag.Parse()
	scenarios, bgp := faults.Scenarios, faults.BGPScenarios
	if *open {
		scenarios, bgp = faults.Open, nil
	}
	if err := run(scenarios, bgp, *short, *only, *logs); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

func run(scenarios, bgp []faults.Scenario, short bool, only, logs string) error {
	ctx := context.Background()
	cl, err := labcluster.Start(ctx, labcluster.Options{
		Lab: labnet.Options{Nodes: 3, StopGrace: 5 * time.Second, Dir: logs},
		// The audit log is row 8's witness of who wrote what.
		AuditLog:    true,
		SpeakerArgs: faults.SpeakerArgs,
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "# "+format+"\n", args...) }
	e := &faults.Env{C: cl, Short: short, Logf: logf}
	if err := e.Setup(ctx); err != nil {
		return err
	}
	failed := 0
	settled := func() error { _, err := e.Settled(ctx, 30*time.Second); return err }
	bgpUp := false // the router is added before the first BGP scenario
	for i, s := range append(slices.Clone(scenarios), bgp...) {
		if only != "" && !strings.Contains(s.Name, only) {
			continue
		}
		if i >= len(scenarios) && !bgpUp {
			if err := e.SetupBGP(ctx); err != nil {
				return err
			}
			bgpUp = true
			settled = func() error { return e.SettledBGP(ctx, 30*time.Second) }
		}
		r := s.Run(ctx, e)
		for _, line := range r.Report.Figures(fmt.Sprintf("fault_row%d_%s", s.Row, s.Name)) {
			fmt.Println(line)
		}
		if err := r.Err(); err != nil {
			failed++
			logf("row %d %s broke its invariants: %v", s.Row, s.Name, err)
		} else {
			logf("row %d %s held its invariants: %s", s.Row, s.Name, r.Report)
		}
		if err := settled(); err != nil {
			return fmt.Errorf("after %s: %w", s.Name, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d scenarios broke their invariants", failed)
	}
	return nil
}
