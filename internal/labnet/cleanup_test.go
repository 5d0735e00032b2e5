package labnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.state != "Z" && st.state != "X"
}

// assertGone checks that nothing of the lab with suffix is left: no
// namespace (in /run/netns or in `ip netns list`), no marker.
func assertGone(t *testing.T, suffix string) {
	t.Helper()
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if s, ok := parseNSName(e.Name()); ok && s == suffix {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), nsPrefix+suffix+"-") {
		t.Errorf("ip netns list still shows lab %s:\n%s", suffix, out)
	}
	if _, err := os.Stat(markerPath(suffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("marker of lab %s left behind (stat: %v)", suffix, err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	Require(t)
	l, err := New(Options{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // in case a check below fails first
	ctx := t.Context()
	if got := len(l.Namespaces()); got != 5 { // switch, cp, 2 nodes, client
		t.Errorf("%d namespaces, want 5: %v", got, l.Namespaces())
	}
	p, err := l.Node(1).Start(ctx, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Node(2).ServeHTTP(ctx, l.Node(2).IPv4, 80); err != nil {
		t.Fatal(err)
	}
	prober, err := l.Client().ProbeUDP(ctx, netip.AddrPortFrom(l.Node(2).IPv4, 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := l.Dir()

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertGone(t, l.Suffix())
	select {
	case <-p.Done():
	default:
		t.Error("Close returned before its process was reaped")
	}
	if alive(p.PID()) {
		t.Errorf("process %d survived Close", p.PID())
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("log directory %s survived Close (stat: %v)", dir, err)
	}
	prober.Stop() // already stopped by Close; must not block or panic
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Node(1).Start(ctx, "sleep", "1"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestNewFailureCleansUp is not parallel, so no other lab of this process
// is being built while it looks for markers.
func TestNewFailureCleansUp(t *testing.T) {
	Require(t)
	if _, err := New(Options{Nodes: MaxNodes + 1}); err == nil {
		t.Error("New accepted too many nodes")
	}
	// A log directory that cannot be created fails New after the marker
	// was written; nothing may be left.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := labSuffixes(t)
	if _, err := New(Options{Dir: f}); err == nil {
		t.Fatal("New succeeded with a file as its directory")
	}
	for s := range labSuffixes(t) {
		if m, err := readMarker(s); !before[s] && err == nil && m.PID == os.Getpid() {
			t.Errorf("failed New left marker %s", s)
		}
	}
}

// labSuffixes lists the markers present now.
func labSuffixes(t *testing.T) map[string]bool {
	entries, err := os.ReadDir(markerDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

// TestSweep fakes the leftovers of a crashed lab: a marker whose owner is
// gone (our own PID with another start time, as after PID reuse), its
// namespaces, and a process still running in one of them.
func TestSweep(t *testing.T) {
	Require(t)
	self := os.Getpid()
	start, err := procStartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	crashed := fakeLab(t, "lan", "node-1")
	live := fakeLab(t, "lan", "node-1")
	// A prefixed namespace without a marker is not ours: left alone.
	orphan, err := newSuffix()
	if err != nil {
		t.Fatal(err)
	}
	stranger := nsName(orphan, "node-1")
	if err := addNetns(stranger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delNetns(stranger) })

	cmd := exec.Command("ip", "netns", "exec", nsName(crashed, "node-1"), "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, func() bool {
		id, _ := statNS(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		want, _ := statNS(filepath.Join(netnsDir, nsName(crashed, "node-1")))
		return id == want
	})
	// Only now, with everything in place, does the owner "die": Sweeps of
	// other test binaries may run at any moment.
	if err := writeMarker(crashed, marker{PID: self, Start: start + 1}); err != nil {
		t.Fatal(err)
	}

	removed, err := Sweep()
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	t.Logf("swept %v", removed)
	// Another test binary's New may have swept it first, so check the
	// result, not who did it.
	assertGone(t, crashed)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the process in the crashed lab's namespace survived Sweep")
	}
	for _, name := range []string{nsName(live, "lan"), nsName(live, "node-1"), stranger} {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
			t.Errorf("Sweep removed %s, which is not a crashed lab's: %v", name, err)
		}
	}
	if _, err := os.Stat(markerPath(live)); err != nil {
		t.Errorf("Sweep removed a live lab's marker: %v", err)
	}
}

// fakeLab makes a marker owned by this process and namespaces for hosts, as
// a lab would, and returns its suffix; the test's cleanup removes them.
func fakeLab(t *testing.T, hosts ...string) string {
	t.Helper()
	suffix, _, err := reserveMarker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(markerPath(suffix)) })
	for _, h := range hosts {
		name := nsName(suffix, h)
		if err := addNetns(name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { delNetns(name) })
	}
	return suffix
}

// signalChildEnv makes the test binary act as the lab-owning child of
// TestSignalCleanup.
const signalChildEnv = "IRONLB_LAB_SIGNAL_CHILD"

// TestSignalCleanup runs a lab in a child process, sends it SIGTERM, and
// checks that the handler New installed removed everything and that the
// child then died of the signal, as if it had not been caught.
func TestSignalCleanup(t *testing.T) {
	if os.Getenv(signalChildEnv) == "1" {
		signalChild()
		return
	}
	t.Parallel()
	Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalCleanup$", "-test.count=1")
	cmd.Env = append(os.Environ(), signalChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var suffix string
	var pid int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "LAB" {
			suffix = f[1]
			pid, _ = strconv.Atoi(f[2])
			break
		}
	}
	if suffix == "" {
		t.Fatalf("child reported no lab (scan: %v)", sc.Err())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("child ended with %v, want killed by SIGTERM", err)
	}
	assertGone(t, suffix)
	waitFor(t, func() bool { return !alive(pid) })
}

// signalChild builds a lab with a running process, reports it, and waits
// for the signal.
func signalChild() {
	l, err := New(Options{Nodes: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := l.Node(1).Start(context.Background(), "sleep", "60")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("LAB %s %d\n", l.Suffix(), p.PID())
	time.Sleep(60 * time.Second)
	os.Exit(3) // the signal should have ended us long before
}
