package election

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

func TestNeighbours(t *testing.T) {
	ring := []string{"a", "b", "c", "d", "e", "f"}
	for _, tc := range []struct {
		name  string
		k     int
		after bool
		want  []string
	}{
		{"a", 3, true, []string{"b", "c", "d"}},
		{"e", 3, true, []string{"f", "a", "b"}},
		{"b", 3, false, []string{"a", "f", "e"}},
		{"f", 2, false, []string{"e", "d"}},
		{"f", 5, true, []string{"a", "b", "c", "d", "e"}},
		// Not on the ring (a member that has just joined, seen by one
		// that has not heard of it yet): its place in name order.
		{"cc", 2, true, []string{"d", "e"}},
		{"cc", 2, false, []string{"c", "b"}},
		{"z", 2, true, []string{"a", "b"}},
	} {
		if got := neighbours(ring, tc.name, tc.k, tc.after); !slices.Equal(got, tc.want) {
			t.Errorf("neighbours(%s, %d, after %v) = %q, want %q", tc.name, tc.k, tc.after, got, tc.want)
		}
	}
}

// TestQuorumOut: a member is counted out when most of its watchers that
// are not counted out themselves suspect it, never on one watcher's word.
func TestQuorumOut(t *testing.T) {
	ring := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"}
	for _, tc := range []struct {
		name     string
		suspects map[string][]string // watcher: members it suspects
		want     []string
	}{{
		name: "nobody suspects anybody",
	}, {
		name:     "n1 dead: all four watchers suspect it",
		suspects: map[string][]string{"n2": {"n1"}, "n3": {"n1"}, "n4": {"n1"}, "n5": {"n1"}},
		want:     []string{"n1"},
	}, {
		name:     "three of four: still most",
		suspects: map[string][]string{"n2": {"n1"}, "n3": {"n1"}, "n5": {"n1"}},
		want:     []string{"n1"},
	}, {
		name:     "gossip cut between n1 and n2, n3: two of four is not most",
		suspects: map[string][]string{"n2": {"n1"}, "n3": {"n1"}},
	}, {
		name:     "one watcher's word",
		suspects: map[string][]string{"n4": {"n1"}},
	}, {
		name:     "a watcher suspecting a member it does not watch counts for nothing",
		suspects: map[string][]string{"n7": {"n1"}, "n8": {"n1"}, "n9": {"n1"}, "n2": {"n1"}},
	}, {
		name: "three neighbours dead together: counted out one after the other",
		// n1's watchers are n2, n3 (dead) and n4, n5; n3's are all alive.
		suspects: map[string][]string{
			"n3": {"n2"}, "n4": {"n1", "n2", "n3"}, "n5": {"n1", "n2", "n3"},
			"n6": {"n2", "n3"}, "n7": {"n3"},
		},
		want: []string{"n1", "n2", "n3"},
	}, {
		name: "wraps around: n9 is watched by n1..n4",
		suspects: map[string][]string{
			"n1": {"n9"}, "n2": {"n9"}, "n3": {"n9"},
		},
		want: []string{"n9"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var voted []string
			for _, ss := range tc.suspects {
				voted = append(voted, ss...)
			}
			slices.Sort(voted)
			out := quorumOut(ring, 4, slices.Compact(voted), func(w, name string) bool {
				return slices.Contains(tc.suspects[w], name)
			})
			var got []string
			for name := range out {
				got = append(got, name)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counted out (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJudgeRing checks the watcher's side of the ring on a member's state,
// with no network: it suspects only the members it watches, by the
// heartbeat rules, and asks whether it is cut off when most of them are
// silent.
func TestJudgeRing(t *testing.T) {
	now := time.Now()
	ms := time.Millisecond
	beat := func(ago time.Duration, pingFailed bool) *heartbeat { return beatAt(now, ago, pingFailed) }
	// Seven members, four peers: n4 watches n3, n2, n1 and n7.
	for _, tc := range []struct {
		name    string
		beats   map[string]*heartbeat
		stalled time.Duration
		want    []string // suspected
		cutOff  bool
	}{{
		name:  "all heard",
		beats: map[string]*heartbeat{"n3": beat(10*ms, false), "n2": beat(10*ms, false), "n1": beat(10*ms, false), "n7": beat(10*ms, false)},
	}, {
		name:  "n3 silent and its ping failed",
		beats: map[string]*heartbeat{"n3": beat(210*ms, true), "n2": beat(10*ms, false), "n1": beat(10*ms, false), "n7": beat(10*ms, false)},
		want:  []string{"n3"},
	}, {
		name:  "n3 silent, no failed ping yet",
		beats: map[string]*heartbeat{"n3": beat(210*ms, false), "n2": beat(10*ms, false), "n1": beat(10*ms, false), "n7": beat(10*ms, false)},
	}, {
		name: "a member it does not watch is not judged",
		beats: map[string]*heartbeat{"n5": beat(500*ms, true), "n6": beat(500*ms, true),
			"n3": beat(10*ms, false), "n2": beat(10*ms, false), "n1": beat(10*ms, false), "n7": beat(10*ms, false)},
	}, {
		name:   "three of four silent: is this member the one cut off?",
		beats:  map[string]*heartbeat{"n3": beat(210*ms, true), "n2": beat(150*ms, false), "n1": beat(120*ms, false), "n7": beat(10*ms, false)},
		want:   []string{"n3"},
		cutOff: true,
	}, {
		name:  "two of four silent: no",
		beats: map[string]*heartbeat{"n3": beat(210*ms, true), "n2": beat(150*ms, false), "n1": beat(10*ms, false), "n7": beat(10*ms, false)},
		want:  []string{"n3"},
	}, {
		name:    "this member stalled: nothing judged",
		beats:   map[string]*heartbeat{"n3": beat(300*ms, true), "n2": beat(300*ms, true), "n1": beat(300*ms, true), "n7": beat(300*ms, true)},
		stalled: 150 * ms,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Options{Name: "n4"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 7 {
				name := fmt.Sprintf("n%d", i+1)
				m.members[name] = member{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), DefaultPort), meta: "m:"}
			}
			m.beats = tc.beats
			ring, on := m.ringLocked()
			if !on {
				t.Fatal("seven members, four peers: not watching a ring")
			}
			_, pings, cutOff := m.judgeRingLocked(ring, now, tc.stalled)
			got := slices.Sorted(func(yield func(string) bool) {
				for name := range m.suspecting {
					if !yield(name) {
						return
					}
				}
			})
			if diff := cmp.Diff(tc.want, got, cmpEmpty); diff != "" {
				t.Errorf("suspected (-want +got):\n%s", diff)
			}
			if cutOff != tc.cutOff {
				t.Errorf("cut-off check %v, want %v", cutOff, tc.cutOff)
			}
			if len(pings) != 0 {
				t.Errorf("pings %v with every confirmation in flight", pings)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Transformer("nonNil", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})

// TestRingVerdicts drives a member's count through suspicion reports:
// one watcher's report moves nothing, most of them count the member out,
// and their clearing counts it in again.
func TestRingVerdicts(t *testing.T) {
	m, err := New(Options{Name: "n1", Tuning: Tuning{HeartbeatPeers: 3}})
	if err != nil {
		t.Fatal(err)
	}
	m.ml, m.started = nil, true
	for i := range 6 {
		name := fmt.Sprintf("n%d", i+1)
		m.members[name] = member{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), DefaultPort), meta: "m:"}
	}
	m.ringOn = true
	out := func() []string { // counted out, as Alive would leave them
		m.mu.Lock()
		defer m.mu.Unlock()
		var s []string
		for name := range m.members {
			if m.silentLocked(name) {
				s = append(s, name)
			}
		}
		slices.Sort(s)
		return s
	}
	// n3's watchers are n4, n5, n6.
	m.reported("n4", []string{"n3"})
	if got := out(); len(got) != 0 {
		t.Errorf("after one watcher's report: counted out %q", got)
	}
	m.reported("n2", []string{"n3"}) // not a watcher of n3
	if got := out(); len(got) != 0 {
		t.Errorf("after a non-watcher's report: counted out %q", got)
	}
	m.reported("n6", []string{"n3"})
	if got := out(); !slices.Equal(got, []string{"n3"}) {
		t.Errorf("after two of three watchers' reports: counted out %q, want n3", got)
	}
	m.reported("n6", nil)
	if got := out(); len(got) != 0 {
		t.Errorf("after a watcher cleared its report: counted out %q", got)
	}
	// Reports lapse when not repeated (their sender may have died).
	m.reported("n5", []string{"n3"})
	m.reported("n6", []string{"n3"})
	m.mu.Lock()
	ring, _ := m.ringLocked()
	m.countRingLocked(ring, time.Now().Add(suspicionTTL+time.Millisecond))
	m.mu.Unlock()
	if got := out(); len(got) != 0 {
		t.Errorf("after the reports lapsed: counted out %q", got)
	}
}

func TestParseSuspicions(t *testing.T) {
	for _, tc := range []struct {
		in       string
		name     string
		suspects []string
		ok       bool
	}{
		{string(appendNames(nil, suspicionPrefix, "node-1", []string{"node-2", "node-3"})), "node-1", []string{"node-2", "node-3"}, true},
		{suspicionPrefix + "node-1", "node-1", nil, true},
		{suspicionPrefix, "", nil, false},
		{heartbeatPrefix + "node-1 node-2", "", nil, false},
	} {
		name, suspects, ok := parseSuspicions([]byte(tc.in))
		if name != tc.name || ok != tc.ok || !slices.Equal(suspects, tc.suspects) {
			t.Errorf("parseSuspicions(%q) = %q, %q, %v, want %q, %q, %v", tc.in, name, suspects, ok, tc.name, tc.suspects, tc.ok)
		}
	}
}

// TestRingCrashDetected crashes a member of a cluster large enough to
// watch a ring, with memberlist's own detection slowed to seconds: the
// survivors must count it out by its watchers' reports alone, well
// before memberlist could, and each member sends its heartbeats to its
// watchers only.
func TestRingCrashDetected(t *testing.T) {
	const n, peers = 8, 3
	opts := clusterOptions(t, n, nil)
	for i := range opts {
		// memberlist alone: at least 2 s to probe, 8 s of suspicion.
		opts[i].Tuning = Tuning{ProbeInterval: 2 * time.Second, HeartbeatPeers: peers}
	}
	ms := startClusterOpts(t, opts)
	for _, m := range ms {
		if got := len(m.heartbeatTargets(nil)); got != peers {
			t.Errorf("%s sends heartbeats to %d members, want %d", m.name, got, peers)
		}
	}
	time.Sleep(4 * DefaultHeartbeatInterval) // watched from the first heartbeat
	victim := 3
	wait := watchGone(others(ms, victim), ms[victim].name, 2*time.Second)
	t0 := time.Now()
	ms[victim].crash()
	took, err := wait(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("crash of %s noticed by the first survivor after %s, by the last after %s", ms[victim].name,
		slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond))
	// Nobody else was counted out on the way.
	want := slices.DeleteFunc(names(ms), func(s string) bool { return s == ms[victim].name })
	for _, m := range others(ms, victim) {
		if got := m.Alive(); !slices.Equal(got, want) {
			t.Errorf("%s sees %q, want %q", m.name, got, want)
		}
	}
}

// BenchmarkHeartbeatTick is the heartbeat loop's own work at one tick (the
// judgement and the list of members to send to; no network), as clusters
// grow: with the ring it does not grow with the cluster.
//
//	go test ./internal/election -run '^$' -bench HeartbeatTick -benchmem
func BenchmarkHeartbeatTick(b *testing.B) {
	for _, n := range []int{5, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m, err := New(Options{Name: "node-0000"})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for i := range n {
				name := fmt.Sprintf("node-%04d", i)
				m.members[name] = member{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), DefaultPort), meta: "m:"}
				m.beats[name] = &heartbeat{last: now}
			}
			var to []memberlist.Address
			b.ReportAllocs()
			for b.Loop() {
				m.judgeSilences(nil, now, 0)
				to = m.heartbeatTargets(to[:0])
			}
			if want := min(n-1, DefaultHeartbeatPeers); n > DefaultHeartbeatPeers+1 && len(to) != want {
				b.Fatalf("%d heartbeat targets, want %d", len(to), want)
			}
		})
	}
}
