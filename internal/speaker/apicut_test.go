package speaker

import (
	"maps"
	"slices"
	"testing"
	"time"

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

func TestMetaAPIState(t *testing.T) {
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	at := time.UnixMilli(1796544000123)
	for _, st := range []apiState{{since: at}, {lost: true, since: at}} {
		m := encodeMeta(ifaces, st, 500)
		if got := decodeAPIState(m); got.lost != st.lost || !got.since.Equal(st.since) {
			t.Errorf("%q: %+v, want %+v", m, got, st)
		}
		// Speakers that do not know the item read the interfaces alone.
		if got := decodeIfaces(m); !slices.Equal(got, ifaces) {
			t.Errorf("%q: interfaces %v, want %v", m, got, ifaces)
		}
	}
	if got := decodeAPIState("eth0=02:00:00:00:00:01"); got != (apiState{}) {
		t.Errorf("no item: %+v", got)
	}
}
