package speaker

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
)

func TestAPICutOff(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	ok := func(since float64) apiState { return apiState{since: sec(since)} }
	lost := func(since float64) apiState { return apiState{lost: true, since: sec(since)} }
	cases := []struct {
		name   string
		states map[string]apiState
		now    time.Time
		cut    []string
		next   time.Time
	}{
		{"nobody lost it", map[string]apiState{"a": ok(0), "b": ok(0)}, sec(60), nil, time.Time{}},
		{"an older speaker says nothing", map[string]apiState{"a": lost(10), "b": {}}, sec(15), []string{"a"}, time.Time{}},
		{"one node, not yet long enough", map[string]apiState{"a": lost(10), "b": ok(0), "c": ok(0)}, sec(12), nil, sec(15)},
		{"one node, long enough", map[string]apiState{"a": lost(10), "b": ok(0), "c": ok(0)}, sec(15), []string{"a"}, time.Time{}},
		{"everyone lost it within the delay", map[string]apiState{"a": lost(10), "b": lost(11), "c": lost(12)}, sec(60), nil, time.Time{}},
		{"back for one, not yet for long: nobody cut", map[string]apiState{"a": ok(60), "b": lost(0), "c": lost(0)}, sec(62), nil, sec(65)},
		{"one lags the others back", map[string]apiState{"a": ok(60), "b": ok(60), "c": lost(0)}, sec(66), []string{"c"}, time.Time{}},
		// A speaker started during the outage (at 30) joins when the API
		// server is back (60.7), before the others have seen it back.
		// It reaches the API server since its caches synced (Start), not
		// since it started: counted from 30, it would cut the others off.
		{"a speaker that joins as the API server returns", map[string]apiState{"a": ok(60.7), "b": lost(0), "c": lost(0)}, sec(61), nil, sec(65.7)},
		{"the same, counted from its start", map[string]apiState{"a": ok(30), "b": lost(0), "c": lost(0)}, sec(61), []string{"b", "c"}, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cut, next := cutOff(c.states, c.now)
			if got := slices.Sorted(maps.Keys(cut)); !slices.Equal(got, c.cut) {
				t.Errorf("cut = %v, want %v", got, c.cut)
			}
			if !next.Equal(c.next) {
				t.Errorf("next = %v, want %v", next, c.next)
			}
		})
	}
}

func TestMeta(t *testing.T) {
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	at := time.UnixMilli(1796544000123)
	for _, m := range []memberMeta{
		{api: apiState{since: at}},
		{api: apiState{lost: true, since: at}},
		{api: apiState{since: at}, joined: at.Add(time.Second)},
		{api: apiState{since: at}, move: announce.Move{IP: netip.MustParseAddr("2001:db8::5"), To: "node-2.example"}},
	} {
		enc := encodeMeta(ifaces, m, 500)
		got := decodeMeta(enc)
		if got.api.lost != m.api.lost || !got.api.since.Equal(m.api.since) || !got.joined.Equal(m.joined) || got.move != m.move {
			t.Errorf("%q: %+v, want %+v", enc, got, m)
		}
		// Speakers that do not know the items read the interfaces alone.
		if got := decodeIfaces(enc); !slices.Equal(got, ifaces) {
			t.Errorf("%q: interfaces %v, want %v", enc, got, ifaces)
		}
	}
	if got := decodeMeta("eth0=02:00:00:00:00:01"); got != (memberMeta{}) {
		t.Errorf("no items: %+v", got)
	}
}

func TestNewMembers(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	cases := []struct {
		name   string
		joined map[string]time.Time
		now    time.Time
		want   []string
		next   time.Time
	}{
		{"one joins an old cluster", map[string]time.Time{"a": sec(0), "b": sec(1), "c": sec(58)}, sec(60), []string{"c"}, sec(63)},
		{"its probation is over", map[string]time.Time{"a": sec(0), "b": sec(1), "c": sec(58)}, sec(63), nil, time.Time{}},
		{"joined together: none new", map[string]time.Time{"a": sec(58), "b": sec(58.3), "c": sec(59)}, sec(60), nil, time.Time{}},
		{"an older speaker is the oldest", map[string]time.Time{"a": {}, "c": sec(58)}, sec(60), []string{"c"}, sec(63)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, next := newMembers(c.joined, c.now)
			if g := slices.Sorted(maps.Keys(got)); !slices.Equal(g, c.want) || !next.Equal(c.next) {
				t.Errorf("newMembers = %v, %v; want %v, %v", g, next, c.want, c.next)
			}
		})
	}
}

func TestOverlaid(t *testing.T) {
	sa := func(name, rv, node string) v1alpha1.ServiceAnnouncement {
		a := v1alpha1.ServiceAnnouncement{}
		a.Namespace, a.Name, a.ResourceVersion = "ns", name, rv
		a.Status.Announcers = []v1alpha1.Announcer{{IP: "198.51.100.1", Node: node}}
		return a
	}
	nodesOf := func(anns []v1alpha1.ServiceAnnouncement) map[string]string {
		out := map[string]string{}
		for _, a := range anns {
			out[a.Name] = a.Status.Announcers[0].Node
		}
		return out
	}
	s := &Speaker{}
	cache := []v1alpha1.ServiceAnnouncement{sa("a", "10", "node-1"), sa("b", "12", "node-2")}
	if got := s.overlaid(cache); !maps.Equal(nodesOf(got), map[string]string{"a": "node-1", "b": "node-2"}) {
		t.Errorf("no overlay: %v", nodesOf(got))
	}
	// The API server says a moved to node-2 (rv 15) and c exists; b's
	// cached copy is as recent.
	s.setOverlay([]v1alpha1.ServiceAnnouncement{sa("a", "15", "node-2"), sa("b", "12", "node-2"), sa("c", "14", "node-3")})
	want := map[string]string{"a": "node-2", "b": "node-2", "c": "node-3"}
	if got := s.overlaid(cache); !maps.Equal(nodesOf(got), want) {
		t.Errorf("behind: %v, want %v", nodesOf(got), want)
	}
	if s.overlay == nil {
		t.Fatal("overlay dropped while the cache is behind")
	}
	// The cache catches up, and goes further for a.
	cache = []v1alpha1.ServiceAnnouncement{sa("a", "16", "node-3"), sa("b", "12", "node-2"), sa("c", "14", "node-3")}
	want = map[string]string{"a": "node-3", "b": "node-2", "c": "node-3"}
	if got := s.overlaid(cache); !maps.Equal(nodesOf(got), want) {
		t.Errorf("caught up: %v, want %v", nodesOf(got), want)
	}
	if s.overlay != nil {
		t.Error("overlay kept once the cache caught up")
	}
}
