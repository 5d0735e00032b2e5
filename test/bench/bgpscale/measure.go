package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchstat"
	"github.com/ironlb/ironlb/test/bench/procusage"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Polling periods and limits of a run.
const (
	convergePoll = 100 * time.Millisecond
	withdrawPoll = 20 * time.Millisecond
	// withdrawTimeout bounds the wait for the dead node's paths to go;
	// BFD should take 0.9 s, the hold time (BIRD's 240 s, FRR's 180 s)
	// much longer.
	withdrawTimeout = 60 * time.Second
	// quiet is the CPU a speaker may use per second and still count as
	// done with the trailing work of convergence.
	quiet      = 20 * time.Millisecond
	quietLimit = 30 * time.Second
)

// runResult is what one run measured.
type runResult struct {
	// Converge is from the speakers' start to the router holding every
	// prefix with a path from each node; NodeDone the same for each
	// node's own paths, and Established when each node's session came
	// up (from the router's session times), by node name. FirstRoute is
	// when the router had its first path.
	Converge, FirstRoute  time.Duration
	NodeDone, Established map[string]time.Duration
	// Ups is how often each node's session had come up at convergence,
	// from routers that count (FRR).
	Ups map[string]int
	// Usage is each speaker's after convergence and the quiet that
	// follows it; AtConverge its usage at convergence.
	Usage, AtConverge map[string]procusage.Usage
	// Withdraw is from the node's loss to the router holding every prefix
	// with the survivors' paths only; FirstWithdrawn is when the first
	// of the dead node's paths went.
	Withdraw, FirstWithdrawn time.Duration
	Dead                     string
	// Quiet is how long after convergence the speakers went quiet.
	Quiet time.Duration
	// OthersCPU is the CPU the other processes on the machine's CPUs
	// used from the speakers' start to convergence, by name.
	OthersCPU map[string]time.Duration
}

// others are the processes besides the speakers that share the CPUs
// while the speakers converge.
func (b *bench) others(router []watched) []watched {
	cp := b.cl.CP
	return append(router, []watched{
		{"kube-apiserver", "kube-apiserver", cp.APIServer},
		{"etcd", "etcd", cp.Etcd},
		{"controller", b.comm(), b.cl.Controller},
		{"benchmark", "", nil},
	}...)
}

// othersUsage reads the CPU time of each of ws; a nil process is this
// one.
func othersUsage(ws []watched) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, w := range ws {
		var u procusage.Usage
		var err error
		if w.proc == nil {
			u, err = procusage.Read("self")
		} else {
			u, err = procusage.Of(w.proc, w.comm)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.name, err)
		}
		out[w.name] = u.CPU
	}
	return out, nil
}

// othersCPU is the CPU each of ws used since before; nil if it cannot
// be read.
func othersCPU(ws []watched, before map[string]time.Duration) map[string]time.Duration {
	now, err := othersUsage(ws)
	if err != nil {
		return nil
	}
	for name := range now {
		now[name] -= before[name]
	}
	return now
}

// runOnce starts the router's daemon afresh, starts the speakers and
// times convergence, reads the speakers' peak RSS, kills a node and times
// the withdrawal; then it stops the speakers and the daemon and brings the
// node back, for the next run.
func (b *bench) runOnce(ctx context.Context, run int) (res runResult, err error) {
	nodes := b.cl.Lab.Nodes()
	rc := labnet.RouterConfig{ASN: routerASN, NoKernel: !b.opts.Kernel, Debug: b.opts.RouterDebug,
		BFD: labnet.RouterBFD{Interval: bfdIntervalMS * time.Millisecond, Multiplier: bfdMultiplier}}
	for _, h := range nodes {
		rc.Neighbors = append(rc.Neighbors, labnet.RouterNeighbor{Address: h.IPv6, ASN: nodeASN, BFD: b.opts.BFD})
	}
	rd, err := b.startRouter(ctx, rc)
	if err != nil {
		return res, err
	}
	dead := nodes[len(nodes)-1]
	res.Dead = dead.Name
	linkDown := false
	defer func() {
		err = errors.Join(err, b.cl.StopSpeakers())
		err = errors.Join(err, rd.Stop())
		if linkDown {
			err = errors.Join(err, dead.LinkUp())
		}
		if err == nil {
			err = b.forgetSessions(ctx)
		}
	}()

	view := newRouterView(rd.counter, nodes)
	n := b.opts.Services
	others := b.others(rd.procs)
	before, err := othersUsage(others)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(b.diag, "# run %d: starting %d speakers\n", run, len(nodes))
	start := time.Now()
	for _, h := range nodes {
		if _, err := b.cl.StartSpeaker(h.Name, b.speakerArgs()...); err != nil {
			return res, err
		}
	}
	res, err = b.waitConverged(ctx, view, start, res)
	res.OthersCPU = othersCPU(others, before)
	var nc *notConverged
	if errors.As(err, &nc) {
		// For the report of what the speakers reached.
		res.Usage = map[string]procusage.Usage{}
		for _, h := range nodes {
			if u, uerr := procusage.Of(b.cl.Speaker(h.Name), b.speakerComm()); uerr == nil {
				res.Usage[h.Name] = u
			}
		}
	}
	if err != nil {
		return res, err
	}
	res.AtConverge = map[string]procusage.Usage{}
	for _, h := range nodes {
		if res.AtConverge[h.Name], err = procusage.Of(b.cl.Speaker(h.Name), b.speakerComm()); err != nil {
			return res, fmt.Errorf("speaker of %s: %w", h.Name, err)
		}
	}
	if ns, err := rd.Neighbors(ctx); err == nil {
		res.Established, res.Ups = map[string]time.Duration{}, map[string]int{}
		for _, nb := range ns {
			for _, h := range nodes {
				if nb.Address == h.IPv6 && nb.State == "Established" {
					res.Established[h.Name] = nb.Since.Sub(start)
					res.Ups[h.Name] = nb.Established
				}
			}
		}
	}
	fmt.Fprintf(b.diag, "# run %d: %d prefixes with %d paths each after %.3f s (%s); waiting for the speakers to go quiet\n",
		run, n, len(nodes), res.Converge.Seconds(), view.pollTimes())

	var ws []watched
	for _, h := range nodes {
		ws = append(ws, watched{name: h.Name, comm: b.speakerComm(), proc: b.cl.Speaker(h.Name)})
	}
	waited, err := quiesce(ws, quiet, quietLimit)
	if err != nil {
		return res, err
	}
	res.Quiet = waited
	res.Usage = map[string]procusage.Usage{}
	for _, h := range nodes {
		if res.Usage[h.Name], err = procusage.Of(b.cl.Speaker(h.Name), b.speakerComm()); err != nil {
			return res, fmt.Errorf("speaker of %s: %w", h.Name, err)
		}
	}
	// Still converged? A speaker that withdrew something while going
	// quiet would make the withdrawal figure meaningless.
	if c, err := rd.counter.bgp(ctx); err != nil || c != (routeCount{Routes: len(nodes) * n, Networks: n}) {
		return res, fmt.Errorf("after %.1f s of quiet the router has %+v (error %v), want %d paths for %d prefixes",
			waited.Seconds(), c, err, len(nodes)*n, n)
	}

	if !b.opts.BFD {
		return res, nil
	}
	bfdWait, err := b.waitBFDUp(ctx, nodes)
	fmt.Fprintf(b.diag, "# run %d: BFD up on every node's session %.1f s after the speakers went quiet\n", run, bfdWait.Seconds())
	if err != nil {
		return res, err
	}
	linkDown = true
	err = b.loseNode(ctx, nodeLoss{run: run, view: view, router: rd, dead: dead, start: start}, &res)
	return res, err
}

// bfdUpLimit bounds waitBFDUp: BFD starts a second after a session is
// established (the speaker's gate) and takes a few more to come up.
const bfdUpLimit = 30 * time.Second

// waitBFDUp waits until every node's speaker reports BFD Up on its
// session (its BGPSessionStates, which forgetSessions deletes between
// runs) and returns how long that took. The node-loss figure is BFD's
// detection only once BFD runs on the dead node's session: a speaker
// killed as soon as it has gone quiet may not have started BFD yet, and
// the router then keeps its paths for the hold time.
func (b *bench) waitBFDUp(ctx context.Context, nodes []*labnet.Host) (time.Duration, error) {
	start := time.Now()
	for {
		var list v1alpha1.BGPSessionStateList
		err := b.cl.Client.List(ctx, &list, client.InNamespace(labnet.SystemNamespace))
		up := map[string]bool{}
		for _, s := range list.Items {
			if s.Status.BFDState == v1alpha1.BFDStateUp {
				up[s.Status.Node] = true
			}
		}
		if err == nil && !slices.ContainsFunc(nodes, func(h *labnet.Host) bool { return !up[h.Name] }) {
			return time.Since(start), nil
		}
		if time.Since(start) > bfdUpLimit {
			return time.Since(start), fmt.Errorf("BFD is not Up on every node's session after %s (up: %v, list error %v)", bfdUpLimit, slices.Sorted(maps.Keys(up)), err)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(convergePoll):
		}
	}
}

// nodeLoss is what loseNode works with.
type nodeLoss struct {
	run    int
	view   *routerView
	router labnet.RouterDaemon
	dead   *labnet.Host
	start  time.Time // the speakers' start
}

// loseNode cuts l.dead off the LAN and kills its speaker, then times how
// long the router keeps its paths. It also checks that the survivors'
// sessions stayed up all along.
func (b *bench) loseNode(ctx context.Context, l nodeLoss, res *runResult) error {
	nodes := b.cl.Lab.Nodes()
	run, view, dead, start := l.run, l.view, l.dead, l.start
	// First the link, so that nothing the node does on the way down (a
	// FIN, a NOTIFICATION) reaches the router and only BFD can tell,
	// then the speaker.
	fmt.Fprintf(b.diag, "# run %d: %s loses its link and its speaker (SIGKILL)\n", run, dead.Name)
	lost := time.Now()
	if err := dead.LinkDown(); err != nil {
		return err
	}
	if err := b.cl.Speaker(dead.Name).Kill(); err != nil {
		return err
	}
	view.polls = nil
	var err error
	res.Withdraw, res.FirstWithdrawn, err = waitWithdrawn(ctx, view, lost, b.opts.Services, len(nodes))
	fmt.Fprintf(b.diag, "# run %d: withdrawal: %s\n", run, view.pollTimes())
	if err != nil {
		return err
	}
	// A survivor's session that came up again since convergence flapped
	// in between: the figures above would not be what they seem.
	ns, err := l.router.Neighbors(ctx)
	if err != nil || res.Established == nil {
		return nil
	}
	for _, nb := range ns {
		for _, h := range nodes {
			if h != dead && nb.Address == h.IPv6 && flapped(nb, start, res.Established[h.Name], res.Ups[h.Name]) {
				fmt.Fprintf(b.diag, "# ANOMALY: run %d: the router's session with %s (%s since %s, up %d times) was reset after convergence (up since %.3f s after the start, %d times): it flapped\n",
					run, h.Name, nb.State, nb.Since.Format(time.StampMilli), nb.Established, res.Established[h.Name].Seconds(), res.Ups[h.Name])
			}
		}
	}
	return nil
}

// speakerArgs are the flags the speakers get besides labcluster's.
func (b *bench) speakerArgs() []string {
	return append([]string{"--log-level=" + b.opts.SpeakerLogLevel}, strings.Fields(b.opts.SpeakerArgs)...)
}

// routerView is the router's view of the speakers' routes, through its
// daemon's routerCounter, by node; it times the polls.
type routerView struct {
	counter routerCounter
	// addrs are the nodes' addresses, the router's neighbours, by name.
	addrs map[string]netip.Addr
	// polls are how long each poll took, for the diagnostics.
	polls []time.Duration
}

// newRouterView is the view of the nodes' paths through c.
func newRouterView(c routerCounter, nodes []*labnet.Host) *routerView {
	v := &routerView{counter: c, addrs: map[string]netip.Addr{}}
	for _, h := range nodes {
		v.addrs[h.Name] = h.IPv6
	}
	return v
}

// paths returns how many paths each node has given the router.
func (v *routerView) paths(ctx context.Context) (map[string]int, error) {
	start := time.Now()
	got, err := v.counter.paths(ctx)
	v.polls = append(v.polls, time.Since(start))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for node, a := range v.addrs {
		out[node] = got[a]
	}
	return out, nil
}

// table counts the speakers' paths and prefixes in the router's table.
func (v *routerView) table(ctx context.Context) (routeCount, error) {
	start := time.Now()
	c, err := v.counter.table(ctx)
	v.polls = append(v.polls, time.Since(start))
	return c, err
}

// flapped reports whether the router's session nb, established est after
// start and up ups times when the speakers converged, has been reset
// since. FRR counts the times a session came up (and gives its start only
// to within a vtysh call); BIRD does not count, but times the state to
// the millisecond, from its monotonic clock, so that the same state
// change may read a millisecond apart (a reset moves it by the seconds a
// reconnection takes).
func flapped(nb labnet.BGPNeighbor, start time.Time, est time.Duration, ups int) bool {
	if nb.Established > 0 {
		return nb.Established != ups || nb.State != "Established"
	}
	return (nb.Since.Sub(start) - est).Abs() > sinceTolerance
}

// sinceTolerance is how far BIRD's since time of one state change may
// move between two reads (see flapped; internal/bgp's lab test allows the
// same).
const sinceTolerance = 50 * time.Millisecond

// pollTimes sums up how long the polls took.
func (v *routerView) pollTimes() string {
	if len(v.polls) == 0 {
		return "no polls"
	}
	return fmt.Sprintf("%d polls of the router, median %v, max %v", len(v.polls),
		benchstat.Percentile(v.polls, 50).Round(10*time.Microsecond), benchstat.Percentile(v.polls, 100).Round(10*time.Microsecond))
}

// waitConverged polls the router until it holds every prefix with a path
// from every node.
func (b *bench) waitConverged(ctx context.Context, v *routerView, start time.Time, res runResult) (runResult, error) {
	nodes := b.cl.Lab.Nodes()
	n := b.opts.Services
	want := routeCount{Routes: len(nodes) * n, Networks: n}
	res.NodeDone = map[string]time.Duration{}
	lastReport := start
	prev := map[string]int{}
	for {
		paths, err := v.paths(ctx)
		if err != nil {
			return res, err
		}
		now := time.Since(start)
		for node, p := range paths {
			if p < prev[node] {
				fmt.Fprintf(b.diag, "# ANOMALY: after %.3f s the router has %d paths from %s, down from %d: its session went down\n",
					now.Seconds(), p, node, prev[node])
			}
			prev[node] = p
		}
		total, done := 0, 0
		var missing []string
		for _, h := range nodes {
			p := paths[h.Name]
			total += p
			if p == n {
				done++
				if _, ok := res.NodeDone[h.Name]; !ok {
					res.NodeDone[h.Name] = now
				}
			} else {
				missing = append(missing, fmt.Sprintf("%s %d", h.Name, p))
			}
		}
		if total > 0 && res.FirstRoute == 0 {
			res.FirstRoute = now
		}
		if done == len(nodes) {
			// The channels say so; the table must agree.
			c, err := v.table(ctx)
			if err != nil {
				return res, err
			}
			if c == want {
				res.Converge = now
				return res, nil
			}
			fmt.Fprintf(b.diag, "# ANOMALY: every node's protocol has %d routes, but the table holds %d paths for %d prefixes\n", n, c.Routes, c.Networks)
		}
		if time.Since(lastReport) >= 10*time.Second || now > b.opts.Timeout {
			lastReport = time.Now()
			c, err := v.table(ctx)
			if err != nil {
				return res, err
			}
			msg := fmt.Sprintf("after %.0f s: %d of %d prefixes, %d of %d paths (nodes missing some: %s)",
				now.Seconds(), c.Networks, n, c.Routes, want.Routes, strings.Join(missing, ", "))
			if now > b.opts.Timeout {
				return res, &notConverged{After: now, Have: c, Want: want, Missing: missing}
			}
			fmt.Fprintln(b.diag, "#   "+msg)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(convergePoll):
		}
	}
}

// notConverged is waitConverged's error when the router did not get
// every path in time: what it had then, as MetalLB's reference figure
// says it.
type notConverged struct {
	After      time.Duration
	Have, Want routeCount
	Missing    []string // "node-1 9854": nodes short of paths
}

func (e *notConverged) Error() string {
	return fmt.Sprintf("not converged after %.0f s: %d of %d prefixes, %d of %d paths (nodes missing some: %s)",
		e.After.Seconds(), e.Have.Networks, e.Want.Networks, e.Have.Routes, e.Want.Routes, strings.Join(e.Missing, ", "))
}

// waitWithdrawn polls the router until it holds every one of n prefixes
// with the paths of the nodes-1 survivors only, and returns how long that
// took after lost and when the first path went.
func waitWithdrawn(ctx context.Context, v *routerView, lost time.Time, n, nodes int) (all, first time.Duration, err error) {
	want := routeCount{Routes: (nodes - 1) * n, Networks: n}
	for {
		c, err := v.table(ctx)
		if err != nil {
			return 0, 0, err
		}
		now := time.Since(lost)
		if c.Routes < nodes*n && first == 0 {
			first = now
		}
		if c == want {
			return now, first, nil
		}
		if c.Routes < want.Routes || c.Networks != n {
			return 0, 0, fmt.Errorf("after %.3f s the router has %d paths for %d prefixes: the survivors' paths went too", now.Seconds(), c.Routes, c.Networks)
		}
		if now > withdrawTimeout {
			return 0, 0, fmt.Errorf("the dead node's paths are still there after %s: %d paths for %d prefixes", withdrawTimeout, c.Routes, c.Networks)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(withdrawPoll):
		}
	}
}

// describe prints one run's details on the diagnostics stream.
func (b *bench) describe(run int, r runResult) {
	var names []string
	for name := range r.Usage {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Fprintf(b.diag, "# run %d: first path after %.3f s, all %d prefixes with every path after %.3f s; the speakers were quiet %.0f s later\n",
		run, r.FirstRoute.Seconds(), b.opts.Services, r.Converge.Seconds(), r.Quiet.Seconds())
	for _, name := range names {
		est := "?"
		if d, ok := r.Established[name]; ok {
			est = fmt.Sprintf("%.3f s", d.Seconds())
		}
		u, at := r.Usage[name], r.AtConverge[name]
		fmt.Fprintf(b.diag, "#   %s: session up after %s, all its paths after %.3f s; CPU %.2f s until convergence, %.2f s after quiet; peak RSS %.1f MiB at convergence, %.1f MiB after quiet (RSS now %.1f MiB: %.1f anonymous, %.1f file)\n",
			name, est, r.NodeDone[name].Seconds(), at.CPU.Seconds(), u.CPU.Seconds(), mib(at.PeakRSS), mib(u.PeakRSS), mib(u.RSS), mib(u.RSSAnon), mib(u.RSSFile))
	}
	if len(r.OthersCPU) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(r.OthersCPU)) {
			parts = append(parts, fmt.Sprintf("%s %.2f s", name, r.OthersCPU[name].Seconds()))
		}
		fmt.Fprintf(b.diag, "#   CPU of the others until convergence: %s\n", strings.Join(parts, ", "))
	}
	if b.opts.BFD {
		fmt.Fprintf(b.diag, "# run %d: %s lost: first path withdrawn after %.3f s, all after %.3f s\n",
			run, r.Dead, r.FirstWithdrawn.Seconds(), r.Withdraw.Seconds())
	}
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }
