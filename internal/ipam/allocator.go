package ipam

import (
	"fmt"
	"net/netip"
	"slices"
)

// Pool is one address pool as the allocator sees it: the part of the
// configuration that decides which addresses a Service may get. The
// config package validates pools (names unique, ranges non-overlapping
// across all pools) before they get here.
type Pool struct {
	Name   string
	Ranges []Range // may mix families
	// AutoAssign false keeps the pool for Services that name it or one of
	// its addresses; automatic requests pass it over.
	AutoAssign bool
	// AvoidBuggyIPs keeps IPv4 addresses ending in .0 or .255 out of
	// automatic assignment, and refuses explicit requests for them with a
	// BuggyIPError, because some clients drop traffic to such addresses.
	AvoidBuggyIPs bool
	// AllowSharingAcrossNamespaces lets a Service join an address of this
	// pool that Services of other namespaces hold (with the same sharing
	// key, as always). Off, sharing stays within one namespace; see
	// Sharing for why that is the default.
	AllowSharingAcrossNamespaces bool
}

// AssignOptions says which pool rules an Assign must enforce. The zero
// value enforces none, which is what restoring allocations from Service
// status at startup needs: an address a Service already has stays with it
// even if the configuration has since tightened, so a restart changes no IP.
type AssignOptions struct {
	// RequirePool marks a new request (spec.loadBalancerIP or the
	// loadBalancerIPs annotation): each address must be in a pool, not a
	// .0/.255 address of a pool with AvoidBuggyIPs, and, if Services of
	// another namespace hold it, in a pool that allows sharing across
	// namespaces. Without it, an address is kept even where these rules
	// would now refuse it: the configuration changed, or the Services
	// shared it before the rule existed.
	RequirePool bool
	// Pools, if non-empty, restricts the addresses to these pools (for
	// example an address-pool annotation); an address in no pool is then
	// refused too.
	Pools []string
	// Entitled names the reservations (SetReservations) the service may
	// take addresses of. With RequirePool, a reserved address whose
	// reservation is not named is refused with a *ReservedError, unless
	// the service holds it already.
	Entitled []string
}

// AllocateOptions tunes Allocate. The zero value is the common case: an
// automatic request.
type AllocateOptions struct {
	// Explicit says the pool names given to Allocate come from the Service
	// itself (an address-pool annotation), so pools with AutoAssign false
	// may be used: the operator kept them for Services that ask by name.
	Explicit bool
	// Entitled names the reservations whose addresses the service may
	// join when it shares an address with their holders. Allocate never
	// picks a free reserved address: the service it is for Assigns it.
	Entitled []string
}

// Stats counts a pool's addresses per family, for metrics and for
// "pool default: 3 of 11 IPv4 addresses free" in status. Only families the
// pool has ranges of appear. Total excludes the addresses AvoidBuggyIPs
// keeps back; Total and Free saturate at math.MaxUint64 (a /64 holds 2^64
// addresses, one more than a uint64 counts). Used counts every address
// held or held back (HoldBack), even a .0/.255 one restored from an older
// configuration, which therefore does not lower Free. Reserved counts the
// addresses reserved (SetReservations), held or not, and is nil when none
// is; Free excludes them.
type Stats struct {
	Total, Used, Free, Reserved map[Family]uint64
}

// Allocator decides which Service holds which address. It is the pure core
// of the controller: no Kubernetes types, no I/O, no goroutines, and every
// operation costs O(log n) or better in the number of addresses in use,
// whatever the size of the pools, so a burst of 10,000 Services costs
// milliseconds.
//
// An Allocator is not safe for concurrent use: the controller owns it and
// calls it from one goroutine (or under its own lock).
type Allocator struct {
	pools  []*pool // in priority order, as given to SetPools
	byName map[string]*pool
	index  []poolRange // every kept range, sorted, for PoolOf
	svcs   map[string]*service
	addrs  map[netip.Addr]holding
	// byKey finds the addresses held under a sharing key without a scan,
	// so that Allocate can offer a Service an address its siblings hold.
	byKey map[string]map[netip.Addr]struct{}
	// heldBack and heldBackBy are HoldBack's addresses, seen from
	// both sides: the services (sorted) holding back each address, and the
	// addresses (sorted) each service holds back. An address is in its
	// pool's used set while it is held or held back.
	heldBack   map[netip.Addr][]string
	heldBackBy map[string][]netip.Addr
	// reservations maps each address an operator reserved
	// (SetReservations) to the name of its reservation. An address is in
	// its pool's used set while it is reserved, too.
	reservations map[netip.Addr]string
}

type pool struct {
	name       string
	autoAssign bool
	avoidBuggy bool
	ranges     []Range // kept ranges, sorted
	v4, v6     *famSet // nil when the pool has no range of that family
	// acrossNamespaces is Pool.AllowSharingAcrossNamespaces.
	acrossNamespaces bool
}

func (p *pool) set(f Family) *famSet {
	if f == IPv4 {
		return p.v4
	}
	return p.v6
}

type poolRange struct {
	r Range
	p *pool
}

type service struct {
	sharing Sharing
	ips     []netip.Addr // sorted
	buf     [2]netip.Addr
}

type holding struct {
	pool *pool    // nil: an orphan, outside every pool
	svcs []string // sorted
}

// New returns an Allocator with no pools and no allocations. Restore
// existing allocations with Assign before allocating anything new.
func New() *Allocator {
	return &Allocator{
		byName: map[string]*pool{},
		svcs:   map[string]*service{},
		addrs:  map[netip.Addr]holding{},
		byKey:  map[string]map[netip.Addr]struct{}{},

		heldBack:   map[netip.Addr][]string{},
		heldBackBy: map[string][]netip.Addr{},

		reservations: map[netip.Addr]string{},
	}
}

// SetPools replaces the pool set; the order of pools is their priority for
// Allocate when the caller names none. Existing allocations are never
// dropped or moved, even if their address is now outside every pool: such
// orphans stay with their Service (see Orphans), and are never handed to
// another Service while held.
//
// Pools are expected to be validated. As a guard against a caller's bug, a
// range that is invalid (zero, reversed, mixed families, zoned or
// IPv4-mapped) or overlaps a range kept before it is ignored, as is a
// second pool of the same name, so one address never belongs to two pools.
// A pool whose ranges and AvoidBuggyIPs are unchanged keeps its state; the
// cost is O(ranges² + allocations · log ranges).
func (a *Allocator) SetPools(pools []Pool) {
	old := a.byName
	a.pools, a.byName, a.index = nil, map[string]*pool{}, nil
	rebuilt := map[*pool]bool{}
	for _, cfg := range pools {
		if _, dup := a.byName[cfg.Name]; dup {
			continue
		}
		var kept []Range
		for _, r := range cfg.Ranges {
			if validRange(r) && a.addIndex(r, nil) {
				kept = append(kept, r)
			}
		}
		slices.SortFunc(kept, func(x, y Range) int { return x.From.Compare(y.From) })
		p := old[cfg.Name]
		if p == nil || p.avoidBuggy != cfg.AvoidBuggyIPs || !slices.Equal(p.ranges, kept) {
			p = newPool(cfg, kept)
			rebuilt[p] = true
		}
		p.autoAssign = cfg.AutoAssign
		p.acrossNamespaces = cfg.AllowSharingAcrossNamespaces
		for i := range a.index {
			if a.index[i].p == nil {
				a.index[i].p = p
			}
		}
		a.pools = append(a.pools, p)
		a.byName[p.name] = p
	}
	for ip, h := range a.addrs {
		p := a.poolOf(ip)
		if p != h.pool {
			h.pool = p
			a.addrs[ip] = h
		}
		if rebuilt[p] {
			p.set(FamilyOf(ip)).add(u128Of(ip))
		}
	}
	for ip := range a.heldBack {
		if _, held := a.addrs[ip]; held {
			continue // counted above
		}
		if p := a.poolOf(ip); rebuilt[p] {
			p.set(FamilyOf(ip)).add(u128Of(ip))
		}
	}
	for ip := range a.reservations {
		if _, held := a.addrs[ip]; held || len(a.heldBack[ip]) > 0 {
			continue // counted above
		}
		if p := a.poolOf(ip); rebuilt[p] {
			p.set(FamilyOf(ip)).add(u128Of(ip))
		}
	}
}

// inUse reports whether ip is in its pool's used set: held, held back or
// reserved.
func (a *Allocator) inUse(ip netip.Addr) bool {
	if _, held := a.addrs[ip]; held {
		return true
	}
	_, reserved := a.reservations[ip]
	return reserved || len(a.heldBack[ip]) > 0
}

func validRange(r Range) bool {
	return r.From.IsValid() && r.To.IsValid() && r.From.BitLen() == r.To.BitLen() &&
		!r.To.Less(r.From) && r.From.Zone() == "" && r.To.Zone() == "" && !r.Overlaps(mapped4)
}

// addIndex inserts r into the sorted index unless it overlaps a range
// already there.
func (a *Allocator) addIndex(r Range, p *pool) bool {
	i, _ := slices.BinarySearchFunc(a.index, r.From, func(e poolRange, t netip.Addr) int { return e.r.From.Compare(t) })
	if i > 0 && a.index[i-1].r.Overlaps(r) || i < len(a.index) && a.index[i].r.Overlaps(r) {
		return false
	}
	a.index = slices.Insert(a.index, i, poolRange{r, p})
	return true
}

func newPool(cfg Pool, ranges []Range) *pool {
	p := &pool{name: cfg.Name, avoidBuggy: cfg.AvoidBuggyIPs, ranges: ranges}
	var v4, v6 []span
	for _, r := range ranges {
		s := span{u128Of(r.From), u128Of(r.To)}
		if r.From.Is4() {
			v4 = append(v4, s)
		} else {
			v6 = append(v6, s)
		}
	}
	if v4 != nil {
		p.v4 = newFamSet(IPv4, cfg.AvoidBuggyIPs, v4)
	}
	if v6 != nil {
		p.v6 = newFamSet(IPv6, cfg.AvoidBuggyIPs, v6)
	}
	return p
}

func (a *Allocator) poolOf(ip netip.Addr) *pool {
	i := sortSearch(len(a.index), func(i int) bool { return ip.Less(a.index[i].r.From) })
	if i > 0 && a.index[i-1].r.Contains(ip) {
		return a.index[i-1].p
	}
	return nil
}

// sortSearch is sort.Search, inlined to keep the hot path free of the
// closure allocation sort.Search's interface would not need but costs.
func sortSearch(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Assign claims exactly ips for svc (a "namespace/name" key), replacing
// whatever svc held, and records s as svc's sharing constraints. It serves
// both a user's requested addresses (opts.RequirePool) and restoring
// allocations from Service status at startup (zero opts). It is
// all-or-nothing: on error nothing changes. Errors are *ConflictError,
// *NotInPoolError, *PoolNotAllowedError and *BuggyIPError for the first
// address (in sorted order) that fails; an invalid, zoned or IPv4-mapped
// address is a plain error. Assign with no addresses is Release.
func (a *Allocator) Assign(svc string, ips []netip.Addr, s Sharing, opts AssignOptions) error {
	want := slices.Clone(ips)
	slices.SortFunc(want, netip.Addr.Compare)
	want = slices.Compact(want)
	for _, ip := range want {
		if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
			return fmt.Errorf("cannot assign %q to %s: not a plain IPv4 or IPv6 address", ip, svc)
		}
		p := a.poolOf(ip)
		switch {
		case p == nil && (opts.RequirePool || len(opts.Pools) > 0):
			return &NotInPoolError{Addr: ip}
		case p == nil:
		case len(opts.Pools) > 0 && !slices.Contains(opts.Pools, p.name):
			return &PoolNotAllowedError{Addr: ip, Pool: p.name, Allowed: slices.Clone(opts.Pools)}
		case opts.RequirePool && p.avoidBuggy && isBuggy(ip):
			return &BuggyIPError{Addr: ip, Pool: p.name}
		}
		if err := a.checkReserved(svc, ip, opts.Entitled, opts.RequirePool); err != nil {
			return err
		}
		if err := a.checkSharing(svc, ip, s, opts.RequirePool); err != nil {
			return err
		}
	}
	a.Release(svc)
	if len(want) == 0 {
		return nil
	}
	sv := a.newService(svc, s)
	for _, ip := range want {
		a.hold(svc, sv, ip)
	}
	return nil
}

// checkSharing returns a *ConflictError if ip is held by a service other
// than svc that s may not share with, or if svc does not hold ip and
// another service holds it back (see HoldBack). join says svc asks for ip
// anew (a request or an automatic pick, not an address restored or kept):
// then, unless ip's pool allows sharing across namespaces, the holders
// must be of svc's namespace. An address svc already holds is never
// refused for its namespace, so no rule added since it was shared moves it.
func (a *Allocator) checkSharing(svc string, ip netip.Addr, s Sharing, join bool) error {
	var err *ConflictError
	h := a.addrs[ip]
	holders := h.svcs
	across := !join || slices.Contains(holders, svc) || h.pool != nil && h.pool.acrossNamespaces
	for _, other := range holders {
		if other == svc {
			continue
		}
		if reason, ok := compatible(s, a.svcs[other].sharing, across); !ok {
			if err == nil {
				err = &ConflictError{Addr: ip, Reason: reason}
				if reason == reasonOtherNamespace {
					err.OtherNamespace = true
					err.Reason = otherNamespaceReason(h.pool)
				}
			}
			err.Holders = append(err.Holders, other)
		}
	}
	if !slices.Contains(holders, svc) {
		for _, other := range a.heldBack[ip] {
			if other == svc {
				continue
			}
			if err == nil {
				err = &ConflictError{Addr: ip, Reason: reasonBeingReleased}
			}
			if !slices.Contains(err.Holders, other) {
				err.Holders = append(err.Holders, other)
			}
		}
		if err != nil {
			slices.Sort(err.Holders)
		}
	}
	if err == nil {
		return nil // not a typed nil in an interface
	}
	return err
}

// Allocate picks one free address of family f for svc and adds it to svc's
// holdings (a dual-stack Service calls it once per family; each call adds
// an address), recording s as svc's sharing constraints. pools names the
// candidate pools in priority order (nil: all pools, in SetPools order); a
// pool with AutoAssign false is passed over unless opts.Explicit is set
// and pools names it. If s.Key is set, an address that compatible Services
// already hold in a candidate pool is preferred to a fresh one, so
// Services meant to share do. Otherwise the lowest free address of the
// first pool that has one is taken: deterministic, and the address an
// operator scanning the pool by eye would expect.
//
// Errors: *NoPoolError when no pool may serve the request, *PoolFullError
// when all that may are full, and *ConflictError when s is incompatible
// with the co-holders of an address svc already holds.
func (a *Allocator) Allocate(svc string, f Family, pools []string, s Sharing, opts AllocateOptions) (netip.Addr, error) {
	if f != IPv4 && f != IPv6 {
		return netip.Addr{}, fmt.Errorf("cannot allocate for %s: unknown IP family %v", svc, f)
	}
	sv := a.svcs[svc]
	if sv != nil {
		for _, ip := range sv.ips {
			if err := a.checkSharing(svc, ip, s, false); err != nil {
				return netip.Addr{}, err
			}
		}
	}
	var buf [4]*pool
	cands, reasons := a.candidates(buf[:0], f, pools, opts)
	if len(cands) == 0 {
		return netip.Addr{}, &NoPoolError{Family: f, Pools: slices.Clone(pools), Reasons: reasons}
	}
	ip, ok := a.sharedCandidate(svc, f, cands, s, opts.Entitled)
	for i := 0; !ok && i < len(cands); i++ {
		var u u128
		if u, ok = cands[i].set(f).firstFree(); ok {
			ip = u.addr(f)
		}
	}
	if !ok {
		names := make([]string, len(cands))
		for i, p := range cands {
			names[i] = p.name
		}
		return netip.Addr{}, &PoolFullError{Pools: names, Family: f}
	}
	switch {
	case sv == nil:
		sv = a.newService(svc, s)
	case !sv.sharing.equal(s):
		// Re-hold under the new constraints so the key index follows.
		held := slices.Clone(sv.ips)
		a.Release(svc)
		sv = a.newService(svc, s)
		for _, h := range held {
			a.hold(svc, sv, h)
		}
	}
	a.hold(svc, sv, ip)
	return ip, nil
}

// candidates returns the pools that may serve an automatic request of
// family f, in priority order, and why the others may not.
func (a *Allocator) candidates(out []*pool, f Family, names []string, opts AllocateOptions) ([]*pool, []string) {
	var reasons []string
	consider := func(p *pool) {
		switch {
		case p.set(f) == nil:
			reasons = append(reasons, fmt.Sprintf("pool %s has no %s range", p.name, f))
		case !p.autoAssign && !(opts.Explicit && len(names) > 0):
			reasons = append(reasons, fmt.Sprintf("pool %s has autoAssign disabled", p.name))
		default:
			out = append(out, p)
		}
	}
	if len(names) == 0 {
		for _, p := range a.pools {
			consider(p)
		}
		return out, reasons
	}
	for _, n := range names {
		if p := a.byName[n]; p == nil {
			reasons = append(reasons, fmt.Sprintf("pool %s does not exist", n))
		} else if !slices.Contains(out, p) {
			consider(p)
		}
	}
	return out, reasons
}

// sharedCandidate finds the best address of family f in cands that
// services compatible with s already hold: highest-priority pool first,
// then lowest address. It costs O(addresses held under s.Key).
func (a *Allocator) sharedCandidate(svc string, f Family, cands []*pool, s Sharing, entitled []string) (netip.Addr, bool) {
	if s.Key == "" {
		return netip.Addr{}, false
	}
	best, bestRank := netip.Addr{}, len(cands)
	for ip := range a.byKey[s.Key] {
		h := a.addrs[ip]
		if FamilyOf(ip) != f || h.pool == nil || (h.pool.avoidBuggy && isBuggy(ip)) || slices.Contains(h.svcs, svc) ||
			a.checkReserved(svc, ip, entitled, true) != nil {
			continue
		}
		rank := slices.Index(cands, h.pool)
		if rank < 0 || rank > bestRank || rank == bestRank && best.Less(ip) {
			continue
		}
		if a.checkSharing(svc, ip, s, true) == nil {
			best, bestRank = ip, rank
		}
	}
	return best, best.IsValid()
}

func (a *Allocator) newService(name string, s Sharing) *service {
	sv := &service{sharing: s}
	sv.sharing.Ports = slices.Clone(s.Ports)
	sv.ips = sv.buf[:0]
	a.svcs[name] = sv
	return sv
}

// hold adds ip to svc's holdings; the caller has checked it may.
func (a *Allocator) hold(svc string, sv *service, ip netip.Addr) {
	h, held := a.addrs[ip]
	if !held {
		h.pool = a.poolOf(ip)
		if h.pool != nil && !a.inUse(ip) {
			h.pool.set(FamilyOf(ip)).add(u128Of(ip))
		}
		if k := sv.sharing.Key; k != "" {
			m := a.byKey[k]
			if m == nil {
				m = map[netip.Addr]struct{}{}
				a.byKey[k] = m
			}
			m[ip] = struct{}{}
		}
	}
	if i, found := slices.BinarySearch(h.svcs, svc); !found {
		h.svcs = slices.Insert(h.svcs, i, svc)
	}
	a.addrs[ip] = h
	if i, found := slices.BinarySearchFunc(sv.ips, ip, netip.Addr.Compare); !found {
		sv.ips = slices.Insert(sv.ips, i, ip)
	}
}

// Release frees all of svc's addresses. An address other Services still
// hold (a shared IP) stays theirs; one held back (HoldBack) stays out of
// use; the others become free at once. Release leaves svc's own
// reservations alone.
func (a *Allocator) Release(svc string) {
	sv := a.svcs[svc]
	if sv == nil {
		return
	}
	for _, ip := range sv.ips {
		h := a.addrs[ip]
		if i, found := slices.BinarySearch(h.svcs, svc); found {
			h.svcs = slices.Delete(h.svcs, i, i+1)
		}
		if len(h.svcs) > 0 {
			a.addrs[ip] = h
			continue
		}
		delete(a.addrs, ip)
		if h.pool != nil && !a.inUse(ip) {
			h.pool.set(FamilyOf(ip)).remove(u128Of(ip))
		}
		if k := sv.sharing.Key; k != "" {
			if m := a.byKey[k]; m != nil {
				delete(m, ip)
				if len(m) == 0 {
					delete(a.byKey, k)
				}
			}
		}
	}
	delete(a.svcs, svc)
}

// IPs returns svc's addresses, sorted (IPv4 first), or nil.
func (a *Allocator) IPs(svc string) []netip.Addr {
	if sv := a.svcs[svc]; sv != nil {
		return slices.Clone(sv.ips)
	}
	return nil
}

// Holders returns the services holding addr, sorted, or nil. More than one
// means the address is shared.
func (a *Allocator) Holders(addr netip.Addr) []string {
	return slices.Clone(a.addrs[addr].svcs)
}

// PoolOf returns the name of the pool whose ranges contain addr, held or
// not, so the controller can say which pool a Service's address is from.
func (a *Allocator) PoolOf(addr netip.Addr) (string, bool) {
	if p := a.poolOf(addr); p != nil {
		return p.name, true
	}
	return "", false
}

// Orphans returns the services holding addresses outside every pool, with
// those addresses (sorted). They appear when a pool shrinks or is deleted
// under a Service; the controller reports them rather than silently moving
// the Service to a new address. The cost is O(allocations).
func (a *Allocator) Orphans() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for name, sv := range a.svcs {
		for _, ip := range sv.ips {
			if a.addrs[ip].pool == nil {
				out[name] = append(out[name], ip)
			}
		}
	}
	return out
}

// PoolUsers returns the services holding addresses of the named pool,
// sorted, so that deleting a pool in use can be held back and explained.
// The cost is O(allocations).
func (a *Allocator) PoolUsers(name string) []string {
	p := a.byName[name]
	if p == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range a.addrs {
		if h.pool != p {
			continue
		}
		for _, s := range h.svcs {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// FreeRanges returns up to max ranges of free, assignable addresses of
// family f in the named pool, lowest first, for messages such as "free in
// pool default: 198.51.100.91-198.51.100.97". With AvoidBuggyIPs no range
// contains a .0 or .255 address. It costs O(max · log n) whatever the size
// of the pool; nil for an unknown pool or family.
func (a *Allocator) FreeRanges(pool string, f Family, max int) []Range {
	p := a.byName[pool]
	if p == nil || (f != IPv4 && f != IPv6) || p.set(f) == nil || max <= 0 {
		return nil
	}
	if out := p.set(f).freeRanges(max); len(out) > 0 {
		return out
	}
	return nil
}

// Stats counts the named pool's addresses in O(1) plus O(reservations);
// the zero Stats for an unknown pool.
func (a *Allocator) Stats(pool string) Stats {
	p := a.byName[pool]
	if p == nil {
		return Stats{}
	}
	st := Stats{Total: map[Family]uint64{}, Used: map[Family]uint64{}, Free: map[Family]uint64{}}
	for _, s := range []*famSet{p.v4, p.v6} {
		if s == nil {
			continue
		}
		st.Total[s.fam] = s.total.sat64()
		st.Used[s.fam] = s.used
		st.Free[s.fam] = s.free().sat64()
	}
	for ip := range a.reservations {
		if a.poolOf(ip) != p {
			continue
		}
		f := FamilyOf(ip)
		if st.Reserved == nil {
			st.Reserved = map[Family]uint64{}
		}
		st.Reserved[f]++
		if _, held := a.addrs[ip]; !held && len(a.heldBack[ip]) == 0 {
			st.Used[f]-- // in the used set only for the reservation
		}
	}
	return st
}

// Pools returns the names of the pools SetPools kept, in priority order,
// so metrics and status can walk every pool without keeping their own list.
func (a *Allocator) Pools() []string {
	out := make([]string, len(a.pools))
	for i, p := range a.pools {
		out[i] = p.name
	}
	return out
}
