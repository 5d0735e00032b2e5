// Command manynodes is issue 17's "many nodes" lab benchmark: a cluster
// of -nodes speakers (default 100, each in its own network namespace) and
// -services Layer 2 addresses (default 1,000), measured at rest and
// through unplanned failovers.
//
// It starts one lab cluster (internal/labcluster: a real control plane,
// `ironlb controller` and an `ironlb speaker` per node, with
// --rebalance-interval=0 so that no planned move disturbs the figures),
// applies an IPv6 Layer 2 pool (2001:db8:1::1:0/112, on the lab's LAN) and
// creates the LoadBalancer Services, and waits until a node announces
// every address (the ServiceAnnouncements, listed every second). The
// speakers only announce: no backend holds the addresses, except the few
// each failover probes. Then:
//
//   - at rest: after -settle, over a -rest window, each speaker's CPU (ms
//     of CPU per second, from /proc) and resident memory, and each node's
//     gossip traffic: packets and bytes sent and received on the
//     memberlist port (UDP and TCP: probes, gossip, push/pull and the
//     heartbeats, which are memberlist messages), counted by nftables
//     counters in the node's own namespace, so exactly that node's traffic
//     (bytes are IP packets, headers included). Each as the median and the
//     maximum over the nodes;
//   - failover, -runs times: a node that announces addresses is picked
//     (a different one each run), up to -probes of its addresses get a UDP
//     echo backend on every node's lo, as IPVS kube-proxy with strictARP
//     holds them, and the client probes each every 10 ms; then the node's
//     speaker is SIGKILLed and its link cut at once. The figures are the
//     longest silence per probed address (p50, p99, max over every address
//     of every run), and, per run, how long until every one of the node's
//     addresses was answered by another node: the client sends Neighbor
//     Solicitations for each of them until another node's MAC answers
//     (to within ndpWindow). The node then comes back (link up, a new
//     speaker), and the next run waits until every other speaker has seen
//     it join and the announcements have settled.
//
// Figures go to stdout as `name value unit` lines, the run's settings
// among them; progress and per-run details go to stderr as `#` lines.
// Needs root and `make build`:
//
//	make build && go run ./test/bench/manynodes -nodes 100 -services 1000 -runs 10
//
// The lab, with every process it started, is removed when the program
// ends, fails or is interrupted; -log-dir keeps the processes' logs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchstat"
)

// options are the benchmark's flags.
type options struct {
	Nodes, Services, Runs int
	// Probes is the most addresses of the failed node probed with UDP in
	// one run.
	Probes int
	// Settle is the wait between the last address announced and the rest
	// window; Rest the window's length.
	Settle, Rest time.Duration
	// SpeakerLogLevel is the speakers' --log-level: info, their default,
	// so that the figures are a deployment's, not debug logging's.
	SpeakerLogLevel string
	// SpeakerArgs are added to every speaker's flags.
	SpeakerArgs []string
	LogDir      string
}

func main() {
	var o options
	fs := flag.NewFlagSet("manynodes", flag.ExitOnError)
	fs.IntVar(&o.Nodes, "nodes", 100, fmt.Sprintf("nodes in the lab, each running a speaker (2 to %d)", labnet.MaxNodes))
	fs.IntVar(&o.Services, "services", 1000, "IPv6 Layer 2 LoadBalancer Services (one address each)")
	fs.IntVar(&o.Runs, "runs", 10, "unplanned failovers (speaker SIGKILLed and link cut)")
	fs.IntVar(&o.Probes, "probes", 3, "most of the failed node's addresses probed with UDP every 10 ms in a run")
	fs.DurationVar(&o.Settle, "settle", 15*time.Second, "wait after every address is announced before the rest window")
	fs.DurationVar(&o.Rest, "rest", 30*time.Second, "the window over which CPU and gossip traffic at rest are measured")
	fs.StringVar(&o.SpeakerLogLevel, "speaker-log-level", "info", "the speakers' --log-level")
	fs.Func("speaker-arg", "a flag added to every speaker's (repeatable), e.g. --pprof-bind-address=127.0.0.1:7476", func(s string) error {
		o.SpeakerArgs = append(o.SpeakerArgs, s)
		return nil
	})
	fs.StringVar(&o.LogDir, "log-dir", "", "keep the lab's logs here (default: a temporary directory removed at the end)")
	fs.Parse(os.Args[1:])
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "manynodes:", err)
		os.Exit(2)
	}
	// controller-runtime's client logs through its global logger and
	// complains with a stack trace when none is set.
	ctrllog.SetLogger(logr.Discard())
	// The lab removes itself on SIGINT and SIGTERM too.
	if _, err := run(context.Background(), o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "manynodes:", err)
		os.Exit(1)
	}
}

func (o options) check() error {
	switch {
	case o.Nodes < 2 || o.Nodes > labnet.MaxNodes:
		return fmt.Errorf("-nodes %d: want 2 to %d (a failover needs somewhere to go)", o.Nodes, labnet.MaxNodes)
	case o.Services < 1 || o.Runs < 0 || o.Probes < 1:
		return fmt.Errorf("-services and -probes must be at least 1, -runs at least 0")
	case o.Rest < time.Second:
		return fmt.Errorf("-rest %s: want at least a second", o.Rest)
	}
	return nil
}

// gossipPort is the memberlist port the speakers bind (their
// --memberlist-bind is left at its default).
const gossipPort = election.DefaultPort

// bench is one benchmark invocation on one lab cluster.
type bench struct {
	opts options
	cl   *labcluster.Cluster
	out  io.Writer // `name value unit` lines
	diag io.Writer // `#` lines
}

// result is what a run measured, for TestLab.
type result struct {
	Rest rest
	Runs []failoverRun
}

// run runs the benchmark.
func run(ctx context.Context, o options, out, diag io.Writer) (res result, err error) {
	fmt.Fprintf(diag, "# starting a lab of %d nodes, its control plane, the controller and %d speakers\n", o.Nodes, o.Nodes)
	start := time.Now()
	cl, err := labcluster.Start(ctx, labcluster.Options{
		Lab: labnet.Options{
			Nodes: o.Nodes,
			Dir:   o.LogDir,
			// A speaker stopping at the end leaves, answers for its
			// handover grace and exits; give a hundred of them room on
			// a busy machine.
			StopGrace: 15 * time.Second,
			Logger:    slog.New(slog.NewTextHandler(diag, &slog.HandlerOptions{Level: slog.LevelInfo})),
		},
		// No rebalancing: a planned move would disturb the figures at
		// rest and the failovers, which measure the unplanned kind.
		SpeakerArgs: append([]string{"--rebalance-interval=0", "--log-level=" + o.SpeakerLogLevel}, o.SpeakerArgs...),
	})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := cl.Close(); cerr != nil {
			fmt.Fprintln(diag, "# closing the lab:", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	fmt.Fprintf(diag, "# lab %s ready after %.1f s; logs in %s\n", cl.Lab.Suffix(), time.Since(start).Seconds(), cl.Lab.Dir())
	b := &bench{opts: o, cl: cl, out: out, diag: diag}
	b.print(settingFigures(o)...)

	announced, err := b.setUp(ctx)
	if err != nil {
		return res, fmt.Errorf("set up: %w", err)
	}
	b.print(benchstat.Metric{Name: "manynodes_all_announced", Value: announced.Seconds(), Unit: "s"})
	if res.Rest, err = b.atRest(ctx); err != nil {
		return res, fmt.Errorf("at rest: %w", err)
	}
	b.print(restFigures(res.Rest)...)
	if o.Runs > 0 {
		if res.Runs, err = b.failovers(ctx); err != nil {
			return res, fmt.Errorf("failover: %w", err)
		}
		b.print(failoverFigures(res.Runs)...)
	}
	fmt.Fprintf(diag, "# done after %.1f s\n", time.Since(start).Seconds())
	return res, nil
}

// print writes figures to stdout.
func (b *bench) print(ms ...benchstat.Metric) {
	for _, m := range ms {
		fmt.Fprintln(b.out, m)
	}
}
