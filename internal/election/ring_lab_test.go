package election

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// TestLabRing runs eight member processes on the lab LAN, enough to watch
// a ring with the default four peers (ring.go), and injects the faults
// whose verdicts the ring changes:
//
//   - all traffic between node-1 and node-2 (its watcher) dropped for 3 s:
//     one watcher's word must count nobody out, anywhere;
//   - node-5's link cut: every other member counts it out by its
//     watchers' reports, and node-5 finds itself cut off and counts the
//     others out, so that its speaker would answer for nothing;
//   - the link back: the cluster is whole again.
func TestLabRing(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 8})
	views, _ := startLabMembers(t, l)
	all := slices.Sorted(slices.Values(nodeNames(l)))
	if !views.settle(all, time.Second, 30*time.Second) {
		t.Fatalf("the cluster did not form: %s", views)
	}

	// A partition between a member and one of its watchers.
	heal := dropBetween(t, l.Node(2), l.Node(1).IPv4)
	t0 := time.Now()
	time.Sleep(3 * time.Second)
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	views.settle(all, time.Second, 10*time.Second)
	if n := views.spurious(t0, time.Now(), all, ""); n > 0 {
		t.Errorf("node-1 and node-2 cut from each other for 3 s: a member was missing from a view %d times: %s", n, views)
	}
	t.Logf("partition between node-1 and node-2 for %s: nobody counted out", t1.Sub(t0).Round(time.Millisecond))

	// A member's link cut.
	victim := l.Node(5)
	survivors := without(all, victim.Name)
	t2 := time.Now()
	if err := victim.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if !views.wait(5*time.Second, everyoneSees(survivors, survivors)) {
		t.Fatalf("%s cut off 5 s ago and still alive: %s", victim, views)
	}
	var took []time.Duration
	for _, s := range survivors {
		at, _ := views.firstAfter(s, t2, func(a []string) bool { return !slices.Contains(a, victim.Name) })
		took = append(took, at.Sub(t2))
	}
	alone, ok := views.firstAfter(victim.Name, t2, func(a []string) bool { return 2*len(a) <= len(all) })
	if !ok {
		t.Errorf("%s, cut off, still sees a majority: %s", victim, views)
	}
	t.Logf("link of %s cut: counted out by the others after %s (first) to %s (last); it saw no majority after %s",
		victim, slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond), alone.Sub(t2).Round(time.Millisecond))
	if n := views.spurious(t2, time.Now(), survivors, victim.Name); n > 0 {
		t.Errorf("a survivor was missing from a survivor's view %d times: %s", n, views)
	}
	if err := victim.LinkUp(); err != nil {
		t.Fatal(err)
	}
	if !views.wait(15*time.Second, everyoneSees(all, all)) {
		t.Fatalf("%s reconnected 15 s ago and the cluster is still split: %s", victim, views)
	}
}

// dropBetween drops every packet between h and peer, in h's namespace,
// until the returned function is called (the test's end calls it too).
func dropBetween(t *testing.T, h *labnet.Host, peer netip.Addr) func() error {
	t.Helper()
	ctx := context.Background()
	nft := func(args ...string) error {
		_, err := h.Run(ctx, "nft", args...)
		return err
	}
	const table = "ironlb-test-cut"
	healed := false
	heal := func() error {
		if healed {
			return nil
		}
		healed = true
		return nft("delete", "table", "inet", table)
	}
	t.Cleanup(func() { heal() })
	for _, args := range [][]string{
		{"add", "table", "inet", table},
		{"add", "chain", "inet", table, "in { type filter hook input priority 0; }"},
		{"add", "chain", "inet", table, "out { type filter hook output priority 0; }"},
		{"add", "rule", "inet", table, "in", "ip", "saddr", peer.String(), "drop"},
		{"add", "rule", "inet", table, "out", "ip", "daddr", peer.String(), "drop"},
	} {
		if err := nft(args...); err != nil {
			t.Fatal(err)
		}
	}
	return heal
}
