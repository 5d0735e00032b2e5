package faults

import (
	"os"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
)

// TestFaults runs every scenario, shortened where the row allows it, on
// one three-node lab cluster, in the table's order, and holds each to the
// invariants for all the time it runs. A scenario that leaves the cluster
// unsettled stops the suite: the later ones would measure its mess.
func TestFaults(t *testing.T) {
	// IRONLB_BIN runs the suite against another build (an older one, to
	// see a row fail where the fix is missing).
	// The audit log is row 8's witness of who wrote what.
	cl := labcluster.StartTest(t, 3, labcluster.Options{Bin: os.Getenv("IRONLB_BIN"), AuditLog: true})
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
		if _, err := e.Settled(ctx, 30*time.Second); err != nil {
			t.Fatalf("after %s (ok %v): %v", s.Name, ok, err)
		}
	}
}
