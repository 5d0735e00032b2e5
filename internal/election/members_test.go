package election

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests run real memberlist clusters on 127.0.0.1, one port per
// member. Loopback is a kind LAN: no packet is lost, and a crashed member's
// closed port refuses the TCP fallback ping at once. What it shows is the
// failure detector's own timing; TestLabLinkCut measures a cut link on a
// veth LAN.

// freePorts returns n distinct ports that are free for both TCP and UDP on
// 127.0.0.1 (memberlist uses one port for both). Another process could
// take one before the member binds it; on a test machine that is rare.
func freePorts(t testing.TB, n int) []uint16 {
	t.Helper()
	var ports []uint16
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // UDP port taken; the TCP listener stays open until the end so it is not picked again
		}
		closers = append(closers, u.Close)
		ports = append(ports, uint16(port))
	}
	return ports
}

// testLogger returns a logger that collects everything at debug level and
// prints it if the test fails.
func testLogger(t testing.TB) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("log:\n%s", buf.Bytes())
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// testMember is a Members running in the background until the test ends.
type testMember struct {
	*Members
	name   string
	opts   Options
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startMember runs a member with opts; the test's end stops it.
func startMember(t testing.TB, opts Options) *testMember {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &testMember{Members: m, name: opts.Name, opts: opts, cancel: cancel, done: make(chan error, 1)}
	go func() { tm.done <- m.Run(ctx) }()
	t.Cleanup(func() { tm.stop(t) })
	return tm
}

// stop cancels Run and waits for it; only the first call does anything.
func (tm *testMember) stop(t testing.TB) {
	t.Helper()
	tm.once.Do(func() {
		tm.cancel()
		select {
		case err := <-tm.done:
			if err != nil {
				t.Errorf("%s: Run: %v", tm.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return 10 s after its context ended", tm.name)
		}
	})
}

// crash stops tm without a goodbye, as a killed process: its sockets
// close and it answers nothing more.
func (tm *testMember) crash() { tm.shutdown() }

// clusterOptions returns options for n members on 127.0.0.1, each told to
// join all the others.
func clusterOptions(t testing.TB, n int, key []byte) []Options {
	ports := freePorts(t, n)
	var peers []netip.AddrPort
	for _, p := range ports {
		peers = append(peers, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p))
	}
	log := testLogger(t)
	opts := make([]Options, n)
	for i := range opts {
		opts[i] = Options{
			Name:           fmt.Sprintf("node-%d", i+1),
			Bind:           peers[i],
			SecretKey:      key,
			Join:           peers,
			RejoinInterval: 200 * time.Millisecond,
			Logger:         log.With("member", fmt.Sprintf("node-%d", i+1)),
		}
	}
	return opts
}

// names returns the members' names, sorted.
func names(ms []*testMember) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	slices.Sort(out)
	return out
}

// waitAlive waits until m's Alive satisfies cond and returns when it saw
// that, or false after timeout.
func waitAlive(m *Members, timeout time.Duration, cond func([]string) bool) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		if cond(m.Alive()) {
			return time.Now(), true
		}
		select {
		case <-m.Changes():
		case <-deadline:
			return time.Time{}, false
		}
	}
}

// waitConverged waits until every member sees exactly want.
func waitConverged(t testing.TB, ms []*testMember, want []string, timeout time.Duration) {
	t.Helper()
	for _, m := range ms {
		if _, ok := waitAlive(m.Members, timeout, func(a []string) bool { return slices.Equal(a, want) }); !ok {
			t.Fatalf("%s sees %q after %s, want %q", m.name, m.Alive(), timeout, want)
		}
	}
}

// startCluster starts n members that join each other and waits until they
// all see each other.
func startCluster(t testing.TB, n int, key []byte) []*testMember {
	t.Helper()
	return startClusterOpts(t, clusterOptions(t, n, key))
}

// startClusterOpts starts members with opts and waits until they all see
// each other.
func startClusterOpts(t testing.TB, opts []Options) []*testMember {
	t.Helper()
	var ms []*testMember
	for _, o := range opts {
		ms = append(ms, startMember(t, o))
	}
	waitConverged(t, ms, names(ms), 10*time.Second)
	return ms
}

// watchGone starts watching survivors for victim to leave their Alive
// sets. Call it before making the victim go, then call the returned
// function with the moment it went: it waits up to timeout and returns how
// long after t0 each survivor noticed. All survivors are watched at once,
// so each time is that survivor's own.
func watchGone(survivors []*testMember, victim string, timeout time.Duration) func(t0 time.Time) ([]time.Duration, error) {
	at := make([]time.Time, len(survivors))
	errs := make([]error, len(survivors))
	var wg sync.WaitGroup
	for i, s := range survivors {
		wg.Go(func() {
			var ok bool
			at[i], ok = waitAlive(s.Members, timeout, func(a []string) bool { return !slices.Contains(a, victim) })
			if !ok {
				errs[i] = fmt.Errorf("%s still sees %s %s later: %q", s.name, victim, timeout, s.Alive())
			}
		})
	}
	return func(t0 time.Time) ([]time.Duration, error) {
		wg.Wait()
		out := make([]time.Duration, len(at))
		for i := range at {
			out[i] = at[i].Sub(t0)
		}
		return out, errors.Join(errs...)
	}
}

func others(ms []*testMember, drop int) []*testMember {
	var out []*testMember
	for i, m := range ms {
		if i != drop {
			out = append(out, m)
		}
	}
	return out
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no name", Options{}, "name is required"},
		{"short key", Options{Name: "a", SecretKey: make([]byte, 8)}, "secret key is 8 bytes"},
		{"short accepted key", Options{Name: "a", SecretKey: make([]byte, 16), AcceptKeys: [][]byte{make([]byte, 16), make([]byte, 8)}}, "accepted key 2 is 8 bytes"},
		{"unspecified peer", Options{Name: "a", Join: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:7947")}}, "cannot join"},
		{"invalid peer", Options{Name: "a", Join: []netip.AddrPort{{}}}, "cannot join"},
		{"unspecified advertise", Options{Name: "a", Advertise: netip.MustParseAddrPort("[::]:7947")}, "cannot advertise"},
		{"probe timeout too long", Options{Name: "a", Tuning: Tuning{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond}}, "less than half the probe interval"},
		{"negative rejoin", Options{Name: "a", RejoinInterval: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	m, err := New(Options{Name: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	c := m.config()
	got := []any{c.BindAddr, c.BindPort, c.AdvertisePort, c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.SuspicionMaxTimeoutMult, c.GossipInterval, c.Label}
	want := []any{"0.0.0.0", DefaultPort, DefaultPort, DefaultProbeInterval, DefaultProbeTimeout, DefaultSuspicionMult, DefaultSuspicionMaxTimeoutMult, DefaultGossipInterval, "ironlb"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if m.Alive() != nil {
		t.Errorf("Alive before Run = %q, want nil", m.Alive())
	}
	if err := m.Leave(time.Second); err != nil {
		t.Errorf("Leave before Run: %v", err)
	}
}

func TestRunPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := New(Options{Name: "node-1", Bind: netip.MustParseAddrPort(l.Addr().String())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Run(ctx); err == nil {
		t.Fatal("Run on a taken port succeeded")
	}
	if err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v, want an error", err)
	}
}

// TestFormsInAnyOrder starts three members one after the other, each
// configured with all three addresses, so the first ones' joins fail: the
// background rejoin must still form one cluster.
func TestFormsInAnyOrder(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			opts := clusterOptions(t, 3, nil)
			var ms []*testMember
			for j, i := range order {
				if j > 0 {
					time.Sleep(300 * time.Millisecond) // longer than a rejoin round
				}
				ms = append(ms, startMember(t, opts[i]))
			}
			start := time.Now()
			waitConverged(t, ms, names(ms), 10*time.Second)
			t.Logf("converged %s after the last start", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestCrashDetected kills a member without a goodbye and checks that the
// others drop it, then that it rejoins when restarted under the same name
// and address (a speaker pod restarted on its node).
func TestCrashDetected(t *testing.T) {
	ms := startCluster(t, 3, nil)
	all := names(ms)
	wait := watchGone(ms[1:], ms[0].name, 5*time.Second)
	t0 := time.Now()
	ms[0].crash()
	took, err := wait(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("crash of %s noticed after %v", ms[0].name, took)
	waitConverged(t, ms[1:], all[1:], time.Second)

	ms[0] = startMember(t, ms[0].opts)
	start := time.Now()
	waitConverged(t, ms, all, 10*time.Second)
	t.Logf("restarted %s is alive everywhere after %s", ms[0].name, time.Since(start).Round(time.Millisecond))
}

// TestLeaveNoticed is the planned handover: a member that leaves is
// dropped by the others within a gossip round or two, no probing needed,
// and drops itself from its own view at once.
func TestLeaveNoticed(t *testing.T) {
	ms := startCluster(t, 3, nil)
	wait := watchGone(ms[1:], ms[0].name, 5*time.Second)
	t0 := time.Now()
	if err := ms[0].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	leaveTook := time.Since(t0)
	if a := ms[0].Alive(); slices.Contains(a, ms[0].name) {
		t.Errorf("after Leave, %s still counts itself alive: %q", ms[0].name, a)
	}
	took, err := wait(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Leave returned after %s; noticed after %v", leaveTook.Round(time.Microsecond), took)
	// A leave is not a failure: nobody pings the leaver to check (it would
	// answer, and be kept).
	time.Sleep(300 * time.Millisecond)
	for _, m := range ms[1:] {
		if isHeld(m.Members, ms[0].name) || slices.Contains(m.Alive(), ms[0].name) {
			t.Errorf("%s keeps the member that left: %q", m.name, m.Alive())
		}
	}
	for _, d := range took {
		if d > 2*time.Second {
			t.Errorf("a leave took %s to be noticed; it should not wait for failed probes", d)
		}
	}
	// Run's own Leave is then a no-op, and Run returns promptly.
	stopStart := time.Now()
	ms[0].stop(t)
	if d := time.Since(stopStart); d > 3*time.Second {
		t.Errorf("Run took %s to return after Leave", d)
	}
	if a := ms[0].Alive(); a != nil {
		t.Errorf("Alive after Run returned = %q, want nil", a)
	}
}

// TestStopLeaves checks that cancelling Run is a planned leave, not a
// crash: the others hear it at once.
func TestStopLeaves(t *testing.T) {
	ms := startCluster(t, 3, nil)
	wait := watchGone(ms[:2], ms[2].name, 5*time.Second)
	t0 := time.Now()
	ms[2].cancel()
	took, err := wait(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stop noticed after %v", took)
}

// TestWrongKey checks that gossip encryption keeps out members without the
// cluster's key: with another key, or none.
func TestWrongKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	for _, tt := range []struct {
		name string
		key  []byte
	}{
		{"other key", []byte("fedcba9876543210")},
		{"no key", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := clusterOptions(t, 3, key)
			opts[2].SecretKey = tt.key
			ms := []*testMember{startMember(t, opts[0]), startMember(t, opts[1])}
			waitConverged(t, ms, []string{"node-1", "node-2"}, 10*time.Second)
			intruder := startMember(t, opts[2])
			// Several join rounds, in both directions (everyone lists
			// everyone), and many probe intervals.
			time.Sleep(time.Second)
			for _, m := range ms {
				if a := m.Alive(); !slices.Equal(a, []string{"node-1", "node-2"}) {
					t.Errorf("%s sees %q, want only node-1 and node-2", m.name, a)
				}
			}
			if a := intruder.Alive(); !slices.Equal(a, []string{"node-3"}) {
				t.Errorf("the intruder sees %q, want only itself", a)
			}
		})
	}
}

// TestKeyRotation checks that members encrypting with different keys form
// one membership when each accepts the other's key: the middle of a key
// rotation (README), where some speakers have moved to the new key and
// the others not yet.
func TestKeyRotation(t *testing.T) {
	old, next := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	opts := clusterOptions(t, 3, old)
	opts[0].AcceptKeys = [][]byte{next} // step 1 done: accepts the new key
	opts[1].AcceptKeys = [][]byte{next}
	opts[2].SecretKey, opts[2].AcceptKeys = next, [][]byte{old} // step 2 done
	var ms []*testMember
	for _, o := range opts {
		ms = append(ms, startMember(t, o))
	}
	waitConverged(t, ms, []string{"node-1", "node-2", "node-3"}, 10*time.Second)
}

// TestChangesCoalesce checks that Changes never blocks memberlist and
// holds at most one notification.
func TestChangesCoalesce(t *testing.T) {
	m, err := New(Options{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m.notify()
	}
	if got := len(m.Changes()); got != 1 {
		t.Errorf("%d notifications pending, want 1", got)
	}
}

// memberOfName returns what m knows of the member name.
func memberOfName(t *testing.T, m *Members, name string) member {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.members[name]
	if !ok {
		t.Fatalf("%s is not a member", name)
	}
	return mb
}

func isHeld(m *Members, name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.held[name]
	return ok
}

// TestVerifyKeepsAnsweringMember plays the stale death a healing partition
// gossips: memberlist reports a member dead that is in fact fine. The
// member answers the direct ping, so it stays in Alive until memberlist
// reports it alive again, or at most holdMax.
func TestVerifyKeepsAnsweringMember(t *testing.T) {
	ms := startCluster(t, 3, nil)
	m, victim := ms[0].Members, "node-3"
	n := memberOfName(t, m, victim)

	m.onDeath(victim, n)
	time.Sleep(3 * DefaultProbeInterval) // several pings answered
	if !isHeld(m, victim) {
		t.Fatalf("%s answers pings but was dropped", victim)
	}
	if a := m.Alive(); !slices.Contains(a, victim) {
		t.Errorf("Alive = %q, lacks %s", a, victim)
	}
	m.mu.Lock()
	hb := m.beats[victim]
	m.mu.Unlock()
	m.onAlive(victim, n) // memberlist heard the refutation
	if isHeld(m, victim) {
		t.Errorf("%s still held after it was reported alive", victim)
	}
	m.mu.Lock()
	kept := m.beats[victim] == hb
	m.mu.Unlock()
	if hb == nil || !kept {
		t.Errorf("%s's heartbeat record was not kept through the death it refuted", victim)
	}

	// If memberlist never revives it, it is dropped after holdMax, so that
	// this member's view does not drift from everyone else's for good.
	m.onDeath(victim, n)
	start := time.Now()
	for isHeld(m, victim) {
		if time.Since(start) > holdMax+2*time.Second {
			t.Fatalf("%s still held %s after its death was reported", victim, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Not asserted: on a starved machine (or under -race) one ack may miss
	// the probe timeout, which drops the member early, as it should.
	t.Logf("dropped after %s (holdMax %s)", time.Since(start).Round(time.Millisecond), holdMax)
}

// TestVerifyDropsSilentMember: a member reported dead that does not answer
// is dropped within about a probe timeout.
func TestVerifyDropsSilentMember(t *testing.T) {
	ms := startCluster(t, 3, nil)
	m := ms[0].Members
	n := memberOfName(t, m, "node-3")
	ms[2].crash()
	start := time.Now()
	m.onDeath("node-3", n)
	for isHeld(m, "node-3") {
		if time.Since(start) > 2*time.Second {
			t.Fatal("a crashed member is still held 2 s after its death was reported")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("dropped %s after the report (probe timeout %s)", time.Since(start).Round(time.Millisecond), DefaultProbeTimeout)
}

// TestVerifyWaitsForStarvedMember: a member whose heartbeats kept coming
// late (one starved of CPU) and that memberlist reports dead is given the
// heartbeat judge's longer timeout before it is dropped, not
// HeartbeatTimeout: memberlist suspects such a member whenever its
// refutation is late, and its next burst of heartbeats may be 300 ms
// away. The member here has crashed, so it is dropped once that longer
// timeout has passed.
func TestVerifyWaitsForStarvedMember(t *testing.T) {
	ms := startCluster(t, 3, nil)
	m, victim := ms[0].Members, "node-3"
	n := memberOfName(t, m, victim)
	ms[2].crash()
	start := time.Now()
	m.mu.Lock()
	hb := &heartbeat{}
	at := start.Add(-5 * time.Second)
	for i := 0; at.Before(start); i++ { // a heartbeat every 100 ms, once 300 ms apart
		gap := 100 * time.Millisecond
		if i == 20 {
			gap = 300 * time.Millisecond
		}
		at = at.Add(gap)
		hb.record(at, gap, m.opts.Tuning.HeartbeatInterval)
	}
	m.beats[victim] = hb
	limit := hb.timeout(start, m.opts.Tuning.HeartbeatTimeout)
	m.mu.Unlock()
	if limit < 3*m.opts.Tuning.HeartbeatTimeout {
		t.Fatalf("the starved member's timeout is %s, want several heartbeat timeouts", limit)
	}

	m.onDeath(victim, n)
	time.Sleep(2 * m.opts.Tuning.HeartbeatTimeout)
	if !isHeld(m, victim) {
		t.Fatalf("a starved member was dropped %s after its last heartbeat; its timeout is %s", time.Since(start).Round(time.Millisecond), limit)
	}
	for isHeld(m, victim) {
		if time.Since(start) > holdMax+2*time.Second {
			t.Fatalf("%s still held %s after its death was reported", victim, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("dropped %s after its last heartbeat (its timeout %s)", time.Since(start).Round(time.Millisecond), limit)
}

// TestMetaSpreads checks that each member reads the others' Options.Meta,
// and that a member that leaves is no longer listed with its metadata.
func TestMetaSpreads(t *testing.T) {
	opts := clusterOptions(t, 3, nil)
	for i := range opts {
		opts[i].Meta = fmt.Sprintf("eth0=02:00:00:00:00:0%d", i+1)
	}
	ms := startClusterOpts(t, opts)
	for _, m := range ms {
		for i, o := range opts {
			got, ok := m.Meta(o.Name)
			if !ok || got != opts[i].Meta {
				t.Errorf("%s: Meta(%s) = %q, %v; want %q", m.name, o.Name, got, ok, opts[i].Meta)
			}
		}
	}
	if err := ms[0].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := ms[1].Meta(ms[0].name); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still lists the metadata of %s, which left", ms[1].name, ms[0].name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := New(Options{Name: "x", Meta: strings.Repeat("a", MaxMeta+1)}); err == nil {
		t.Error("New accepted metadata longer than MaxMeta")
	}
}

// TestSetMeta checks that metadata set while the members run reaches the
// others, with a change signalled, and that metadata set before Run is
// what Run publishes.
func TestSetMeta(t *testing.T) {
	opts := clusterOptions(t, 3, nil)
	for i := range opts {
		opts[i].Meta = fmt.Sprintf("eth0=02:00:00:00:00:0%d", i+1)
	}
	// node-3 changes its metadata before it runs.
	early, err := New(opts[2])
	if err != nil {
		t.Fatal(err)
	}
	opts[2].Meta = "eth0=02:00:00:00:00:03,bond0=02:00:00:00:00:33"
	if err := early.SetMeta(opts[2].Meta, time.Second); err != nil {
		t.Fatal(err)
	}
	ms := []*testMember{startMember(t, opts[0]), startMember(t, opts[1])}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- early.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node-3: Run: %v", err)
		}
	})
	ms = append(ms, &testMember{Members: early, name: opts[2].Name})
	waitConverged(t, ms, names(ms), 10*time.Second)

	waitMeta := func(m *testMember, name, want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			got, ok := m.Meta(name)
			if ok && got == want {
				return
			}
			select {
			case <-m.Changes():
			case <-deadline:
				t.Fatalf("%s: Meta(%s) = %q, %v; want %q", m.name, name, got, ok, want)
			}
		}
	}
	waitMeta(ms[0], opts[2].Name, opts[2].Meta)

	// node-1 gains an interface, then loses eth0.
	for _, meta := range []string{"eth0=02:00:00:00:00:01,vlan7=02:00:00:00:00:71", "vlan7=02:00:00:00:00:71"} {
		if err := ms[0].SetMeta(meta, time.Second); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms[1:] {
			waitMeta(m, opts[0].Name, meta)
		}
		if got, _ := ms[0].Meta(opts[0].Name); got != meta {
			t.Errorf("node-1 reads its own metadata as %q, want %q", got, meta)
		}
	}

	if err := ms[0].SetMeta(strings.Repeat("a", MaxMeta+1), time.Second); err == nil {
		t.Error("SetMeta accepted metadata longer than MaxMeta")
	}
	// After Leave, the member goes on saying it is leaving.
	if err := ms[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].SetMeta("eth0=02:00:00:00:00:02", time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := ms[0].Meta(opts[1].Name); ok {
		t.Errorf("%s lists %s after it left and set its metadata", ms[0].name, opts[1].Name)
	}
}

// TestCutOffCountsOthersOut: when a member's death is confirmed and the
// others do not answer a ping either, this member is the one cut off:
// Alive leaves the silent ones out at once rather than keeping "two of
// three" for the moment until they too are declared dead. When the
// others answer, only the dead member goes.
func TestCutOffCountsOthersOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		crashed []int // besides node-3, whose death is reported
		want    []string
	}{
		{"only node-3 is gone: node-2 answers", nil, []string{"node-1", "node-2"}},
		{"node-2 is silent too: node-1 is cut off", []int{1}, []string{"node-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := startCluster(t, 3, nil)
			m := ms[0].Members
			n := memberOfName(t, m, "node-3")
			ms[2].crash()
			for _, i := range tc.crashed {
				ms[i].crash()
			}
			m.onDeath("node-3", n)
			start := time.Now()
			for isHeld(m, "node-3") {
				if time.Since(start) > 2*time.Second {
					t.Fatal("node-3 still held 2 s after its death was reported")
				}
				time.Sleep(time.Millisecond)
			}
			if got := m.Alive(); !slices.Equal(got, tc.want) {
				t.Errorf("Alive = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJoinRound(t *testing.T) {
	var peers []netip.AddrPort
	for i := range 10 {
		peers = append(peers, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)}), DefaultPort))
	}
	if got := joinRound(slices.Clone(peers[:maxJoins])); !slices.Equal(got, peers[:maxJoins]) {
		t.Errorf("joinRound of %d peers = %v, want all of them", maxJoins, got)
	}
	seen := map[netip.AddrPort]bool{}
	for range 100 {
		got := joinRound(slices.Clone(peers))
		if len(got) != maxJoins {
			t.Fatalf("joinRound of %d peers tried %d, want %d", len(peers), len(got), maxJoins)
		}
		for _, p := range got {
			seen[p] = true
		}
	}
	if len(seen) != len(peers) {
		t.Errorf("100 rounds tried %d of the %d peers, want every one", len(seen), len(peers))
	}
}
