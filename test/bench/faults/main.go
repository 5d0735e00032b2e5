// Command faults runs the fault suite (test/faults) at full length in one
// lab cluster and prints, for each scenario, the longest gap the client's
// UDP probe saw and how long its addresses had no answering MAC and more
// than one, as `name value unit` lines (the worst over the scenario's
// addresses); whether each scenario held its invariants goes to stderr.
// Needs root (network namespaces) and `make build`:
//
//	make build && go run ./test/bench/faults
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
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
	flag.Parse()
	scenarios := faults.Scenarios
	if *open {
		scenarios = faults.Open
	}
	if err := run(scenarios, *short, *only); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

func run(scenarios []faults.Scenario, short bool, only string) error {
	ctx := context.Background()
	cl, err := labcluster.Start(ctx, labcluster.Options{
		Lab: labnet.Options{Nodes: 3, StopGrace: 5 * time.Second},
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
	for _, s := range scenarios {
		if only != "" && !strings.Contains(s.Name, only) {
			continue
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
		if _, err := e.Settled(ctx, 30*time.Second); err != nil {
			return fmt.Errorf("after %s: %w", s.Name, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d scenarios broke their invariants", failed)
	}
	return nil
}
