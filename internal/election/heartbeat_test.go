package election

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestJudgeSilences checks the rules of heartbeat.go on a member's state,
// with no network: who is counted out, and when this member finds itself
// cut off or stalled.
func TestJudgeSilences(t *testing.T) {
	now := time.Now()
	ms := time.Millisecond
	beat := func(ago time.Duration, pingFailed bool) *heartbeat { return beatAt(now, ago, pingFailed) }
	for _, tc := range []struct {
		name    string
		meta    map[string]string // members other than self; default "m:"
		beats   map[string]*heartbeat
		stalled time.Duration
		want    []string // counted out
	}{{
		name:  "all heard",
		beats: map[string]*heartbeat{"b": beat(10*ms, false), "c": beat(20*ms, false)},
	}, {
		name:  "silent and the ping failed",
		beats: map[string]*heartbeat{"b": beat(210*ms, true), "c": beat(20*ms, false)},
		want:  []string{"b"},
	}, {
		name:  "silent but no failed ping yet",
		beats: map[string]*heartbeat{"b": beat(210*ms, false), "c": beat(20*ms, false)},
	}, {
		name: "silent here, heard by another",
		beats: map[string]*heartbeat{"b": beat(210*ms, true), "c": func() *heartbeat {
			hb := beat(20*ms, false)
			hb.reported, hb.stale = true, []string{}
			return hb
		}()},
	}, {
		name: "silent here and to the others",
		beats: map[string]*heartbeat{"b": beat(210*ms, true), "c": func() *heartbeat {
			hb := beat(20*ms, false)
			hb.reported, hb.stale = true, []string{"b"}
			return hb
		}()},
		want: []string{"b"},
	}, {
		name:  "late, not silent long enough",
		beats: map[string]*heartbeat{"b": beat(150*ms, true), "c": beat(20*ms, false)},
	}, {
		name:  "cut off: the first silent one takes the stale ones with it",
		beats: map[string]*heartbeat{"b": beat(210*ms, true), "c": beat(190*ms, false)},
		want:  []string{"b", "c"},
	}, {
		name:    "this member stalled: nobody judged",
		beats:   map[string]*heartbeat{"b": beat(300*ms, true), "c": beat(300*ms, true)},
		stalled: 150 * ms,
	}, {
		name: "sick: late again and again, given three times its longest gap",
		beats: map[string]*heartbeat{
			"b": func() *heartbeat {
				hb := beat(250*ms, true)
				for i := range sickLate {
					hb.late = append(hb.late, now.Add(-time.Duration(i+1)*time.Second))
				}
				hb.maxGap, hb.maxGapAt = 120*ms, now.Add(-2*time.Second)
				return hb
			}(),
			"c": beat(20*ms, false),
		},
	}, {
		name: "sick long ago: the base timeout again",
		beats: map[string]*heartbeat{
			"b": func() *heartbeat {
				hb := beat(250*ms, true)
				for i := range sickLate {
					hb.late = append(hb.late, now.Add(-time.Duration(i+1)*time.Minute))
				}
				hb.maxGap, hb.maxGapAt = 120*ms, now.Add(-time.Minute)
				return hb
			}(),
			"c": beat(20*ms, false),
		},
		want: []string{"b"},
	}, {
		name: "silent, but its process holds its port: frozen, not dead",
		beats: map[string]*heartbeat{"b": func() *heartbeat {
			hb := beat(550*ms, true)
			hb.frozen = true
			return hb
		}(), "c": beat(20*ms, false)},
	}, {
		name: "frozen and silent for holdMax",
		beats: map[string]*heartbeat{"b": func() *heartbeat {
			hb := beat(holdMax, true)
			hb.frozen = true
			return hb
		}(), "c": beat(20*ms, false)},
		want: []string{"b"},
	}, {
		name:  "never heard: left to memberlist",
		beats: map[string]*heartbeat{"c": beat(20*ms, false)},
	}, {
		name:  "restarting in place: not watched",
		meta:  map[string]string{"b": restartMeta(now.Add(time.Minute), "")},
		beats: map[string]*heartbeat{"b": beat(300*ms, true), "c": beat(20*ms, false)},
	}, {
		name:  "leaving: not watched",
		meta:  map[string]string{"b": metaLeaving},
		beats: map[string]*heartbeat{"b": beat(300*ms, true), "c": beat(20*ms, false)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Options{Name: "a"})
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"a", "b", "c"} {
				meta := "m:"
				if v, ok := tc.meta[name]; ok {
					meta = v
				}
				m.members[name] = member{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), DefaultPort), meta: meta}
			}
			m.beats = tc.beats
			changed, _ := m.judgeSilences(nil, now, tc.stalled)
			var got []string
			for name, hb := range m.beats {
				if hb.silent {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counted out (-want +got):\n%s", diff)
			}
			if changed != (len(tc.want) > 0) {
				t.Errorf("judgeSilences reported %v, want %v", changed, len(tc.want) > 0)
			}
			if tc.stalled > 0 {
				if got, want := m.beats["b"].last, now.Add(-300*ms+tc.stalled); !got.Equal(want) {
					t.Errorf("after a stall of %s, b last heard %s ago, want %s", tc.stalled, now.Sub(got), now.Sub(want))
				}
			}
		})
	}
}

// beatAt is a member's heartbeat state at now: heard ago, and whether a
// ping sent since failed. confirming is at its bound so that a judgement
// starts no ping (the judges' tests run no memberlist).
func beatAt(now time.Time, ago time.Duration, pingFailed bool) *heartbeat {
	hb := &heartbeat{last: now.Add(-ago), confirming: maxConfirming}
	if pingFailed {
		hb.failedPing = now.Add(-ago / 2)
	}
	return hb
}

func TestHeartbeatRecord(t *testing.T) {
	now := time.Now()
	every := DefaultHeartbeatInterval
	var hb heartbeat
	for i := range 20 {
		// A member starved to a tenth of a CPU: a heartbeat every 100
		// ms, and once 180 ms.
		gap := 100 * time.Millisecond
		if i == 10 {
			gap = 180 * time.Millisecond
		}
		now = now.Add(gap)
		hb.record(now, gap, every)
	}
	if got, want := hb.timeout(now, DefaultHeartbeatTimeout), 540*time.Millisecond; got != want {
		t.Errorf("starved member: timeout %s, want %s", got, want)
	}
	hb.record(now.Add(every), every, every)
	if got, want := hb.timeout(now.Add(sickWindow+time.Second), DefaultHeartbeatTimeout), DefaultHeartbeatTimeout; got != want {
		t.Errorf("%s later: timeout %s, want %s", sickWindow+time.Second, got, want)
	}
	var healthy heartbeat
	healthy.record(now, 145*time.Millisecond, every) // one hiccup
	if got, want := healthy.timeout(now, DefaultHeartbeatTimeout), DefaultHeartbeatTimeout; got != want {
		t.Errorf("one late heartbeat: timeout %s, want %s", got, want)
	}
}

func TestParseHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		name  string
		stale []string
		ok    bool
	}{
		{heartbeatPrefix + "node-1", "node-1", []string{}, true},
		{heartbeatPrefix + "node-1 node-2 node-3", "node-1", []string{"node-2", "node-3"}, true},
		{string(appendHeartbeat(nil, "node-1", []string{"node-2"})), "node-1", []string{"node-2"}, true},
		{heartbeatPrefix + " node-2", "", nil, false},
		{heartbeatPrefix, "", nil, false},
		{"node-1", "", nil, false},
		{"", "", nil, false},
	} {
		name, stale, ok := parseHeartbeat([]byte(tc.in))
		if name != tc.name || ok != tc.ok || !cmp.Equal(stale, tc.stale) {
			t.Errorf("parseHeartbeat(%q) = %q, %q, %v, want %q, %q, %v", tc.in, name, stale, ok, tc.name, tc.stale, tc.ok)
		}
	}
}

// FuzzParseHeartbeat: any payload a peer (or anyone, without a key) sends
// is read without a panic, and a heartbeat names its sender.
func FuzzParseHeartbeat(f *testing.F) {
	f.Add([]byte(heartbeatPrefix + "node-1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if name, _, ok := parseHeartbeat(b); ok && name == "" {
			t.Errorf("parseHeartbeat(%q) accepted an empty name", b)
		}
	})
}

// TestHeardLately checks the patience the check of a reported death
// (verify.go) borrows from the heartbeat judge: a starved member is alive
// through a gap the judge would wait out, a healthy one only within
// HeartbeatTimeout.
func TestHeardLately(t *testing.T) {
	now := time.Now()
	ms := time.Millisecond
	starved := func() *heartbeat {
		// Heartbeats in bursts 100 ms apart, once 300 ms: sick, with
		// three times 300 ms to wait.
		var hb heartbeat
		at := now.Add(-10 * time.Second)
		for i := range 20 {
			gap := 100 * ms
			if i == 15 {
				gap = 300 * ms
			}
			at = at.Add(gap)
			hb.record(at, gap, DefaultHeartbeatInterval)
		}
		return &hb
	}
	for _, tc := range []struct {
		name  string
		hb    *heartbeat
		after time.Duration // since the last heartbeat
		want  bool
	}{
		{"never heard", &heartbeat{}, 0, false},
		{"healthy, just heard", beatAt(now, 0, false), 20 * ms, true},
		{"healthy, silent past the timeout", beatAt(now, 0, false), 250 * ms, false},
		{"starved, in a gap the judge waits out", starved(), 250 * ms, true},
		{"starved, in a long gap", starved(), 850 * ms, true},
		{"starved, silent past its timeout", starved(), 950 * ms, false},
	} {
		last := tc.hb.last
		if last.IsZero() {
			last = now
		}
		if got := tc.hb.heardLately(last.Add(tc.after), DefaultHeartbeatTimeout); got != tc.want {
			t.Errorf("%s: heard lately %s after the last heartbeat = %v, want %v", tc.name, tc.after, got, tc.want)
		}
	}
}

// TestHoldsPort checks what the judges learn from a member's gossip port:
// accepted while a process listens on it, whether it runs or not; refused
// once it is gone.
func TestHoldsPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr()
	// Nothing accepts: the kernel does, as for a frozen process.
	if !holdsPort(addr, time.Second) {
		t.Errorf("a listening port that nobody accepts on: holdsPort false, want true")
	}
	l.Close()
	if holdsPort(addr, time.Second) {
		t.Errorf("a closed port: holdsPort true, want false")
	}
}
