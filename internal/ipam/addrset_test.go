package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFamSetModel drives famSet with random adds and removes and compares
// every answer with a brute-force model over a small universe, checking
// the tree's structural rules after each step.
func TestFamSetModel(t *testing.T) {
	tests := []struct {
		name   string
		fam    Family
		avoid  bool
		ranges []string
	}{
		{"v4", IPv4, false, []string{"10.0.0.250-10.0.1.5", "10.0.1.8-10.0.1.9", "10.0.2.0/30"}},
		{"v4-avoid", IPv4, true, []string{"10.0.0.250-10.0.2.3", "10.0.2.255-10.0.3.1", "10.0.4.0/24"}},
		{"v4-avoid-adjacent", IPv4, true, []string{"10.0.0.253-10.0.0.255", "10.0.1.0-10.0.1.2", "10.0.1.250-10.0.1.255"}},
		{"v4-edge", IPv4, true, []string{"255.255.255.250-255.255.255.255"}},
		{"v6", IPv6, false, []string{"2001:db8::f0-2001:db8::110", "2001:db8::1:0/126"}},
		{"v6-edge", IPv6, false, []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spans []span
			var universe []u128
			for _, s := range tt.ranges {
				r := rng(s)
				spans = append(spans, span{u128Of(r.From), u128Of(r.To)})
				for a := r.From; a.IsValid() && !r.To.Less(a); a = a.Next() {
					universe = append(universe, u128Of(a))
				}
			}
			fs := newFamSet(tt.fam, tt.avoid, spans)
			used := map[u128]bool{}
			rnd := rand.New(rand.NewPCG(1, uint64(len(tt.name))))
			for step := range 3000 {
				x := universe[rnd.IntN(len(universe))]
				if used[x] {
					fs.remove(x)
					delete(used, x)
				} else {
					fs.add(x)
					used[x] = true
				}
				if err := checkFamSet(fs, universe, used); err != nil {
					t.Fatalf("step %d (%v %v): %v", step, x.addr(tt.fam), used[x], err)
				}
			}
		})
	}
}

// checkFamSet compares fs with the brute-force model (universe: every
// address of the ranges in order; used: the addresses in use).
func checkFamSet(fs *famSet, universe []u128, used map[u128]bool) error {
	// Free ranges and the first free address.
	var want []span
	for _, x := range universe {
		if used[x] || fs.filler(x) {
			continue
		}
		if n := len(want); n > 0 && want[n-1].to.inc() == x {
			want[n-1].to = x
		} else {
			want = append(want, span{x, x})
		}
	}
	var got []span
	for _, r := range fs.freeRanges(len(universe) + 1) {
		got = append(got, span{u128Of(r.From), u128Of(r.To)})
	}
	if !slices.Equal(want, got) {
		return fmt.Errorf("freeRanges mismatch (-want +got):\n%s", cmp.Diff(want, got, cmp.AllowUnexported(span{}, u128{})))
	}
	if len(want) > 1 {
		if got := fs.freeRanges(1); len(got) != 1 || u128Of(got[0].From) != want[0].from || u128Of(got[0].To) != want[0].to {
			return fmt.Errorf("freeRanges(1) = %v, want %v", got, want[:1])
		}
	}
	first, ok := fs.firstFree()
	if ok != (len(want) > 0) || ok && first != want[0].from {
		return fmt.Errorf("firstFree() = %v, %v; want %v", first, ok, want)
	}
	// Counters.
	var buggy uint64
	for x := range used {
		if fs.filler(x) {
			buggy++
		}
	}
	if fs.used != uint64(len(used)) || fs.usedBuggy != buggy {
		return fmt.Errorf("used = %d/%d, want %d/%d", fs.used, fs.usedBuggy, len(used), buggy)
	}
	// Tree rules.
	var ivs []span
	if _, err := walk(&fs.tree, fs.tree.root, ^uint64(0), &ivs); err != nil {
		return err
	}
	if len(ivs) != fs.tree.n {
		return fmt.Errorf("tree has %d intervals, counts %d", len(ivs), fs.tree.n)
	}
	covered := 0
	for i, iv := range ivs {
		if !used[iv.from] || !used[iv.to] || fs.filler(iv.from) || fs.filler(iv.to) {
			return fmt.Errorf("interval %v does not start and end on used addresses", iv)
		}
		if i > 0 {
			prev := ivs[i-1]
			if !prev.to.less(iv.from) {
				return fmt.Errorf("intervals %v and %v overlap or are out of order", prev, iv)
			}
			gapFree := false
			for x := prev.to.inc(); x.less(iv.from); x = x.inc() {
				gapFree = gapFree || !fs.filler(x)
			}
			if !gapFree {
				return fmt.Errorf("intervals %v and %v are separated only by filler", prev, iv)
			}
		}
		for x := iv.from; ; x = x.inc() {
			if !used[x] && !fs.filler(x) {
				return fmt.Errorf("interval %v contains free %v", iv, x)
			}
			if used[x] && !fs.filler(x) {
				covered++
			}
			if x == iv.to {
				break
			}
		}
	}
	if want := len(used) - int(buggy); covered != want {
		return fmt.Errorf("intervals cover %d used addresses, want %d", covered, want)
	}
	return nil
}

// walk appends the intervals of t in order, checking the heap rule.
func walk(s *ivset, t int32, maxPrio uint64, out *[]span) (int, error) {
	if t == 0 {
		return 0, nil
	}
	nd := s.nodes[t]
	if nd.prio > maxPrio {
		return 0, fmt.Errorf("node %v breaks the heap rule", nd)
	}
	l, err := walk(s, nd.left, nd.prio, out)
	if err != nil {
		return 0, err
	}
	*out = append(*out, span{nd.start, nd.end})
	r, err := walk(s, nd.right, nd.prio, out)
	return l + r + 1, err
}

// TestFamSetMergesAcrossFiller checks that a pool full but for its .0 and
// .255 addresses is one interval, so that finding a free address in it
// (or learning there is none) does not walk one interval per /24.
func TestFamSetMergesAcrossFiller(t *testing.T) {
	r := rng("10.0.0.0/16")
	fs := newFamSet(IPv4, true, []span{{u128Of(r.From), u128Of(r.To)}})
	// Fill every other /24 first, then the rest, so merges happen on both sides.
	for _, odd := range []uint64{0, 1} {
		for x := u128Of(r.From); !u128Of(r.To).less(x); x = x.inc() {
			if (x.lo>>8)&1 == odd && !fs.filler(x) {
				fs.add(x)
			}
		}
	}
	if fs.tree.n != 1 {
		t.Errorf("a full /16 is %d intervals, want 1", fs.tree.n)
	}
	if x, ok := fs.firstFree(); ok {
		t.Errorf("firstFree() = %v in a full pool", x.addr(IPv4))
	}
	if got := fs.free(); got != (u128{}) {
		t.Errorf("free() = %v, want 0", got)
	}
}

func TestBuggyIn(t *testing.T) {
	brute := func(from, to uint64) uint64 {
		var n uint64
		for x := from; x <= to; x++ {
			if b := x & 0xff; b == 0 || b == 0xff {
				n++
			}
		}
		return n
	}
	for _, c := range [][2]uint64{{0, 0}, {0, 255}, {1, 254}, {255, 256}, {250, 1030}, {256, 511}, {1<<32 - 300, 1<<32 - 1}} {
		if got, want := buggyIn(c[0], c[1]), brute(c[0], c[1]); got != want {
			t.Errorf("buggyIn(%d, %d) = %d, want %d", c[0], c[1], got, want)
		}
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		r    string
		want u128
	}{
		{"10.0.0.0/8", u128{lo: 1 << 24}},
		{"0.0.0.0/0", u128{lo: 1 << 32}},
		{"2001:db8::/64", u128{hi: 1}},
		{"2001:db8::/63", u128{hi: 2}},
		{"::/0", maxU128},
		{"2001:db8::5/128", u128{lo: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.r, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.r) // not ParseRange: it refuses ::/0
			if diff := cmp.Diff(tt.want, size(u128Of(p.Addr()), u128Of(lastAddr(p))), cmp.AllowUnexported(u128{})); diff != "" {
				t.Errorf("size mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
