package faults

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// TestFaults runs every scenario, shortened where the row allows it, on
// one three-node lab cluster, in the table's order, and holds each to the
// invariants for all the time it runs. A scenario that leaves the cluster
// unsettled stops the suite: the later ones would measure its mess.
func TestFaults(t *testing.T) {
	labnet.Require(t)
	// IRONLB_BIN runs the suite against another build (an older one, to
	// see a row fail where the fix is missing).
	cl, err := labcluster.Start(context.Background(), labcluster.Options{
		Lab: labnet.Options{Nodes: 3, Dir: t.ArtifactDir(), StopGrace: 5 * time.Second},
		Bin: os.Getenv("IRONLB_BIN"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			labnet.LogTails(t, cl.Lab.Dir())
		}
		if err := cl.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	e := &Env{C: cl, Short: true, Logf: t.Logf}
	ctx := t.Context()
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range Scenarios {
		ok := t.Run(s.Name, func(t *testing.T) {
			e.Logf = t.Logf
			r := s.Run(ctx, e)
			t.Logf("row %d: %s", s.Row, r.Report)
			if err := r.Err(); err != nil {
				t.Error(err)
			}
		})
		if err := e.Settled(ctx, 30*time.Second); err != nil {
			t.Fatalf("after %s (ok %v): %v", s.Name, ok, err)
		}
	}
}
