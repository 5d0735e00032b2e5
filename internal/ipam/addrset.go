package ipam

// This file holds the data structure that makes allocation independent of
// pool size. Each pool keeps, per family, the addresses in use as a set of
// disjoint intervals in a treap keyed by interval start. Finding the lowest
// free address, reserving or releasing one, and listing free ranges all
// cost expected O(log n) in the number of intervals (at most the number of
// addresses in use), never O(pool size): a /8 or a /64 costs the same as a
// /24 holding as many allocations.

// ivnode is one interval [start, end] of the treap. Nodes live in a slice and
// refer to each other by index, so inserting does not allocate once the
// slice has grown, and they hold no pointers, so the garbage collector never
// scans them however many allocations there are.
type ivnode struct {
	start, end  u128
	prio        uint64
	left, right int32
}

// ivset is a treap of disjoint intervals ordered by start (a binary search
// tree by start, a max-heap by prio). Priorities come from a splitmix64
// sequence, so the shape is random-looking but reproducible run to run.
// Index 0 is the nil node.
type ivset struct {
	nodes []ivnode
	free  []int32
	root  int32
	seed  uint64
	n     int // number of intervals
}

func (s *ivset) newNode(start, end u128) int32 {
	s.seed += 0x9e3779b97f4a7c15
	z := s.seed
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	nd := ivnode{start: start, end: end, prio: z}
	s.n++
	if k := len(s.free); k > 0 {
		i := s.free[k-1]
		s.free = s.free[:k-1]
		s.nodes[i] = nd
		return i
	}
	if len(s.nodes) == 0 {
		s.nodes = append(s.nodes, ivnode{}) // the nil node
	}
	s.nodes = append(s.nodes, nd)
	return int32(len(s.nodes) - 1)
}

// floor returns the interval with the largest start <= x, or 0.
func (s *ivset) floor(x u128) int32 {
	best := int32(0)
	for t := s.root; t != 0; {
		if nd := &s.nodes[t]; nd.start.cmp(x) <= 0 {
			best, t = t, nd.right
		} else {
			t = nd.left
		}
	}
	return best
}

// around returns, in one descent, the interval with the largest start <= x
// (floor) and the one with the smallest start > x (next); 0 for none.
func (s *ivset) around(x u128) (floor, next int32) {
	for t := s.root; t != 0; {
		if nd := &s.nodes[t]; x.less(nd.start) {
			next, t = t, nd.left
		} else {
			floor, t = t, nd.right
		}
	}
	return floor, next
}

// split cuts t into the intervals starting before key and the rest.
func (s *ivset) split(t int32, key u128) (lt, ge int32) {
	if t == 0 {
		return 0, 0
	}
	if s.nodes[t].start.less(key) {
		l, r := s.split(s.nodes[t].right, key)
		s.nodes[t].right = l
		return t, r
	}
	l, r := s.split(s.nodes[t].left, key)
	s.nodes[t].left = r
	return l, t
}

// merge joins two treaps where every start in a is below every start in b.
func (s *ivset) merge(a, b int32) int32 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	case s.nodes[a].prio > s.nodes[b].prio:
		s.nodes[a].right = s.merge(s.nodes[a].right, b)
		return a
	default:
		s.nodes[b].left = s.merge(a, s.nodes[b].left)
		return b
	}
}

// insert adds [start, end]; the caller guarantees it overlaps nothing.
func (s *ivset) insert(start, end u128) {
	i := s.newNode(start, end)
	l, r := s.split(s.root, start)
	s.root = s.merge(s.merge(l, i), r)
}

// remove deletes the interval that starts at start.
func (s *ivset) remove(start u128) {
	s.root = s.del(s.root, start)
}

func (s *ivset) del(t int32, key u128) int32 {
	if t == 0 {
		return 0
	}
	switch c := key.cmp(s.nodes[t].start); {
	case c < 0:
		s.nodes[t].left = s.del(s.nodes[t].left, key)
	case c > 0:
		s.nodes[t].right = s.del(s.nodes[t].right, key)
	default:
		r := s.merge(s.nodes[t].left, s.nodes[t].right)
		s.nodes[t] = ivnode{}
		s.free = append(s.free, t)
		s.n--
		return r
	}
	return t
}

// span is an inclusive run of addresses of one family.
type span struct{ from, to u128 }

// famSet is one pool's addresses of one family: its ranges and the set of
// addresses in use.
//
// When the pool avoids buggy IPs, IPv4 addresses ending in .0 or .255 are
// "filler": never handed out, so whether one is in use does not matter for
// finding free addresses. The tree holds only non-filler used addresses, as
// intervals that:
//  1. are disjoint, and start and end on a used non-filler address;
//  2. contain only used or filler addresses;
//  3. are maximal: between two neighbours lies at least one free non-filler
//     address (or an address outside the pool's ranges).
//
// Rule 3 is what keeps a search short: after jumping past an interval and
// over at most two filler addresses, the next address is free. Without it a
// pool full from x.1 to x.254 in every /24 would be a long chain of
// intervals separated only by .255/.0 pairs.
type famSet struct {
	fam       Family
	avoid     bool   // IPv4 pool with AvoidBuggyIPs
	ranges    []span // sorted, disjoint
	total     u128   // assignable addresses, saturated at 2^128-1
	used      uint64 // addresses in use, filler included
	usedBuggy uint64 // of which filler
	tree      ivset
}

// newFamSet takes sorted, disjoint ranges; adjacent ones are merged so
// that free ranges are reported whole.
func newFamSet(f Family, avoid bool, ranges []span) *famSet {
	s := &famSet{fam: f, avoid: avoid && f == IPv4}
	for _, r := range ranges {
		if n := len(s.ranges); n > 0 && s.ranges[n-1].to.inc() == r.from {
			s.ranges[n-1].to = r.to
			continue
		}
		s.ranges = append(s.ranges, r)
	}
	for _, r := range s.ranges {
		n := size(r.from, r.to)
		if s.avoid {
			n = n.sub(u128{lo: buggyIn(r.from.lo, r.to.lo)})
		}
		s.total = s.total.addSat(n)
	}
	return s
}

// free returns how many assignable addresses are not in use.
func (s *famSet) free() u128 {
	inUse := u128{lo: s.used - s.usedBuggy}
	if s.total.less(inUse) {
		return u128{} // only if the total saturated
	}
	return s.total.sub(inUse)
}

func (s *famSet) filler(x u128) bool {
	if !s.avoid {
		return false
	}
	b := x.lo & 0xff
	return b == 0 || b == 0xff
}

// skipFiller returns the first non-filler address >= x. Filler comes in
// .255/.0 pairs, so it moves at most two steps; IPv4 values live in a
// uint64, so stepping past 255.255.255.255 cannot wrap.
func (s *famSet) skipFiller(x u128) u128 {
	if !s.avoid {
		return x
	}
	switch x.lo & 0xff {
	case 0:
		x.lo++
	case 0xff:
		x.lo += 2
	}
	return x
}

// onlyFiller reports whether every address strictly between a and b (a < b)
// is filler; true when there are none.
func (s *famSet) onlyFiller(a, b u128) bool {
	if a.inc() == b {
		return true
	}
	if !s.avoid || b.lo-a.lo-1 > 2 {
		return false
	}
	for x := a.lo + 1; x < b.lo; x++ {
		if !s.filler(u128{lo: x}) {
			return false
		}
	}
	return true
}

// add records x (inside the ranges, not yet in use) as used.
func (s *famSet) add(x u128) {
	s.used++
	if s.filler(x) {
		s.usedBuggy++
		return
	}
	t := &s.tree
	l, r := t.around(x)
	joinL := l != 0 && s.onlyFiller(t.nodes[l].end, x)
	joinR := r != 0 && s.onlyFiller(x, t.nodes[r].start)
	switch {
	case joinL && joinR:
		end := t.nodes[r].end
		t.remove(t.nodes[r].start)
		t.nodes[l].end = end
	case joinL:
		t.nodes[l].end = x
	case joinR:
		// Lowering r's start to x keeps the tree ordered: no interval
		// starts between x and r.
		t.nodes[r].start = x
	default:
		t.insert(x, x)
	}
}

// remove records x (in use) as free again.
func (s *famSet) remove(x u128) {
	s.used--
	if s.filler(x) {
		s.usedBuggy--
		return
	}
	t := &s.tree
	i := t.floor(x)
	if i == 0 || t.nodes[i].end.less(x) {
		return // not recorded: nothing to undo (the Allocator never asks)
	}
	start, end := t.nodes[i].start, t.nodes[i].end
	hasL, hasR := start != x, end != x
	var lEnd, rStart u128
	if hasL {
		// Trim filler so the piece ends on a used address (rule 1); start
		// is one, so the piece cannot become empty.
		for lEnd = x.dec(); s.filler(lEnd); lEnd = lEnd.dec() {
		}
	}
	if hasR {
		rStart = s.skipFiller(x.inc())
	}
	switch {
	case hasL && hasR:
		t.nodes[i].end = lEnd
		t.insert(rStart, end)
	case hasL:
		t.nodes[i].end = lEnd
	case hasR:
		// Raising the start within the interval keeps the tree ordered.
		t.nodes[i].start = rStart
	default:
		t.remove(start)
	}
}

// scan calls fn with each maximal run of free addresses in r, lowest first,
// until fn returns false. A run starts on a non-filler address but may
// contain filler. The cost is O(log n) per run (plus one or two interval
// jumps per range), never proportional to the size of r.
func (s *famSet) scan(r span, fn func(span) bool) bool {
	t := &s.tree
	c := r.from
	for {
		c = s.skipFiller(c)
		if r.to.less(c) {
			return true
		}
		i, j := t.around(c)
		if i != 0 && !t.nodes[i].end.less(c) {
			// c is in use: continue after this interval.
			j = i
		} else {
			// c is free: the run ends before the next interval.
			end := r.to
			if j != 0 && t.nodes[j].start.cmp(r.to) <= 0 {
				end = t.nodes[j].start.dec()
			}
			if !fn(span{c, end}) {
				return false
			}
			if j == 0 || !end.less(r.to) {
				return true
			}
		}
		e := t.nodes[j].end
		if !e.less(r.to) {
			return true
		}
		c = e.inc()
	}
}

// firstFree returns the lowest assignable address that is not in use.
func (s *famSet) firstFree() (u128, bool) {
	var found u128
	ok := false
	for _, r := range s.ranges {
		s.scan(r, func(f span) bool {
			found, ok = f.from, true
			return false
		})
		if ok {
			break
		}
	}
	return found, ok
}

// freeRanges returns up to max runs of assignable free addresses, lowest
// first. Runs contain no filler: with AvoidBuggyIPs a free /16 is reported
// as x.0.1-x.0.254, x.1.1-x.1.254, ..., so every address shown can really
// be requested.
func (s *famSet) freeRanges(max int) []Range {
	out := make([]Range, 0, min(max, 16))
	for _, r := range s.ranges {
		if len(out) >= max {
			break
		}
		s.scan(r, func(f span) bool {
			if !s.avoid {
				out = append(out, Range{f.from.addr(s.fam), f.to.addr(s.fam)})
				return len(out) < max
			}
			for p := f.from; !f.to.less(p); {
				pe := u128{lo: p.lo&^0xff | 0xfe} // x.254
				if f.to.less(pe) {
					pe = f.to
				}
				out = append(out, Range{p.addr(s.fam), pe.addr(s.fam)})
				if len(out) >= max {
					return false
				}
				p = s.skipFiller(pe.inc())
			}
			return true
		})
	}
	return out
}
