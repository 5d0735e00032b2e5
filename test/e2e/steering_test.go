package e2e

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labcluster"
)

// steerInterval is the rebalancing interval of TestLayer2Steering's
// speakers: short, so that the test sees several moves.
const steerInterval = 2 * time.Second

// steerIPs are TestLayer2Steering's six addresses, one Service each
// (steer/s0 ... steer/s5).
var steerIPs = func() []netip.Addr {
	var out []netip.Addr
	ip := netip.MustParseAddr("198.51.100.104")
	for range 6 {
		out = append(out, ip)
		ip = ip.Next()
	}
	return out
}()

// TestLayer2Steering is where Layer 2 addresses go when no node fails:
// the preferred node (L2Announcement.nodePreference), away from a
// cordoned node, back when it is uncordoned, and evenly spread again
// after a failure. Every move but the failure's is a planned handover:
// the client's probes see no loss and the samples never two MACs.
func TestLayer2Steering(t *testing.T) {
	c := newCluster(t, 3, fmt.Sprintf("--rebalance-interval=%s", steerInterval))
	c.namespace("steer")
	c.label("node-3", "zone", "a")
	c.apply(&v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "steer"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.104-198.51.100.109"}},
	})
	c.apply(steerAnnouncement(true))
	for i, ip := range steerIPs {
		svc := service("steer", fmt.Sprintf("s%d", i), 80)
		svc.Spec.LoadBalancerIP = ip.String()
		c.apply(svc)
		c.backends(ip)
		c.waitIPs("steer", svc.Name, ip.String())
	}

	steps := []struct {
		name string
		f    func(*testing.T)
	}{
		{"Preference", c.testPreference},
		{"Drain", c.testDrain},
		{"Uncordon", c.testUncordon},
		{"Rebalance", c.testRebalance},
		{"Maintenance", c.testMaintenance},
		{"AfterFailure", c.testRebalanceAfterFailure},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) {
			t.Fatalf("stopping after %s failed: the later steps build on it", s.name)
		}
	}
}

// steerAnnouncement announces pool "steer", preferring nodes labelled
// zone=a when prefer is set.
func steerAnnouncement(prefer bool) *v1alpha1.L2Announcement {
	a := &v1alpha1.L2Announcement{
		ObjectMeta: metav1.ObjectMeta{Name: "steer"},
		Spec:       v1alpha1.L2AnnouncementSpec{IPPools: []string{"steer"}},
	}
	if prefer {
		a.Spec.NodePreference = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
	}
	return a
}

// steerOwners returns the node each steer address's ServiceAnnouncement
// names ("" if none yet).
func (c *cluster) steerOwners() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for i, ip := range steerIPs {
		a, err := c.announcer("steer", fmt.Sprintf("s%d", i), ip)
		if err == nil {
			out[ip] = a.Node
		} else {
			out[ip] = ""
		}
	}
	return out
}

// perNode counts owners' addresses per node.
func perNode(owners map[netip.Addr]string) map[string]int {
	out := map[string]int{}
	for _, n := range owners {
		out[n]++
	}
	return out
}

// moveLog polls the owners every 100 ms until stopped and records each
// change: how many moves, and the shortest time between two.
type moveLog struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	moves []time.Time
	what  []string // each move, in words
	last  map[netip.Addr]string
	read  func() map[netip.Addr]string
}

func (c *cluster) logMoves() *moveLog {
	l := &moveLog{stop: make(chan struct{}), done: make(chan struct{}), last: c.steerOwners(), read: c.steerOwners}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			l.note(l.read())
		}
	}()
	return l
}

// note records the moves from the last owners seen to now.
func (l *moveLog) note(now map[netip.Addr]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, n := range now {
		if n != "" && n != l.last[ip] {
			l.moves = append(l.moves, time.Now())
			l.what = append(l.what, fmt.Sprintf("%s %s->%s at %s", ip, l.last[ip], n, time.Now().Format("15:04:05.000")))
			l.last[ip] = n
		}
	}
}

// end stops the log, with a last look at the owners (a move the caller
// just waited for may have come after the last poll), and returns the
// number of moves and the shortest time between two (0 with fewer than
// two).
func (l *moveLog) end() (int, time.Duration) {
	close(l.stop)
	<-l.done
	l.note(l.read())
	var shortest time.Duration
	for i := 1; i < len(l.moves); i++ {
		if d := l.moves[i].Sub(l.moves[i-1]); shortest == 0 || d < shortest {
			shortest = d
		}
	}
	return len(l.moves), shortest
}

// watchSteer starts a labcluster.Watch over the steer addresses: the
// client probes each every 10 ms and samples who answers every 200 ms.
func (c *cluster) watchSteer() *labcluster.Watch {
	c.t.Helper()
	w, err := c.Watch(labcluster.WatchOptions{IPs: steerIPs})
	if err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	return w
}

// checkLossless holds a Watch's report to a planned handover's promise:
// at most one probe per address unanswered (the last may be in flight),
// never two MACs, no stretch without an answer, and it returns the
// probes lost in all.
func (c *cluster) checkLossless(what string, r labcluster.Report) int {
	c.t.Helper()
	lost := 0
	for ip, ir := range r.IPs {
		n := ir.Probe.Sent - ir.Probe.Received
		lost += n
		if n > 1 {
			c.t.Errorf("%s: %s lost %d of %d probes", what, ip, n, ir.Probe.Sent)
		}
	}
	if err := r.Check(labcluster.Bounds{MaxGap: 300 * time.Millisecond, MaxDark: 300 * time.Millisecond}); err != nil {
		c.t.Errorf("%s: %v", what, err)
	}
	return lost
}

// cordon sets a Node's spec.unschedulable, as kubectl cordon and
// uncordon do.
func (c *cluster) cordon(node string, on bool) {
	c.t.Helper()
	var n corev1.Node
	if err := c.c.Get(c.ctx(), types.NamespacedName{Name: node}, &n); err != nil {
		c.t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	n.Spec.Unschedulable = on
	if err := c.c.Patch(c.ctx(), &n, patch); err != nil {
		c.t.Fatal(err)
	}
}

// testPreference: every address goes to node-3, the one node of the
// preferred zone.
func (c *cluster) testPreference(t *testing.T) {
	c.t = t
	c.eventually(20*time.Second, "every address on node-3", func() error {
		if got := perNode(c.steerOwners()); got["node-3"] != len(steerIPs) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	c.checkAnswer("steer", "s0", steerIPs[0])
}

// testDrain: node-3 is cordoned while the client probes: every address
// leaves it at once, each by a planned handover.
func (c *cluster) testDrain(t *testing.T) {
	c.t = t
	w := c.watchSteer()
	start := time.Now()
	c.cordon("node-3", true)
	var took time.Duration
	c.eventually(20*time.Second, "every address off node-3", func() error {
		owners := c.steerOwners()
		if got := perNode(owners); got["node-3"] != 0 || got[""] != 0 {
			return fmt.Errorf("per node %v", got)
		}
		took = time.Since(start)
		return nil
	})
	// The handovers went where the hash put them; the rebalancing then
	// evens them out between the two nodes left.
	even := map[string]int{"node-1": 3, "node-2": 3}
	c.eventually(6*(steerInterval+2*time.Second), "the addresses even on node-1 and node-2", func() error {
		if got := perNode(c.steerOwners()); !maps.Equal(got, even) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	time.Sleep(time.Second)
	r := w.Stop()
	lost := c.checkLossless("drain", r)
	t.Logf("cordon of node-3: %d addresses moved within %s, %d probes lost; %s", len(steerIPs), took.Round(time.Millisecond), lost, r)
	for i, ip := range steerIPs {
		c.checkAnswer("steer", fmt.Sprintf("s%d", i), ip)
	}
}

// testUncordon: node-3 is uncordoned: nothing moves back at once; then
// the rebalancing brings the addresses back to it, the preferred node,
// one at a time and without loss.
func (c *cluster) testUncordon(t *testing.T) {
	c.t = t
	w := c.watchSteer()
	before := c.steerOwners()
	moves := c.logMoves()
	c.cordon("node-3", false)
	time.Sleep(2 * steerInterval)
	if now := c.steerOwners(); !maps.Equal(now, before) {
		t.Errorf("addresses moved at once when node-3 was uncordoned: %v, then %v", before, now)
	}
	c.eventually(time.Duration(len(steerIPs)+3)*(steerInterval+2*time.Second), "every address back on node-3", func() error {
		if got := perNode(c.steerOwners()); got["node-3"] != len(steerIPs) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	time.Sleep(time.Second)
	n, shortest := moves.end()
	r := w.Stop()
	lost := c.checkLossless("back to the preferred node", r)
	t.Logf("uncordon of node-3: %d moves back, at least %s apart, %d probes lost; %s", n, shortest.Round(time.Millisecond), lost, r)
	if n != len(steerIPs) {
		t.Errorf("%d moves, want %d: one per address", n, len(steerIPs))
	}
	if n > 1 && shortest < steerInterval-200*time.Millisecond {
		t.Errorf("two moves %s apart, want at least the interval %s", shortest, steerInterval)
	}
}

// testRebalance: the preference goes; the addresses, all on node-3,
// spread evenly over the three nodes, one at a time and without loss.
func (c *cluster) testRebalance(t *testing.T) {
	c.t = t
	w := c.watchSteer()
	moves := c.logMoves()
	c.apply(steerAnnouncement(false))
	even := map[string]int{"node-1": 2, "node-2": 2, "node-3": 2}
	c.eventually(time.Duration(len(steerIPs)+3)*(steerInterval+2*time.Second), "the addresses even", func() error {
		if got := perNode(c.steerOwners()); !maps.Equal(got, even) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	time.Sleep(steerInterval + time.Second) // no further move
	n, shortest := moves.end()
	r := w.Stop()
	lost := c.checkLossless("rebalancing", r)
	t.Logf("rebalancing 6/0/0 to 2/2/2: %d moves, at least %s apart, %d probes lost; %s", n, shortest.Round(time.Millisecond), lost, r)
	if n != 4 {
		t.Errorf("%d moves, want 4", n)
	}
	if got := perNode(c.steerOwners()); !maps.Equal(got, even) {
		t.Errorf("per node %v after the end, want %v", got, even)
	}
}

// testMaintenance: node-1 is labelled ironlb.io/maintenance while the
// client probes: its addresses are handed over at once, as for a cordon;
// the label gone, the rebalancing evens them out again.
func (c *cluster) testMaintenance(t *testing.T) {
	c.t = t
	w := c.watchSteer()
	c.label("node-1", v1alpha1.LabelMaintenance, "")
	start := time.Now()
	var took time.Duration
	c.eventually(20*time.Second, "every address off node-1", func() error {
		if got := perNode(c.steerOwners()); got["node-1"] != 0 || got[""] != 0 {
			return fmt.Errorf("per node %v", got)
		}
		took = time.Since(start)
		return nil
	})
	time.Sleep(time.Second)
	c.label("node-1", v1alpha1.LabelMaintenance, "-")
	even := map[string]int{"node-1": 2, "node-2": 2, "node-3": 2}
	c.eventually(6*(steerInterval+2*time.Second), "the addresses even again", func() error {
		if got := perNode(c.steerOwners()); !maps.Equal(got, even) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	r := w.Stop()
	lost := c.checkLossless("maintenance", r)
	t.Logf("node-1 in maintenance: its addresses left within %s, came back after; %d probes lost; %s", took.Round(time.Millisecond), lost, r)
}

// testRebalanceAfterFailure: node-1 fails; its addresses fail over; when
// it comes back it takes nothing back at once, and the rebalancing then
// evens the addresses out again without loss.
func (c *cluster) testRebalanceAfterFailure(t *testing.T) {
	c.t = t
	h := c.host("node-1")
	if err := c.speaker("node-1").Kill(); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDown(); err != nil {
		t.Fatal(err)
	}
	c.eventually(15*time.Second, "node-1's addresses failed over", func() error {
		if got := perNode(c.steerOwners()); got["node-1"] != 0 || got[""] != 0 {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	during := c.steerOwners()
	if err := h.LinkUp(); err != nil {
		t.Fatal(err)
	}
	w := c.watchSteer()
	moves := c.logMoves()
	c.startSpeaker("node-1")
	time.Sleep(3 * time.Second)
	if now := c.steerOwners(); !maps.Equal(now, during) {
		t.Errorf("addresses moved at once when node-1 came back: %v, then %v", during, now)
	}
	even := map[string]int{"node-1": 2, "node-2": 2, "node-3": 2}
	c.eventually(30*time.Second, "the addresses even again", func() error {
		if got := perNode(c.steerOwners()); !maps.Equal(got, even) {
			return fmt.Errorf("per node %v", got)
		}
		return nil
	})
	n, _ := moves.end()
	r := w.Stop()
	lost := c.checkLossless("rebalancing after a failure", r)
	t.Logf("node-1 back after a failure: owners during the failure %v; %d moves to even out (%v), %d probes lost; %s", during, n, moves.what, lost, r)
	if n != 2 {
		t.Errorf("%d moves, want 2", n)
	}
	if got := slices.Sorted(maps.Values(c.steerOwners())); len(got) != len(steerIPs) {
		t.Errorf("owners %v", got)
	}
}
