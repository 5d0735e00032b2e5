package speaker

import (
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

func TestQuorum(t *testing.T) {
	v := func(alive ...string) announce.View {
		v := announce.View{Nodes: nodes(ready("node-1"), ready("node-2"), ready("node-3"), ready("node-4"), announce.Node{Name: "gone"}), Alive: map[string]bool{}}
		for _, a := range alive {
			v.Alive[a] = true
		}
		return v
	}
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	tests := []struct {
		name string
		view announce.View
		seen map[string]bool
		want bool
	}{
		{"all alive", v("node-1", "node-2", "node-3"), set("node-1", "node-2", "node-3"), true},
		{"one of three down", v("node-1", "node-2"), set("node-1", "node-2", "node-3"), true},
		{"cut off: alone of three", v("node-1"), set("node-1", "node-2", "node-3"), false},
		{"half of four is no majority", v("node-1", "node-2"), set("node-1", "node-2", "node-3", "node-4"), false},
		{"two-node cluster keeps answering alone", v("node-1"), set("node-1", "node-2"), true},
		{"NotReady nodes do not count", v("node-1", "node-2"), set("node-1", "node-2", "node-3", "gone"), true},
		{"never-seen nodes do not count", v("node-1"), set("node-1"), true},
		{"no membership", announce.View{}, set("node-1", "node-2", "node-3"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := quorum(tt.view, "node-1", tt.seen); got != tt.want {
				t.Errorf("quorum = %v (%s), want %v", got, why, tt.want)
			}
		})
	}
}

func TestSettled(t *testing.T) {
	three := nodes(ready("node-1"), ready("node-2"), ready("node-3"), announce.Node{Name: "node-4"})
	alive := func(names ...string) announce.View {
		v := announce.View{Nodes: three, Alive: map[string]bool{}}
		for _, n := range names {
			v.Alive[n] = true
		}
		return v
	}
	tests := []struct {
		name   string
		view   announce.View
		joined bool
		since  time.Duration
		want   bool
	}{
		{"alone at start", alive("node-1"), false, 0, false},
		{"alone, grace nearly over", alive("node-1"), false, startupGrace - time.Millisecond, false},
		{"heard of one other by gossip, not joined: it may not know the rest", alive("node-1", "node-3"), false, 0, false},
		{"joined one other: it knows the whole membership", alive("node-1", "node-3"), true, 0, true},
		{"every Ready node joined", alive("node-1", "node-2", "node-3"), false, 0, true},
		{"alone, grace over", alive("node-1"), false, startupGrace, true},
		{"no membership", announce.View{Nodes: three}, false, 0, true},
		{"single-node cluster", announce.View{Nodes: nodes(ready("node-1")), Alive: map[string]bool{"node-1": true}}, false, 0, true},
	}
	for _, tt := range tests {
		if got := settled(tt.view, tt.joined, tt.since); got != tt.want {
			t.Errorf("%s: settled = %v, want %v", tt.name, got, tt.want)
		}
	}
}
