// Command burst is the controller benchmark "time-to-IP" of
// design/PERFORMANCE.md: on one envtest control plane it creates a burst
// of LoadBalancer Services from 64 goroutines and measures how long each
// waits for an address, first with the no-logic reference allocator
// (test/bench/nologic), then with `ironlb controller`, each run as a
// subprocess measured the same way (CPU from /proc/PID/stat over the burst,
// peak RSS from VmHWM). It then restarts the controller and checks that no
// address moves.
//
// Latency (burst_*_p50, _p99, _max) is per Service, from its Create call
// returning to the benchmark's own watch seeing status.loadBalancer.ingress
// set; *_from_issue counts from the Create call being issued instead, so
// it includes the API server's creation time. It prints `name value unit`
// lines on stdout (medians with -runs > 1) and diagnostics on stderr:
//
//	make build && go run ./test/bench/burst -services 2000
//
// To see what holds the controller's memory, -heap-profile has it serve
// pprof on a loopback port and writes its heap profiles next to the logs
// (-log-dir), at the highest RSS of the burst and after it:
//
//	go run ./test/bench/burst -services 10000 -log-dir /tmp/b -heap-profile
//	go tool pprof -sample_index=inuse_space -top /tmp/b/bench-0-ironlb-burst-heap-end.pb.gz
//
// The diagnostics split each allocator's RSS at the end of the burst into
// anonymous memory (heap, stacks, runtime) and file pages (its binary),
// which no change to its data can shrink.
//
// Each Service creation costs the API server time that grows with the
// number of Services (its cluster-IP allocator lists every IPAddress to
// update a metric), so on a small machine creation, not allocation, sets
// the pace of a large burst.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/test/bench/benchbin"
)

// options are the benchmark's flags.
type options struct {
	Services int
	Runs     int
	Creators int
	Writers  int
	// QPS and Burst are the client-side API limits given to both
	// allocators alike.
	QPS     float64
	Burst   int
	Timeout time.Duration // for all of one burst's addresses to show
	Ironlb  string        // the ironlb binary
	// IronlbArgs are extra flags for `ironlb controller`, after the
	// benchmark's own, so they override them ("--workers=32").
	IronlbArgs string
	LogDir     string
	// HeapProfile has the controller serve pprof and the benchmark fetch
	// its heap profiles into LogDir (see heapProfiler).
	HeapProfile bool
}

// apiServerArgs tune the API server for a burst; both allocators run
// against the same settings. The service range must hold a cluster IP for
// every Service of a run (envtest's default is a /24).
func apiServerArgs() map[string]string {
	return map[string]string{
		"max-requests-inflight":          "800",
		"max-mutating-requests-inflight": "400",
		"service-cluster-ip-range":       "10.96.0.0/12",
	}
}

const (
	controllerNamespace = kube.DefaultNamespace
	poolPrefix          = "198.18.0.0/15" // RFC 2544 benchmarking addresses; never sent a packet
	readyTimeout        = 3 * time.Minute
	stopGrace           = 30 * time.Second
)

func main() {
	var o options
	// A flag set of our own: controller-runtime, imported through envtest,
	// registers -kubeconfig on the global one, and this program has none.
	fs := flag.NewFlagSet("burst", flag.ExitOnError)
	fs.IntVar(&o.Services, "services", 10000, "Services per burst")
	fs.IntVar(&o.Runs, "runs", 1, "runs; with more than one, each figure is the median")
	fs.IntVar(&o.Creators, "creators", 64, "goroutines creating Services")
	fs.IntVar(&o.Writers, "writers", 16, "status writers of the no-logic allocator")
	fs.Float64Var(&o.QPS, "kube-api-qps", 5000, "client-side API requests per second of both allocators")
	fs.IntVar(&o.Burst, "kube-api-burst", 10000, "client-side API burst of both allocators")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long a burst may take to get every address")
	fs.StringVar(&o.Ironlb, "ironlb", "", "ironlb binary (default bin/ironlb-controller in the repository, as the controller's Deployment runs it)")
	fs.StringVar(&o.IronlbArgs, "ironlb-args", "", "extra space-separated flags for `ironlb controller`, e.g. --workers=32 (keep --log-level at info or debug: readiness is its info line \"allocations restored\")")
	fs.StringVar(&o.LogDir, "log-dir", "", "where the allocators' logs go (default a new temporary directory)")
	fs.BoolVar(&o.HeapProfile, "heap-profile", false, "fetch ironlb's heap profiles into -log-dir: at the highest RSS of each burst and after it (adds a little CPU to ironlb's figures)")
	fs.Parse(os.Args[1:])
	if o.Services < 1 || o.Runs < 1 || o.Creators < 1 || o.Writers < 1 {
		fmt.Fprintln(os.Stderr, "burst: -services, -runs, -creators and -writers must be at least 1")
		os.Exit(2)
	}

	// envtest logs through controller-runtime's global logger and complains
	// with a stack trace when none is set; its messages are not needed here.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "burst:", err)
		os.Exit(1)
	}
}

// bench is one benchmark invocation: the control plane, a client of it and
// the two allocator binaries.
type bench struct {
	opts       options
	cs         kubernetes.Interface
	kubeconfig string
	nologic    string // the built no-logic allocator
	diag       io.Writer
}

func run(ctx context.Context, o options, out, diag io.Writer) error {
	root, err := apiservertest.RepoRoot()
	if err != nil {
		return err
	}
	if o.Ironlb == "" {
		o.Ironlb = filepath.Join(root, "bin", "ironlb-controller")
	}
	if err := benchbin.CheckFresh(ctx, o.Ironlb, root, diag); err != nil {
		return err
	}
	if o.LogDir == "" {
		if o.LogDir, err = os.MkdirTemp("", "ironlb-bench-*"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(diag, "# logs in %s\n", o.LogDir)

	binDir, err := os.MkdirTemp("", "ironlb-bench-bin-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	b := &bench{opts: o, diag: diag, nologic: filepath.Join(binDir, "nologic")}
	build := exec.CommandContext(ctx, "go", "build", "-o", b.nologic, "./test/bench/nologic")
	build.Dir, build.Stdout, build.Stderr = root, diag, diag
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the no-logic allocator: %w", err)
	}

	fmt.Fprintf(diag, "# starting etcd and kube-apiserver %v\n", apiServerArgs())
	env, err := apiservertest.Start(apiservertest.Options{Scheme: kubecr.Scheme(), APIServerArgs: apiServerArgs()})
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(diag, "# stop control plane:", err)
		}
	}()
	b.kubeconfig = env.Kubeconfig
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS = -1 // the benchmark's own client is not rate-limited
	if b.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pool := &v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{poolPrefix}},
	}
	if err := env.Client.Create(ctx, pool); err != nil {
		return fmt.Errorf("create ippool: %w", err)
	}
	if err := createNamespace(ctx, b.cs, controllerNamespace); err != nil {
		return err
	}

	rep := newReport()
	for r := range o.Runs {
		if o.Runs > 1 {
			fmt.Fprintf(diag, "# run %d of %d\n", r+1, o.Runs)
		}
		ms, err := b.runOnce(ctx, r)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		if o.Runs > 1 {
			for _, m := range ms {
				fmt.Fprintln(diag, "#   "+formatMetric(m))
			}
		}
		rep.add(ms...)
	}
	rep.print(out)
	return nil
}

// runOnce is one reference burst, one ironlb burst and one restart, each
// in a namespace of its own.
func (b *bench) runOnce(ctx context.Context, r int) ([]metric, error) {
	n := float64(b.opts.Services)
	ref, err := b.referenceBurst(ctx, fmt.Sprintf("bench-%d-nologic", r))
	if err != nil {
		return nil, fmt.Errorf("no-logic allocator: %w", err)
	}
	lb, rs, err := b.ironlbBurst(ctx, fmt.Sprintf("bench-%d-ironlb", r))
	if err != nil {
		return nil, fmt.Errorf("ironlb: %w", err)
	}
	ms := []metric{{"burst_services", n, "count"}}
	for _, x := range []struct {
		who string
		res burstResult
	}{{"nologic", ref}, {"ironlb", lb}} {
		p := "burst_" + x.who + "_"
		ms = append(ms,
			metric{p + "p50", seconds(percentile(x.res.Latency, 50)), "s"},
			metric{p + "p99", seconds(percentile(x.res.Latency, 99)), "s"},
			metric{p + "max", seconds(percentile(x.res.Latency, 100)), "s"},
			metric{p + "p50_from_issue", seconds(percentile(x.res.FromIssue, 50)), "s"},
			metric{p + "p99_from_issue", seconds(percentile(x.res.FromIssue, 99)), "s"},
			metric{p + "cpu", seconds(x.res.CPU), "s"},
			metric{p + "cpu_per_alloc", 1000 * seconds(x.res.CPU) / n, "ms"},
			metric{p + "peak_rss", mib(x.res.PeakRSS), "MiB"},
			metric{p + "create_rate", n / seconds(x.res.CreateSpan), "per_s"},
			metric{p + "create_p99", seconds(percentile(x.res.CreateLatency, 99)), "s"},
			metric{p + "api_writes", x.res.Writes / n, "per_svc"},
			metric{p + "duplicate_ips", float64(x.res.Duplicates), "count"},
		)
	}
	ms = append(ms,
		metric{"burst_p50_ratio", ratio(seconds(percentile(lb.Latency, 50)), seconds(percentile(ref.Latency, 50))), "x"},
		metric{"burst_p99_ratio", ratio(seconds(percentile(lb.Latency, 99)), seconds(percentile(ref.Latency, 99))), "x"},
		metric{"burst_cpu_ratio", ratio(seconds(lb.CPU), seconds(ref.CPU)), "x"},
		metric{"burst_rss_ratio", ratio(float64(lb.PeakRSS), float64(ref.PeakRSS)), "x"},
	)
	return append(ms, rs...), nil
}

// referenceBurst runs the burst against the no-logic allocator, then
// stops it and deletes the Services.
func (b *bench) referenceBurst(ctx context.Context, ns string) (burstResult, error) {
	var res burstResult
	if err := createNamespace(ctx, b.cs, ns); err != nil {
		return res, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := watchIngress(wctx, b.cs, ns)
	if err != nil {
		return res, err
	}
	p, err := b.startNologic(ns)
	if err != nil {
		return res, err
	}
	defer p.stop(stopGrace)
	if err := p.waitReady(ctx.Done(), readyTimeout); err != nil {
		return res, err
	}
	if res, err = b.burst(ctx, p, ns, w); err != nil {
		return res, err
	}
	b.describe(p, res)
	if err := p.stop(stopGrace); err != nil {
		fmt.Fprintf(b.diag, "# nologic: %v\n", err)
	}
	return res, deleteServices(ctx, b.cs, ns)
}

// ironlbBurst runs the burst against `ironlb controller`, then the restart
// check, then deletes the Services.
func (b *bench) ironlbBurst(ctx context.Context, ns string) (burstResult, []metric, error) {
	var res burstResult
	if err := createNamespace(ctx, b.cs, ns); err != nil {
		return res, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := watchIngress(wctx, b.cs, ns)
	if err != nil {
		return res, nil, err
	}
	p, err := b.startIronlb(ns + "-burst")
	if err != nil {
		return res, nil, err
	}
	defer p.stop(stopGrace)
	if err := p.waitReady(ctx.Done(), readyTimeout); err != nil {
		return res, nil, err
	}
	var prof *heapProfiler
	if p.opts.PprofAddr != "" {
		prof = startHeapProfiler(p, p.opts.PprofAddr, filepath.Join(b.opts.LogDir, ns+"-burst"), b.diag)
	}
	res, err = b.burst(ctx, p, ns, w)
	if prof != nil {
		prof.Stop()
	}
	if err != nil {
		return res, nil, err
	}
	b.describe(p, res)
	rs, err := b.restart(ctx, p, ns, w)
	if err != nil {
		return res, nil, fmt.Errorf("restart: %w", err)
	}
	return res, rs, deleteServices(ctx, b.cs, ns)
}

func (b *bench) startNologic(ns string) (*proc, error) {
	return startProc(procOptions{
		Name: "nologic",
		Path: b.nologic,
		Args: []string{"--kubeconfig", b.kubeconfig, "--writers", fmt.Sprint(b.opts.Writers), "--prefix", poolPrefix,
			"--kube-api-qps", fmt.Sprint(b.opts.QPS), "--kube-api-burst", fmt.Sprint(b.opts.Burst)},
		Log:         filepath.Join(b.opts.LogDir, ns+".log"),
		ReadyMarker: "msg=ready",
	})
}

// startIronlb starts the controller with its log in logName.log.
// With -heap-profile it also serves pprof on a free loopback port.
func (b *bench) startIronlb(logName string) (*proc, error) {
	args := []string{"controller", "--kubeconfig", b.kubeconfig, "--namespace", controllerNamespace,
		"--leader-elect=false", "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--kube-api-qps", fmt.Sprint(b.opts.QPS), "--kube-api-burst", fmt.Sprint(b.opts.Burst), "--log-level", "info"}
	var pprofAddr string
	if b.opts.HeapProfile {
		var err error
		if pprofAddr, err = freeLocalAddr(); err != nil {
			return nil, fmt.Errorf("pprof address: %w", err)
		}
		args = append(args, "--pprof-bind-address", pprofAddr)
	}
	return startProc(procOptions{
		Name:        "ironlb",
		Path:        b.opts.Ironlb,
		Args:        append(args, strings.Fields(b.opts.IronlbArgs)...),
		Log:         filepath.Join(b.opts.LogDir, logName+".log"),
		ReadyMarker: `msg="allocations restored"`,
		PprofAddr:   pprofAddr,
	})
}

// describe prints what the figures do not show: where the API requests
// went and what the allocator complained about.
func (b *bench) describe(p *proc, res burstResult) {
	fmt.Fprintf(b.diag, "# %s: %d Services, %d update events seen, %d Events recorded, %d create retries, %d addresses seen before Create returned\n",
		p.opts.Name, len(res.Latency), res.Updates, res.Events, res.Retries, res.Early)
	fmt.Fprintf(b.diag, "# %s: burst took %v; CPU in that span: %s %v, kube-apiserver %v, etcd %v, benchmark %v\n",
		p.opts.Name, res.Wall.Round(time.Millisecond), p.opts.Name, res.CPU, res.OtherCPU["kube-apiserver"], res.OtherCPU["etcd"], res.OtherCPU["benchmark"])
	fmt.Fprintf(b.diag, "# %s: peak RSS %.1f MiB; at the end %.1f MiB anonymous (heap, stacks, runtime) + %.1f MiB file (the binary)\n",
		p.opts.Name, mib(res.PeakRSS), mib(res.RSSAnon), mib(res.RSSFile))
	fmt.Fprintf(b.diag, "# %s: API requests during the burst (the benchmark's included):\n", p.opts.Name)
	for i, d := range res.Requests {
		if i == 10 || d.N < 10 {
			break
		}
		fmt.Fprintf(b.diag, "#   %8.0f %s\n", d.N, d.Key)
	}
	if n, first := p.logProblems(); n > 0 {
		fmt.Fprintf(b.diag, "# %s: %d WARN/ERROR log lines, first:\n#   %s\n", p.opts.Name, n, strings.Join(first, "\n#   "))
	}
}
