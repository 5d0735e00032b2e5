package election

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// The lab tests run each member as its own process inside a node's network
// namespace of a lab LAN (veths on a bridge), as speakers run on nodes, and
// cut a node off by downing its switch port: the failure an unplanned
// failover must survive, with no goodbye and no refused connections, only
// silence. A member runs in its own process because a Go program cannot
// keep its goroutines in one namespace: memberlist dials TCP from its own
// goroutines. The process is this test binary re-run as
// TestLabMemberHelper.

// helperEnv carries a helper's configuration, as JSON of helperSpec.
const helperEnv = "IRONLB_ELECTION_HELPER"

type helperSpec struct {
	Name string
	Bind netip.AddrPort
	Join []netip.AddrPort
	// RestartHold, if set, makes SIGTERM a stop to restart (Restart)
	// rather than a leave.
	RestartHold time.Duration
}

// TestLabMemberHelper is not a test: it is the member process that the lab
// tests start. It runs a Members until SIGTERM (then leaves, as a speaker
// does) and prints "alive UNIXNANO NAME,NAME,..." on stdout whenever its
// view changes, and "health UNIXNANO SCORE" whenever its health score
// does.
func TestLabMemberHelper(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("the member process of the lab tests; runs only when they start it")
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	m, err := New(Options{
		Name:   spec.Name,
		Bind:   spec.Bind,
		Join:   spec.Join,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		if spec.RestartHold > 0 {
			if err := m.Restart(time.Now().Add(spec.RestartHold), time.Second); err != nil {
				t.Error(err)
			}
		}
		stop()
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		health := time.NewTicker(50 * time.Millisecond)
		defer health.Stop()
		last := -2
		for {
			select {
			case <-m.Changes():
				now := time.Now().UnixNano()
				fmt.Printf("alive %d %s\n", now, strings.Join(m.Alive(), ","))
				fmt.Printf("restarting %d %s\n", now, strings.Join(m.Restarting(), ","))
			case <-health.C:
				if h := m.Health(); h != last {
					fmt.Printf("health %d %d\n", time.Now().UnixNano(), h)
					last = h
				}
			case <-ctx.Done():
				return
			}
		}
	})
	if err := m.Run(ctx); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

// labEvent is one "alive" line of a helper's output: member's view at a
// moment.
type labEvent struct {
	member string
	at     time.Time
	alive  []string
}

// labViews collects the helpers' reports.
type labViews struct {
	mu     sync.Mutex
	events []labEvent
	latest map[string][]string // member -> its current view
	health map[string]int      // member -> its current health score
	// restarting: member -> the members it lists in Restarting
	restarting map[string][]string
	wake       chan struct{} // coalescing; one waiter at a time
}

func newLabViews() *labViews {
	return &labViews{latest: map[string][]string{}, health: map[string]int{}, restarting: map[string][]string{}, wake: make(chan struct{}, 1)}
}

// read parses a helper's stdout until it closes.
func (v *labViews) read(member string, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "alive" && f[0] != "health" && f[0] != "restarting") {
			continue // the test framework's own output
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		v.mu.Lock()
		switch f[0] {
		case "alive":
			var alive []string
			if len(f) > 2 {
				alive = strings.Split(f[2], ",")
			}
			v.events = append(v.events, labEvent{member: member, at: time.Unix(0, ns), alive: alive})
			v.latest[member] = alive
		case "health":
			if len(f) > 2 {
				v.health[member], _ = strconv.Atoi(f[2])
			}
		case "restarting":
			v.restarting[member] = nil
			if len(f) > 2 {
				v.restarting[member] = strings.Split(f[2], ",")
			}
		}
		v.mu.Unlock()
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
}

// wait waits until cond holds, or timeout. cond runs with v locked.
func (v *labViews) wait(timeout time.Duration, cond func(v *labViews) bool) bool {
	deadline := time.After(timeout)
	for {
		v.mu.Lock()
		ok := cond(v)
		v.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-v.wake:
		case <-deadline:
			return false
		}
	}
}

// settle waits until every member sees all of them, every member is
// healthy, and no view has changed for quiet, so a trial starts from a
// steady cluster rather than one still healing from the last.
func (v *labViews) settle(all []string, quiet, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := v.wait(time.Until(deadline), func(v *labViews) bool {
			if !everyoneSees(all, all)(v) {
				return false
			}
			for _, m := range all {
				if v.health[m] != 0 {
					return false
				}
			}
			return true
		})
		if !ok {
			return false
		}
		n := v.count()
		time.Sleep(quiet)
		if v.count() == n {
			return true
		}
	}
	return false
}

func (v *labViews) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.events)
}

// firstAfter returns when member first reported a view satisfying cond
// after t0.
func (v *labViews) firstAfter(member string, t0 time.Time, cond func([]string) bool) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, ev := range v.events {
		if ev.member == member && ev.at.After(t0) && cond(ev.alive) {
			return ev.at, true
		}
	}
	return time.Time{}, false
}

// spurious counts the views reported between from and to in which a
// member other than the victim was missing: a healthy member declared
// dead. The victim's own views (it sees everyone else die while it is cut
// off) do not count.
func (v *labViews) spurious(from, to time.Time, all []string, victim string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, ev := range v.events {
		if ev.at.Before(from) || ev.at.After(to) || ev.member == victim {
			continue
		}
		for _, m := range all {
			if m != victim && !slices.Contains(ev.alive, m) {
				n++
				break
			}
		}
	}
	return n
}

func (v *labViews) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("views %v, health %v", v.latest, v.health)
}

// startLabMembers starts a member process on every node of l, each joining
// all the others on DefaultPort.
func startLabMembers(t testing.TB, l *labnet.Lab) (*labViews, map[string]*labnet.Process) {
	return startLabMembersHold(t, l, 0)
}

// startLabMembersHold is startLabMembers with helperSpec.RestartHold.
func startLabMembersHold(t testing.TB, l *labnet.Lab, hold time.Duration) (*labViews, map[string]*labnet.Process) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var peers []netip.AddrPort
	for _, h := range l.Nodes() {
		peers = append(peers, netip.AddrPortFrom(h.IPv4, DefaultPort))
	}
	views := newLabViews()
	procs := map[string]*labnet.Process{}
	for i, h := range l.Nodes() {
		spec, err := json.Marshal(helperSpec{Name: h.Name, Bind: peers[i], Join: peers, RestartHold: hold})
		if err != nil {
			t.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestLabMemberHelper$", "-test.count=1", "-test.timeout=0")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
		cmd.Stdout = w // stderr, the member's log, goes to the lab's log file
		p, err := h.StartCmd(context.Background(), cmd)
		w.Close()
		if err != nil {
			r.Close()
			t.Fatal(err)
		}
		procs[h.Name] = p
		go func() {
			defer r.Close()
			views.read(h.Name, r)
		}()
	}
	return views, procs
}

// everyoneSees returns a condition: each of members sees exactly want.
func everyoneSees(members, want []string) func(*labViews) bool {
	return func(v *labViews) bool {
		for _, m := range members {
			if !slices.Equal(v.latest[m], want) {
				return false
			}
		}
		return true
	}
}

// TestLabLinkCut measures failure detection as the failover will see it:
// three member processes on a lab LAN; one node's link is cut (its member
// keeps running, cut off); the time until each other member drops it is
// logged. The link is then restored and the cluster must heal by itself.
// Finally a member is stopped with SIGTERM and must be dropped at once,
// the planned handover.
func TestLabLinkCut(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{})
	views, procs := startLabMembers(t, l)
	all := nodeNames(l)

	trials := 3
	if testing.Short() {
		trials = 1
	}
	first, last := linkCutTrials(t, l, views, trials)
	t.Logf("link cut noticed by the first survivor: %s", summary(first))
	t.Logf("link cut noticed by every survivor:     %s", summary(last))

	// Planned: SIGTERM makes the member leave before it stops.
	t0 := time.Now()
	if err := procs["node-1"].Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(t0)
	rest := without(all, "node-1")
	if !views.wait(5*time.Second, everyoneSees(rest, rest)) {
		t.Fatalf("node-1 stopped and still alive: %s", views)
	}
	var took []time.Duration
	for _, s := range rest {
		at, _ := views.firstAfter(s, t0, func(a []string) bool { return !slices.Contains(a, "node-1") })
		took = append(took, at.Sub(t0))
	}
	t.Logf("SIGTERM: process exited after %s, leave noticed after %v", stopped.Round(time.Millisecond), took)
}

func nodeNames(l *labnet.Lab) []string {
	var all []string
	for _, h := range l.Nodes() {
		all = append(all, h.Name)
	}
	return all
}

// linkCutTrials waits for the lab's members to form a cluster, then cuts
// the link of one node after the other, trials times: it returns, for each
// cut, when the first and when the last of the others dropped the node.
// After each cut it restores the link and waits for the cluster to heal.
func linkCutTrials(t testing.TB, l *labnet.Lab, views *labViews, trials int) (first, last []time.Duration) {
	all := nodeNames(l)
	for i := range trials {
		if !views.settle(all, time.Second, 10*time.Second) {
			// Only the measurement suffers: on a starved machine
			// members may stay unhealthy for long.
			t.Logf("trial %d: the cluster did not settle in 10 s, measuring anyway: %s", i, views)
		}
		victim := l.Nodes()[i%len(all)]
		survivors := without(all, victim.Name)
		t0 := time.Now()
		if err := victim.LinkDown(); err != nil {
			t.Fatal(err)
		}
		if !views.wait(5*time.Second, everyoneSees(survivors, survivors)) {
			t.Fatalf("trial %d: %s cut off 5 s ago and still alive: %s", i, victim, views)
		}
		var took []time.Duration
		for _, s := range survivors {
			at, _ := views.firstAfter(s, t0, func(a []string) bool { return !slices.Contains(a, victim.Name) })
			took = append(took, at.Sub(t0))
		}
		first, last = append(first, slices.Min(took)), append(last, slices.Max(took))
		t.Logf("trial %d: link of %s cut at %s, noticed after %v", i, victim, t0.UTC().Format("15:04:05.000"), took)

		t1 := time.Now()
		if err := victim.LinkUp(); err != nil {
			t.Fatal(err)
		}
		if !views.wait(15*time.Second, everyoneSees(all, all)) {
			t.Fatalf("trial %d: %s reconnected 15 s ago and the cluster is still split: %s", i, victim, views)
		}
		healed := time.Since(t1)
		views.settle(all, time.Second, 10*time.Second)
		t.Logf("trial %d: healed %s after the link came back; a healthy member was missing from a view %d times while cut, %d times while healing",
			i, healed.Round(time.Millisecond), views.spurious(t0, t1, all, victim.Name), views.spurious(t1, time.Now(), all, victim.Name))
	}
	return first, last
}

// BenchmarkLabLinkCut reports detection of a cut link on the lab LAN, in
// milliseconds, one cut per iteration (use -benchtime 20x or more):
//
//	sudo go test ./internal/election -run '^$' -bench LabLinkCut -benchtime 20x
func BenchmarkLabLinkCut(b *testing.B) {
	l := labnet.NewForTest(b, labnet.Options{})
	views, _ := startLabMembers(b, l)
	first, last := linkCutTrials(b, l, views, b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(quantile(last, 0.5)), "ms-median")
	b.ReportMetric(ms(quantile(last, 0.99)), "ms-p99")
	b.ReportMetric(ms(quantile(first, 0.5)), "ms-first-median")
	b.ReportMetric(0, "ns/op")
}

// TestLabRestartNodeDown: a member stopped to restart keeps its place
// while its node is up (its kernel refuses the connections to the
// stopped member's port), and loses it soon after the node's link is
// cut, long before the hold runs out.
func TestLabRestartNodeDown(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{})
	const hold = 30 * time.Second
	views, procs := startLabMembersHold(t, l, hold)
	all := nodeNames(l)
	if !views.settle(all, 500*time.Millisecond, 20*time.Second) {
		t.Fatalf("the cluster did not form: %s", views)
	}
	rest := without(all, "node-1")
	lists := func(want bool) func(*labViews) bool {
		return func(v *labViews) bool {
			for _, m := range rest {
				if slices.Contains(v.restarting[m], "node-1") != want {
					return false
				}
			}
			return true
		}
	}
	t0 := time.Now()
	if err := procs["node-1"].Stop(); err != nil {
		t.Fatal(err)
	}
	if !views.wait(5*time.Second, lists(true)) {
		t.Fatalf("node-1 stopped to restart, and the others do not list it: %s", views)
	}
	t.Logf("listed as restarting by all after %s", time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if !views.wait(0, lists(true)) {
		t.Fatalf("node-1's node is up, and its place is given up 2 s into its restart: %s", views)
	}
	h := l.Node(1)
	if err := h.LinkDown(); err != nil {
		t.Fatal(err)
	}
	defer h.LinkUp()
	t1 := time.Now()
	if !views.wait(hold/3, lists(false)) {
		t.Fatalf("node-1's link is cut, and the others still keep its place %s later: %s", hold/3, views)
	}
	t.Logf("place given up %s after the link was cut (the hold had %s left)", time.Since(t1).Round(time.Millisecond), (hold - time.Since(t0)).Round(time.Second))
}
