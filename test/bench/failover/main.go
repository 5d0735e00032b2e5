// Command failover is the Layer 2 benchmark of issue 4, measured from the
// client's point of view (design/PERFORMANCE.md, design/LAB.md). It starts
// one lab cluster (internal/labcluster: a real control plane, `ironlb
// controller` and an `ironlb speaker` per node, the service addresses on
// every node's lo as IPVS kube-proxy with strictARP holds them) and
// measures three things:
//
//   - failover: the longest silence a UDP probe every 10 ms to a service
//     address sees when its owner dies (speaker SIGKILLed and link cut at
//     once: "unplanned") and when its owner's speaker is stopped (SIGTERM,
//     link cut 2 s later: "planned"), each -runs times; probes lost in the
//     planned case; and, once the old owner is back, how many MACs answer
//     ARP for the address (one, or clients flip between nodes);
//   - arp: how long the speaker takes to answer an ARP request for a
//     service address, next to the owner's kernel answering for the node's
//     own address on the same veth, timed from the client with raw ARP
//     requests (the speaker is a separate process here, so the figure
//     includes its wake-up);
//   - scale: the speakers' peak RSS and CPU time with -services IPv6
//     LoadBalancer Services announced, and how long it took until every
//     one of them was.
//
// Each figure is printed on stdout as a `name value unit` line next to the
// reference and target it is read against; progress and per-run details
// go to stderr as `#` lines. Needs root (network namespaces) and `make
// build`:
//
//	make build && go run ./test/bench/failover -runs 10
//
// The lab, with every process it started, is removed when the program
// ends, fails or is interrupted (the lab's own SIGINT/SIGTERM handler);
// -log-dir keeps the processes' logs (the speakers log at debug level).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchstat"
)

// The parts of the benchmark, as -skip names them.
const (
	partUnplanned = "unplanned"
	partPlanned   = "planned"
	partARP       = "arp"
	partScale     = "scale"
)

var parts = []string{partUnplanned, partPlanned, partARP, partScale}

// options are the benchmark's flags.
type options struct {
	Runs       int
	Nodes      int
	Services   int
	ARPSamples int
	LogDir     string
	Skip       map[string]bool
}

func main() {
	var o options
	var skip string
	fs := flag.NewFlagSet("failover", flag.ExitOnError)
	fs.IntVar(&o.Runs, "runs", 10, "failovers of each kind (unplanned, planned)")
	fs.IntVar(&o.Nodes, "nodes", 3, "nodes in the lab, each running a speaker")
	fs.IntVar(&o.Services, "services", 1000, "IPv6 LoadBalancer Services announced for the RSS and CPU figures")
	fs.IntVar(&o.ARPSamples, "arp-samples", 2000, "ARP requests for each of the service address and the node's own")
	fs.StringVar(&o.LogDir, "log-dir", "", "keep the lab's logs here (default: a temporary directory removed at the end)")
	fs.StringVar(&skip, "skip", "", "comma-separated parts to skip: "+strings.Join(parts, ", "))
	fs.Parse(os.Args[1:])
	o.Skip = map[string]bool{}
	for _, p := range strings.Split(skip, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(parts, p) {
			fmt.Fprintf(os.Stderr, "failover: -skip %q: unknown part; the parts are %s\n", p, strings.Join(parts, ", "))
			os.Exit(2)
		}
		o.Skip[p] = true
	}
	if o.Runs < 1 || o.Nodes < 2 || o.Services < 1 || o.ARPSamples < 1 {
		fmt.Fprintln(os.Stderr, "failover: -runs, -services and -arp-samples must be at least 1, -nodes at least 2 (a failover needs somewhere to go)")
		os.Exit(2)
	}
	// controller-runtime's client logs through its global logger and
	// complains with a stack trace when none is set; nothing it says is
	// needed here.
	ctrllog.SetLogger(logr.Discard())
	// The lab closes itself on SIGINT and SIGTERM (labnet.Options'
	// NoSignalHandler is left false) and then re-raises the signal; this
	// only keeps the benchmark from reporting what that does to a run in
	// progress as a failure of its own.
	var interrupted atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		interrupted.Store(true)
	}()
	if err := run(context.Background(), o, os.Stdout, os.Stderr, interrupted.Load); err != nil {
		if interrupted.Load() {
			fmt.Fprintln(os.Stderr, "failover: interrupted; the lab is removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// bench is one benchmark invocation on one lab cluster.
type bench struct {
	opts options
	cl   *labcluster.Cluster
	out  io.Writer // `name value unit` lines
	diag io.Writer // `#` lines
}

// Addresses. Only 198.51.100.0/24 and 2001:db8::/32 carry packets in the
// lab, whose hosts use .2, .11-.1N and .100 (and the same numbers in
// 2001:db8:1::/64); the pools stay clear of them.
const (
	benchNamespace = "bench"
	scaleNamespace = "scale"
	failoverName   = "failover"
	legacyConfig   = `address-pools:
- name: failover
  protocol: layer2
  addresses:
  - 198.51.100.200-198.51.100.209
- name: scale
  protocol: layer2
  auto-assign: false
  addresses:
  - 2001:db8:1::1:0/112
`
	scalePool = "scale"
)

// run runs the benchmark; interrupted reports whether a signal has come.
func run(ctx context.Context, o options, out, diag io.Writer, interrupted func() bool) (err error) {
	fmt.Fprintf(diag, "# starting a lab of %d nodes, its control plane, the controller and %d speakers\n", o.Nodes, o.Nodes)
	start := time.Now()
	cl, err := labcluster.Start(ctx, labcluster.Options{Lab: labnet.Options{
		Nodes: o.Nodes,
		Dir:   o.LogDir,
		// A stopping speaker leaves, keeps answering for its handover
		// grace (1 s) and exits; give it room on a busy machine.
		StopGrace: 10 * time.Second,
		Logger:    slog.New(slog.NewTextHandler(diag, &slog.HandlerOptions{Level: slog.LevelWarn})),
	},
		// The planned runs measure the handover, SIGTERM then the link
		// cut: a node going away. With a restart hold the address would
		// stay on the node for its next speaker, and move only once the
		// others find the node down (test/e2e RestartNodeDies).
		SpeakerArgs: []string{"--restart-hold=0"},
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !interrupted() {
			logTails(diag, cl.Lab.Dir())
			if o.LogDir == "" {
				fmt.Fprintln(diag, "# the lab's logs go with it; rerun with -log-dir to keep them")
			}
		}
		if cerr := cl.Close(); cerr != nil {
			fmt.Fprintln(diag, "# closing the lab:", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	fmt.Fprintf(diag, "# lab %s ready after %s; logs in %s\n", cl.Lab.Suffix(), time.Since(start).Round(time.Millisecond), cl.Lab.Dir())
	b := &bench{opts: o, cl: cl, out: out, diag: diag}
	if err := b.setUp(ctx); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if !o.Skip[partUnplanned] || !o.Skip[partPlanned] {
		if err := b.failover(ctx); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
	}
	if !o.Skip[partARP] {
		if err := b.arp(ctx); err != nil {
			return fmt.Errorf("arp: %w", err)
		}
	}
	if !o.Skip[partScale] {
		if err := b.scale(ctx); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	return nil
}

// setUp applies the legacy ConfigMap and creates the failover Service,
// with backends on every node, and waits until exactly one MAC answers
// for its address.
func (b *bench) setUp(ctx context.Context) error {
	c := b.cl.Client
	for _, ns := range []string{benchNamespace, scaleNamespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: labnet.SystemNamespace, Name: "config"},
		Data:       map[string]string{"config": legacyConfig},
	}
	if err := c.Create(ctx, cm); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: failoverName},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(bool),
			LoadBalancerIP:                failoverIP.String(),
			Selector:                      map[string]string{"app": failoverName},
			Ports: []corev1.ServicePort{
				{Name: "udp", Port: labcluster.UDPPort, Protocol: corev1.ProtocolUDP},
				{Name: "http", Port: labcluster.HTTPPort, Protocol: corev1.ProtocolTCP},
			},
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		return err
	}
	if err := b.cl.Backends(ctx, failoverIP); err != nil {
		return err
	}
	owner, err := b.owner(ctx)
	if err != nil {
		return err
	}
	if _, err := b.waitOneMAC(ctx, 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(b.diag, "# %s/%s has %s, announced by %s\n", benchNamespace, failoverName, failoverIP, owner)
	return nil
}

// print writes figures to stdout.
func (b *bench) print(ms ...benchstat.Metric) {
	for _, m := range ms {
		fmt.Fprintln(b.out, m)
	}
}

// logTails prints the last lines of ironlb's logs in dir (the controller's
// and the speakers'), for a run that failed.
func logTails(w io.Writer, dir string) {
	const lines = 15
	logs, _ := filepath.Glob(filepath.Join(dir, "*-ironlb-*.log"))
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		fmt.Fprintf(w, "# last lines of %s:\n", path)
		for _, l := range all[max(0, len(all)-lines):] {
			fmt.Fprintln(w, "#   "+l)
		}
	}
}
