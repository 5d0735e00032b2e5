package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// propConfigs are the pool sets the property test switches between: the
// second shrinks pools under their allocations, the third keeps one pool
// as it was (so its state is reused) and changes the others. Sharing
// across namespaces is allowed and then forbidden in turn, which must move
// nobody.
var propConfigs = [][]Pool{
	pools(
		mkPool("p1", "10.0.0.250-10.0.1.5").avoid(),
		mkPool("p2", "10.0.2.0/29", "fd00::/125").acrossNamespaces(),
		mkPool("p3", "fd00::100-fd00::107", "10.0.3.0/30").manual(),
	),
	pools(
		mkPool("p1", "10.0.0.252-10.0.1.2").avoid().acrossNamespaces(),
		mkPool("p2", "10.0.2.0/30"),
		mkPool("p3", "fd00::100-fd00::103").manual(),
	),
	pools(
		mkPool("p2", "10.0.2.0/29", "fd00::/125"),
		mkPool("p1", "10.0.0.250-10.0.1.5"),
		mkPool("p4", "10.0.3.0/30", "fd00::104-fd00::109"),
	),
}

// TestAllocatorProperties runs a few thousand random operations and checks
// after each that the allocator's invariants hold, that failed calls
// change nothing, and that successful ones keep their promises.
func TestAllocatorProperties(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 42))
			var universe []netip.Addr
			for _, r := range []string{"10.0.0.248-10.0.1.8", "10.0.2.0-10.0.2.9", "10.0.3.0-10.0.3.4", "fd00::-fd00::9", "fd00::100-fd00::10a"} {
				rr := rng(r)
				for x := rr.From; !rr.To.Less(x); x = x.Next() {
					universe = append(universe, x)
				}
			}
			randSharing := func(svc string) Sharing {
				ns, _, _ := strings.Cut(svc, "/")
				s := Sharing{Namespace: ns, Key: []string{"", "k", "k", "j"}[rnd.IntN(4)], Local: rnd.IntN(4) == 0, Selector: []string{"a", "b"}[rnd.IntN(2)]}
				for _, p := range []Port{{"TCP", 80}, {"TCP", 443}, {"UDP", 53}, {"udp", 443}} {
					if rnd.IntN(3) == 0 {
						s.Ports = append(s.Ports, p)
					}
				}
				return s
			}
			randPools := func() []string {
				var out []string
				for _, p := range []string{"p1", "p2", "p3", "p4", "nope"} {
					if rnd.IntN(3) == 0 {
						out = append(out, p)
					}
				}
				rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
				return out
			}

			a := New()
			a.SetPools(propConfigs[0])
			seen := map[string]int{} // what happened, to prove the test reaches every path
			for step := range 3000 {
				svc := fmt.Sprintf("%s/s%d", []string{"ns", "other"}[rnd.IntN(2)], rnd.IntN(24))
				before := snapshot(a)
				var desc string
				var err error
				switch op := rnd.IntN(21); {
				case op < 8:
					f := []Family{IPv4, IPv6}[rnd.IntN(2)]
					names, s := randPools(), randSharing(svc)
					opts := AllocateOptions{Explicit: rnd.IntN(3) == 0}
					desc = fmt.Sprintf("Allocate(%s, %v, %v, %+v, %+v)", svc, f, names, s, opts)
					var got netip.Addr
					got, err = a.Allocate(svc, f, names, s, opts)
					if err == nil {
						if len(a.Holders(got)) > 1 {
							seen["shared allocation"]++
						}
						err = checkAllocated(a, before, svc, got, f, names, s, opts)
					} else {
						err = checkAllocateError(a, err, f)
					}
				case op < 13:
					var want []netip.Addr
					for range rnd.IntN(3) {
						want = append(want, universe[rnd.IntN(len(universe))])
					}
					s := randSharing(svc)
					opts := AssignOptions{RequirePool: rnd.IntN(2) == 0}
					if rnd.IntN(4) == 0 {
						opts.Pools = randPools()
					}
					for _, r := range []string{"r1", "r2"} {
						if rnd.IntN(2) == 0 {
							opts.Entitled = append(opts.Entitled, r)
						}
					}
					desc = fmt.Sprintf("Assign(%s, %v, %+v, %+v)", svc, want, s, opts)
					if err = a.Assign(svc, want, s, opts); err == nil {
						slices.SortFunc(want, netip.Addr.Compare)
						if diff := quickDiff(slices.Compact(want), a.IPs(svc)); diff != "" {
							err = fmt.Errorf("IPs after Assign mismatch (-want +got):\n%s", diff)
						}
					}
				case op < 19:
					desc = "Release(" + svc + ")"
					a.Release(svc)
				case op < 20:
					rs := map[netip.Addr]string{}
					for range rnd.IntN(5) {
						rs[universe[rnd.IntN(len(universe))]] = []string{"r1", "r2"}[rnd.IntN(2)]
					}
					desc = fmt.Sprintf("SetReservations(%v)", rs)
					a.SetReservations(rs)
					if diff := quickDiff(before.IPs, snapshot(a).IPs); diff != "" {
						err = fmt.Errorf("SetReservations moved allocations (-before +after):\n%s", diff)
					}
				default:
					c := rnd.IntN(len(propConfigs))
					desc = fmt.Sprint("SetPools #", c)
					a.SetPools(propConfigs[c])
					if diff := quickDiff(before.IPs, snapshot(a).IPs); diff != "" {
						err = fmt.Errorf("SetPools moved allocations (-before +after):\n%s", diff)
					}
				}
				var (
					conflict *ConflictError
					full     *PoolFullError
					noPool   *NoPoolError
					notIn    *NotInPoolError
					buggy    *BuggyIPError
					denied   *PoolNotAllowedError
					reserved *ReservedError
				)
				if err != nil {
					seen[fmt.Sprintf("%T", err)]++
				}
				if len(a.Orphans()) > 0 {
					seen["orphans"]++
				}
				switch {
				case err == nil:
				case errors.As(err, &conflict), errors.As(err, &full), errors.As(err, &noPool),
					errors.As(err, &notIn), errors.As(err, &buggy), errors.As(err, &denied), errors.As(err, &reserved):
					// An expected refusal: it must have changed nothing.
					if diff := quickDiff(before, snapshot(a)); diff != "" {
						t.Fatalf("step %d: %s failed with %v but changed state (-before +after):\n%s", step, desc, err, diff)
					}
				default:
					t.Fatalf("step %d: %s: %v", step, desc, err)
				}
				if err := checkInvariants(a); err != nil {
					t.Fatalf("step %d: after %s: %v", step, desc, err)
				}
			}
			t.Logf("outcomes: %v", seen)
			for _, k := range []string{"shared allocation", "orphans", "*ipam.ConflictError", "*ipam.PoolFullError",
				"*ipam.NoPoolError", "*ipam.NotInPoolError", "*ipam.BuggyIPError", "*ipam.PoolNotAllowedError", "*ipam.ReservedError"} {
				if seen[k] == 0 {
					t.Errorf("no step produced %s: the random operations miss a path", k)
				}
			}
		})
	}
}

// state is what the public API shows of an allocator, for before/after
// comparisons.
type state struct { // exported fields so cmp can diff them
	IPs   map[string][]netip.Addr
	Stats map[string]Stats
}

func snapshot(a *Allocator) state {
	s := state{IPs: map[string][]netip.Addr{}, Stats: map[string]Stats{}}
	for svc := range a.svcs {
		s.IPs[svc] = a.IPs(svc)
	}
	for _, p := range a.Pools() {
		s.Stats[p] = a.Stats(p)
	}
	return s
}

// checkAllocated checks the promises of a successful Allocate.
func checkAllocated(a *Allocator, before state, svc string, got netip.Addr, f Family, names []string, s Sharing, opts AllocateOptions) error {
	if FamilyOf(got) != f {
		return fmt.Errorf("got %v, want an %v address", got, f)
	}
	pn, ok := a.PoolOf(got)
	if !ok {
		return fmt.Errorf("got %v, which is in no pool", got)
	}
	p := a.byName[pn]
	explicit := opts.Explicit && len(names) > 0
	if len(names) > 0 && !slices.Contains(names, pn) || !p.autoAssign && !explicit {
		return fmt.Errorf("got %v from pool %s, which the request may not use", got, pn)
	}
	if p.avoidBuggy && isBuggy(got) {
		return fmt.Errorf("got buggy %v from pool %s", got, pn)
	}
	if slices.Contains(before.IPs[svc], got) {
		return fmt.Errorf("got %v, which %s already held", got, svc)
	}
	if name, ok := a.Reservation(got); ok && !slices.Contains(opts.Entitled, name) {
		return fmt.Errorf("got %v, reserved by %s", got, name)
	}
	if !slices.Equal(a.IPs(svc), sortedWith(before.IPs[svc], got)) {
		return fmt.Errorf("IPs(%s) = %v, want %v plus %v", svc, a.IPs(svc), before.IPs[svc], got)
	}
	shared := false
	for other, held := range before.IPs {
		if other != svc && slices.Contains(held, got) {
			shared = true
			if _, ok := compatible(s, a.svcs[other].sharing, p.acrossNamespaces); !ok {
				return fmt.Errorf("got %v, held by incompatible %s", got, other)
			}
		}
	}
	if !shared && s.Key == "" {
		// A fresh address is the lowest free one of the first usable pool.
		order := names
		if len(order) == 0 {
			order = a.Pools()
		}
		for _, n := range order {
			q := a.byName[n]
			if q == nil || q.set(f) == nil || !q.autoAssign && !explicit || before.Stats[n].Free[f] == 0 {
				continue
			}
			if n != pn {
				return fmt.Errorf("got %v from pool %s, but pool %s comes first and has room", got, pn, n)
			}
			if free := bruteFree(a, q, f, map[netip.Addr]bool{got: true}); len(free) == 0 || free[0].From != got {
				return fmt.Errorf("got %v, but the lowest free address was %v", got, free)
			}
			break
		}
	}
	return nil
}

func sortedWith(s []netip.Addr, x netip.Addr) []netip.Addr {
	out := append(slices.Clone(s), x)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// checkAllocateError checks that a PoolFullError is true.
func checkAllocateError(a *Allocator, err error, f Family) error {
	var full *PoolFullError
	if errors.As(err, &full) {
		for _, n := range full.Pools {
			if fr := a.FreeRanges(n, f, 1); len(fr) != 0 {
				return fmt.Errorf("%v, but pool %s has %v free", err, n, fr)
			}
		}
	}
	return err
}

// bruteFree lists the free assignable ranges of q by enumerating every
// address, treating the addresses in extraFree as free.
func bruteFree(a *Allocator, q *pool, f Family, extraFree map[netip.Addr]bool) []Range {
	var out []Range
	for _, r := range q.ranges {
		if FamilyOf(r.From) != f {
			continue
		}
		for x := r.From; x.IsValid() && !r.To.Less(x); x = x.Next() {
			_, reserved := a.Reservation(x)
			if (len(a.Holders(x)) > 0 || reserved) && !extraFree[x] || q.avoidBuggy && isBuggy(x) {
				continue
			}
			if n := len(out); n > 0 && out[n-1].To.Next() == x {
				out[n-1].To = x
			} else {
				out = append(out, Range{x, x})
			}
		}
	}
	return out
}

// checkInvariants checks the allocator's state for consistency: holdings
// seen from both sides agree, only compatible services share, and every
// pool's counters and free ranges match a brute-force count.
func checkInvariants(a *Allocator) error {
	for svc, sv := range a.svcs {
		got := a.IPs(svc)
		if len(got) == 0 || !slices.IsSortedFunc(got, netip.Addr.Compare) {
			return fmt.Errorf("IPs(%s) = %v: empty or unsorted", svc, got)
		}
		for _, x := range got {
			if !slices.Contains(a.Holders(x), svc) {
				return fmt.Errorf("IPs(%s) has %v, but Holders(%v) = %v", svc, x, x, a.Holders(x))
			}
		}
		if sv.sharing.Key != "" {
			for _, x := range got {
				if _, ok := a.byKey[sv.sharing.Key][x]; !ok {
					return fmt.Errorf("%v held by %s is missing from key index %q", x, svc, sv.sharing.Key)
				}
			}
		}
	}
	used := map[string]map[Family]uint64{}
	orphans := map[string][]netip.Addr{}
	users := map[string][]string{}
	for x := range a.addrs {
		hs := a.Holders(x)
		if len(hs) == 0 || !slices.IsSorted(hs) {
			return fmt.Errorf("Holders(%v) = %v: empty or unsorted", x, hs)
		}
		for i, h := range hs {
			if !slices.Contains(a.IPs(h), x) {
				return fmt.Errorf("Holders(%v) has %s, but IPs(%s) = %v", x, h, h, a.IPs(h))
			}
			for _, o := range hs[:i] {
				if reason, ok := compatible(a.svcs[h].sharing, a.svcs[o].sharing, true); !ok {
					return fmt.Errorf("%v is held by %s and %s, which may not share (%s)", x, o, h, reason)
				}
			}
		}
		pn, ok := a.PoolOf(x)
		if !ok {
			for _, h := range hs {
				orphans[h] = append(orphans[h], x)
			}
			continue
		}
		if used[pn] == nil {
			used[pn] = map[Family]uint64{}
		}
		used[pn][FamilyOf(x)]++
		for _, h := range hs {
			if !slices.Contains(users[pn], h) {
				users[pn] = append(users[pn], h)
			}
		}
	}
	for k, m := range a.byKey {
		for x := range m {
			hs := a.Holders(x)
			if len(hs) == 0 || a.svcs[hs[0]].sharing.Key != k {
				return fmt.Errorf("key index %q has %v, held by %v", k, x, hs)
			}
		}
	}
	for _, v := range orphans {
		slices.SortFunc(v, netip.Addr.Compare)
	}
	if diff := quickDiff(orphans, a.Orphans()); diff != "" {
		return fmt.Errorf("Orphans() mismatch (-want +got):\n%s", diff)
	}
	for _, pn := range a.Pools() {
		q := a.byName[pn]
		st := a.Stats(pn)
		slices.Sort(users[pn])
		if diff := quickDiff(users[pn], a.PoolUsers(pn)); diff != "" {
			return fmt.Errorf("PoolUsers(%s) mismatch (-want +got):\n%s", pn, diff)
		}
		for _, f := range []Family{IPv4, IPv6} {
			if q.set(f) == nil {
				continue
			}
			if st.Used[f] != used[pn][f] {
				return fmt.Errorf("Stats(%s).Used[%v] = %d, want %d", pn, f, st.Used[f], used[pn][f])
			}
			var reserved uint64
			for x := range a.Reservations() {
				if p, _ := a.PoolOf(x); p == pn && FamilyOf(x) == f {
					reserved++
				}
			}
			if st.Reserved[f] != reserved {
				return fmt.Errorf("Stats(%s).Reserved[%v] = %d, want %d", pn, f, st.Reserved[f], reserved)
			}
			if st.Total[f] > 1<<12 {
				continue // too big to enumerate
			}
			want := bruteFree(a, q, f, nil)
			if diff := quickDiff(want, a.FreeRanges(pn, f, 1000)); diff != "" {
				return fmt.Errorf("FreeRanges(%s, %v) mismatch (-want +got):\n%s", pn, f, diff)
			}
			var free uint64
			for _, r := range want {
				free += size(u128Of(r.From), u128Of(r.To)).lo
			}
			if st.Free[f] != free {
				return fmt.Errorf("Stats(%s).Free[%v] = %d, want %d", pn, f, st.Free[f], free)
			}
		}
	}
	return nil
}
