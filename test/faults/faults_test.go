package faults

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/internal/labcluster"
)

func TestMain(m *testing.M) {
	// The suite's clients log nothing; without a logger controller-runtime
	// prints a warning with a stack trace after 30 s.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// TestFaults runs every scenario, shortened where the row allows it, on
// one three-node lab cluster, in the table's order, and holds each to the
// invariants for all the time it runs. A scenario that leaves the cluster
// unsettled stops the suite: the later ones would measure its mess.
func TestFaults(t *testing.T) {
	// The audit log is row 8's witness of who wrote what.
	runSuite(t, labcluster.Options{AuditLog: true}, Scenarios, (*Env).Setup, func(e *Env, ctx context.Context) error {
		_, err := e.Settled(ctx, settleTimeout)
		return err
	})
}

// TestFaultsBGP runs the BGP scenarios, shortened, on a three-node lab
// cluster of their own with the lab's router (SetupBGP), in the table's
// order. A scenario that leaves the routes unsettled stops the suite.
func TestFaultsBGP(t *testing.T) {
	runSuite(t, labcluster.Options{}, BGPScenarios, (*Env).SetupBGP, func(e *Env, ctx context.Context) error {
		return e.SettledBGP(ctx, settleTimeout)
	})
}

// runSuite starts a three-node lab cluster with opts, sets it up, and
// runs scenarios on it in order, shortened, holding each to its row's
// invariants; after each, settled must pass. IRONLB_BIN runs the suite
// against another build (an older one, to see a row fail where the fix is
// missing).
func runSuite(t *testing.T, opts labcluster.Options, scenarios []Scenario, setup, settled func(*Env, context.Context) error) {
	opts.Bin = os.Getenv("IRONLB_BIN")
	opts.SpeakerArgs = append(opts.SpeakerArgs, SpeakerArgs...)
	cl := labcluster.StartTest(t, 3, opts)
	e := &Env{C: cl, Short: true, Logf: t.Logf}
	ctx := t.Context()
	if err := setup(e, ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		ok := t.Run(s.Name, func(t *testing.T) {
			e.Logf = t.Logf
			start := time.Now()
			r := s.Run(ctx, e)
			t.Logf("row %d: %s", s.Row, r.Report)
			if err := r.Err(); err != nil {
				t.Error(err)
				for name, lines := range rowLogs(cl.Lab.Dir(), start) {
					t.Logf("%s during the row:\n%s", name, strings.Join(lines, "\n"))
				}
			}
		})
		if err := settled(e, ctx); err != nil {
			t.Fatalf("after %s (ok %v): %v", s.Name, ok, err)
		}
	}
}

// settleTimeout bounds the wait for the cluster to settle after a
// scenario.
const settleTimeout = 30 * time.Second
