package election

import (
	"slices"
	"testing"
	"time"
)

func TestParseRestart(t *testing.T) {
	until := time.UnixMilli(1796000000123)
	for _, tc := range []struct {
		meta      string
		ok        bool
		user      string
		untilWant time.Time
	}{
		{restartMeta(until, "!joined@1,eth0=aa"), true, "!joined@1,eth0=aa", until},
		{restartMeta(until, ""), true, "", until},
		{restartMeta(until, "a:b:c"), true, "a:b:c", until},
		{"m:" + "x", false, "", time.Time{}},
		{metaLeaving, false, "", time.Time{}},
		{"r:", false, "", time.Time{}},
		{"r:12x:meta", false, "", time.Time{}},
		{"r:123", false, "", time.Time{}},
	} {
		got, user, ok := parseRestart(tc.meta)
		if ok != tc.ok || user != tc.user || !got.Equal(tc.untilWant) {
			t.Errorf("parseRestart(%q) = %v, %q, %v; want %v, %q, %v", tc.meta, got, user, ok, tc.untilWant, tc.user, tc.ok)
		}
	}
	// userMeta reads through either prefix.
	if got := userMeta(restartMeta(until, "eth0=aa")); got != "eth0=aa" {
		t.Errorf("userMeta of a restart = %q", got)
	}
	if got := userMeta(metaPrefix + "eth0=aa"); got != "eth0=aa" {
		t.Errorf("userMeta = %q", got)
	}
}

// waitRestarting waits until m's Restarting satisfies cond.
func waitRestarting(m *Members, timeout time.Duration, cond func([]string) bool) bool {
	deadline := time.After(timeout)
	for {
		if cond(m.Restarting()) {
			return true
		}
		select {
		case <-m.Changes():
		case <-time.After(20 * time.Millisecond): // Restarting also ends by the clock
		case <-deadline:
			return false
		}
	}
}

// TestRestartKeepsPlace: a member that stops to restart drops out of the
// others' Alive but stays in their Restarting, with its metadata, until
// it is back (then it is alive and no longer restarting) or its time runs
// out (then it is forgotten, as after a failure). A member stopped
// without Restart is never listed.
func TestRestartKeepsPlace(t *testing.T) {
	opts := clusterOptions(t, 3, nil)
	for i := range opts {
		opts[i].Meta = "meta-of-" + opts[i].Name
	}
	ms := startClusterOpts(t, opts)
	victim := ms[0]
	has := func(name string) func([]string) bool {
		return func(r []string) bool { return slices.Contains(r, name) }
	}

	// Back in time.
	if err := victim.Restart(time.Now().Add(4*time.Second), time.Second); err != nil {
		t.Fatal(err)
	}
	wait := watchGone(ms[1:], victim.name, 5*time.Second)
	t0 := time.Now()
	victim.stop(t)
	took, err := wait(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restarting member out of Alive after %v", took)
	for _, m := range ms[1:] {
		if !waitRestarting(m.Members, time.Second, has(victim.name)) {
			t.Fatalf("%s does not list %s as restarting: %q", m.name, victim.name, m.Restarting())
		}
		if meta, ok := m.Meta(victim.name); !ok || meta != victim.opts.Meta {
			t.Errorf("%s: Meta(%s) = %q, %v; want %q", m.name, victim.name, meta, ok, victim.opts.Meta)
		}
		if isHeld(m.Members, victim.name) {
			t.Errorf("%s verifies the death of a member that said it restarts", m.name)
		}
	}
	ms[0] = startMember(t, victim.opts)
	waitConverged(t, ms, names(ms), 10*time.Second)
	for _, m := range ms[1:] {
		if r := m.Restarting(); len(r) != 0 {
			t.Errorf("%s still lists %q as restarting after %s came back", m.name, r, victim.name)
		}
	}

	// Not back in time.
	victim = ms[0]
	if err := victim.Restart(time.Now().Add(1500*time.Millisecond), time.Second); err != nil {
		t.Fatal(err)
	}
	victim.stop(t)
	for _, m := range ms[1:] {
		if !waitRestarting(m.Members, time.Second, has(victim.name)) {
			t.Fatalf("%s does not list %s as restarting: %q", m.name, victim.name, m.Restarting())
		}
	}
	start := time.Now()
	for _, m := range ms[1:] {
		if !waitRestarting(m.Members, 3*time.Second, func(r []string) bool { return len(r) == 0 }) {
			t.Fatalf("%s still lists %q 3 s later", m.name, m.Restarting())
		}
		if _, ok := m.Meta(victim.name); ok {
			t.Errorf("%s still has metadata of %s after its time ran out", m.name, victim.name)
		}
	}
	t.Logf("forgotten %v after the stop", time.Since(start).Round(time.Millisecond))

	// A plain stop is a leave: never listed.
	ms[1].stop(t)
	if _, ok := waitAlive(ms[2].Members, 5*time.Second, func(a []string) bool { return !slices.Contains(a, ms[1].name) }); !ok {
		t.Fatalf("%s still sees %s", ms[2].name, ms[1].name)
	}
	time.Sleep(300 * time.Millisecond)
	if r := ms[2].Restarting(); len(r) != 0 {
		t.Errorf("a member that left is listed as restarting: %q", r)
	}
}

// TestRestartNeedsRun: Restart before Run or after Leave fails, and a
// Leave after Restart does nothing.
func TestRestartNeedsRun(t *testing.T) {
	m, err := New(Options{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(time.Now().Add(time.Second), time.Second); err == nil {
		t.Error("Restart before Run succeeded")
	}
	ms := startCluster(t, 2, nil)
	if err := ms[0].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].Restart(time.Now().Add(time.Second), time.Second); err == nil {
		t.Error("Restart after Leave succeeded")
	}
	if err := ms[1].Restart(time.Now().Add(time.Second), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if ms[1].leaving.Load() {
		t.Error("Leave after Restart left")
	}
}
