package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// outcome is the allocator's answer for one Service.
type outcome struct {
	ips     []netip.Addr // in the Service's family order; empty when pending
	reason  string
	message string
	// warning, for an allocated Service, is the reason of the Warning
	// event its message deserves (an address kept where the config would
	// no longer put it); "" for a plain Normal one.
	warning string
	// changed: ips differ from what the Service held before this decision.
	changed bool
	// incomplete: allocated, but short of a family its policy requires;
	// the Service waits for it as a pending one would.
	incomplete bool
}

// Warning event reasons for a Service that keeps an address the config in
// force would not give it now. They are stable API, like the condition
// reasons in api/v1alpha1.
const (
	// eventAddressOutsidePool: the address's pool shrank or was deleted.
	eventAddressOutsidePool = "AddressOutsidePool"
	// eventPoolNoLongerSelects: the address's pool no longer selects the
	// Service (its serviceAllocation, the Service's labels or its
	// namespace's changed).
	eventPoolNoLongerSelects = "PoolNoLongerSelects"
)

// serviceInfo is what decide needs to know of a Service besides its request.
type serviceInfo struct {
	key       string // namespace/name
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
}

// decideLocked works out the addresses of the Service si. It keeps what
// the Service holds unless the Service's own request no longer matches it:
// nothing another Service or a config change does can move an address. It
// records the outcome: the request the addresses were given for, or what
// the Service waits for. Callers hold l.mu, as for every ledger method in
// this file: these are the allocation rules, run inside ledger.decide.
func (l *ledger) decideLocked(si serviceInfo, own request, reqErr error) outcome {
	before := l.alloc.IPs(si.key)
	rr := reservedReq{req: own, own: own}
	if reqErr == nil {
		rr = l.reservedFor(si, own)
	}
	req := rr.req
	if len(req.entitled) > 0 {
		l.entitled[si.key] = req.entitled
	} else {
		delete(l.entitled, si.key)
	}
	out := l.decideInner(si, rr, reqErr, before)
	after := l.alloc.IPs(si.key)
	out.changed = !slices.Equal(before, after)
	out = rr.explain(out, after)
	if len(after) > 0 {
		l.requests[si.key] = req.addressKey()
	} else {
		delete(l.requests, si.key)
	}
	if out.reason == v1alpha1.ReasonAllocated {
		out.ips = inFamilyOrder(after, req.families)
		delete(l.pending, si.key)
		if out.incomplete {
			l.pending[si.key] = l.waitFor(si, req, reqErr)
		}
	} else {
		l.pending[si.key] = l.waitFor(si, req, reqErr)
	}
	// A Service displaced at restore keeps the explanation on its
	// condition for as long as it holds the address it got instead.
	if d, ok := l.displaced[si.key]; ok {
		if d.ips == nil && out.reason == v1alpha1.ReasonAllocated {
			d.ips = out.ips
			l.displaced[si.key] = d
		}
		if d.ips == nil || slices.Equal(d.ips, out.ips) {
			out.message = d.msg + " " + out.message
		} else {
			delete(l.displaced, si.key)
		}
	}
	return out
}

func (l *ledger) decideInner(si serviceInfo, rr reservedReq, reqErr error, held []netip.Addr) outcome {
	req := rr.req
	if reqErr != nil {
		l.alloc.Release(si.key)
		return outcome{reason: v1alpha1.ReasonInvalidRequest, message: reqErr.Error()}
	}
	// What a Service holds stays while its own request is unchanged,
	// whatever the config does since (a pool that shrank leaves it alone);
	// after the Service's own request changed, what it holds must match
	// the new request under the config in force. A reservation for the
	// Service is config too: what the Service held before it applied, and
	// its own request still admits, stays (see reservedReq).
	if len(held) > 0 && (l.requests[si.key] == req.addressKey() || l.keeps(held, req) ||
		rr.fromRes && (l.requests[si.key] == rr.own.addressKey() || l.keeps(held, rr.own))) {
		// Re-assert with the current sharing rules: the Service's own ports
		// may have changed so that it now collides with a Service it shares
		// with. Then, and only then, it must move.
		if err := l.alloc.Assign(si.key, held, req.sharing, ipam.AssignOptions{}); err == nil {
			// A family missing: PreferDualStack gaining one, or a
			// RequireDualStack Service holding one family (its status
			// shows one, or the other family had no free address).
			// Add it; keep the rest either way, as a Service never loses
			// an address for what it cannot get besides.
			var short []string
			for _, f := range missingFamilies(held, req.families) {
				if err := l.allocateFamily(si, req, f); err != nil && req.requireAll {
					short = append(short, fmt.Sprintf("%s: %s", f, l.failure(err, nil).message))
				}
			}
			out := l.allocated(si)
			if len(short) > 0 {
				out.message += fmt.Sprintf("; ipFamilyPolicy RequireDualStack also needs an address of each family, and none could be given for %s (the Service keeps what it has and gets the rest once it is free)",
					strings.Join(short, "; "))
				out.incomplete = true
			}
			return out
		}
	}
	l.alloc.Release(si.key)

	if len(req.ips) > 0 {
		return l.assignRequested(si, req, rr.fromRes)
	}
	names, explicit, fail := l.candidatePools(si, req)
	if fail != nil {
		return *fail
	}
	var firstErr error
	got := 0
	for _, f := range req.families {
		if _, err := l.alloc.Allocate(si.key, f, names, req.sharing, ipam.AllocateOptions{Explicit: explicit, Entitled: req.entitled}); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if req.requireAll {
				l.alloc.Release(si.key)
				return l.failure(err, names)
			}
			continue
		}
		got++
	}
	if got == 0 {
		return l.failure(firstErr, names)
	}
	return l.allocated(si)
}

// keeps reports whether the addresses a Service holds answer its (changed)
// request: the same requested addresses, the right families, and, if it
// names a pool, addresses of that pool.
// A requested address is kept only while requested; an automatic one
// (also the one a RequireDualStack request leaves to the pools) while it
// is of a family the Service has and of the pool it names, if any.
func (l *ledger) keeps(held []netip.Addr, req request) bool {
	if len(req.ips) > 0 && !req.admitsRequested(held) {
		return false
	}
	for _, a := range held {
		if slices.Contains(req.ips, a) {
			continue
		}
		if !slices.Contains(req.families, ipam.FamilyOf(a)) {
			return false
		}
		if req.pool != "" {
			if p, _ := l.alloc.PoolOf(a); p != req.pool {
				return false
			}
		}
	}
	if len(req.ips) > 0 {
		// The requested addresses are all held (admitsRequested); a
		// missing automatic family is added, not a reason to move.
		return true
	}
	return !req.requireAll || len(missingFamilies(held, req.families)) == 0
}

// allocateFamily adds an automatic address of family f to what the
// Service si holds.
func (l *ledger) allocateFamily(si serviceInfo, req request, f ipam.Family) error {
	names, explicit, fail := l.autoPools(si, req)
	if fail != nil {
		return &failedAuto{*fail}
	}
	_, err := l.alloc.Allocate(si.key, f, names, req.sharing, ipam.AllocateOptions{Explicit: explicit, Entitled: req.entitled})
	return err
}

// autoPools is candidatePools for an automatic address. When the Service
// also requests addresses (RequireDualStack naming one family), their
// pools come first, and may be used even with autoAssign off: the Service
// asked for that pool's address, and its other family most likely belongs
// beside it. Callers hold l.mu.
func (l *ledger) autoPools(si serviceInfo, req request) (names []string, explicit bool, fail *outcome) {
	names, explicit, fail = l.candidatePools(si, req)
	if len(req.ips) == 0 || req.pool != "" {
		return names, explicit, fail
	}
	var first []string
	for _, a := range req.ips {
		if p, ok := l.alloc.PoolOf(a); ok && !l.terminating[p] && !slices.Contains(first, p) {
			first = append(first, p)
		}
	}
	if len(first) == 0 {
		return names, explicit, fail
	}
	for _, n := range names {
		if !slices.Contains(first, n) {
			first = append(first, n)
		}
	}
	// Explicit admits pools with autoAssign off, but only those named:
	// the requested addresses' pools, and candidatePools' (which all
	// have it on).
	return first, true, nil
}

// candidatePools returns the pools svc may take automatic addresses from, in
// order, or the reason there are none.
func (l *ledger) candidatePools(si serviceInfo, req request) (names []string, explicit bool, fail *outcome) {
	if req.pool != "" {
		p, ok := l.cfg.Pools[req.pool]
		switch {
		case !ok || l.terminating[req.pool]:
			return nil, false, &outcome{reason: v1alpha1.ReasonUnknownPool, message: fmt.Sprintf(
				"the requested pool %q does not exist%s; pools: %s", req.pool, l.terminatingNote(req.pool), l.poolList())}
		case !p.Allows(si.namespace, si.nsLabels, si.labels):
			return nil, false, &outcome{reason: v1alpha1.ReasonPoolNotAllowed, message: fmt.Sprintf(
				"pool %s does not serve Services in namespace %s with these labels (see its spec.serviceAllocation)", p.Name, si.namespace)}
		}
		return []string{p.Name}, true, nil
	}
	for _, p := range l.cfg.PoolsFor(si.namespace, si.nsLabels, si.labels) {
		if !l.terminating[p.Name] {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		msg := "no address pool is configured: create an IPPool or the legacy ConfigMap"
		if len(l.cfg.Pools) > 0 {
			msg = fmt.Sprintf("no pool with autoAssign serves namespace %s (pools: %s); request a pool with the %s annotation or check the pools' serviceAllocation",
				si.namespace, l.poolList(), "ironlb.io/address-pool")
		}
		return nil, false, &outcome{reason: v1alpha1.ReasonNoPool, message: msg}
	}
	return names, false, nil
}

// assignRequested claims the addresses the Service asked for by name, or
// that a reservation holds for it (fromRes). A reserved address may come
// from a pool whose serviceAllocation does not select the Service: the
// reservation names the Service, and only the cluster's administrators
// write reservations.
func (l *ledger) assignRequested(si serviceInfo, req request, fromRes bool) outcome {
	var allowed []string
	for name, p := range l.cfg.Pools {
		if l.terminating[name] || (req.pool != "" && name != req.pool) {
			continue
		}
		if p.Allows(si.namespace, si.nsLabels, si.labels) {
			allowed = append(allowed, name)
		}
	}
	if fromRes {
		for _, a := range req.ips {
			if p, ok := l.alloc.PoolOf(a); ok && !l.terminating[p] && (req.pool == "" || p == req.pool) && !slices.Contains(allowed, p) {
				allowed = append(allowed, p)
			}
		}
	}
	slices.Sort(allowed)
	if len(allowed) == 0 {
		allowed = []string{""} // a pool name nobody has: everything is "not allowed"
	}
	err := l.alloc.Assign(si.key, req.ips, req.sharing, ipam.AssignOptions{RequirePool: true, Pools: allowed, Entitled: req.entitled})
	if err != nil {
		return l.failure(err, allowed)
	}
	// RequireDualStack with one family requested: the other comes from
	// the pools, or the Service waits for both (it must not run on one).
	for _, f := range missingFamilies(req.ips, req.families) {
		if err := l.allocateFamily(si, req, f); err != nil {
			l.alloc.Release(si.key)
			out := l.failure(err, nil)
			out.message = fmt.Sprintf("ipFamilyPolicy RequireDualStack needs an %s address besides the requested %s, and none can be given, so the Service waits for both: %s",
				f, joinAddrs(req.ips), out.message)
			return out
		}
	}
	return l.allocated(si)
}

// allocated describes what the Service si holds. An address kept where
// the config in force would no longer put it says so, with what to do:
// ironlb never renumbers a Service for a config or label change (see
// "Where ironlb differs from MetalLB" in the README), so the operator must
// learn of it from the Service.
func (l *ledger) allocated(si serviceInfo) outcome {
	ips := l.alloc.IPs(si.key)
	out := outcome{reason: v1alpha1.ReasonAllocated}
	var parts []string
	for _, a := range ips {
		p, ok := l.alloc.PoolOf(a)
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("%s (outside every pool now: kept, not renumbered; add it back to a pool or move the Service)", a))
			out.warning = eventAddressOutsidePool
		case l.cfg.Pools[p] != nil && !l.cfg.Pools[p].Allows(si.namespace, si.nsLabels, si.labels) && !l.reservedTo(si.key, a):
			parts = append(parts, fmt.Sprintf("%s from pool %s (the pool's spec.serviceAllocation no longer selects this Service in namespace %s: kept, not renumbered; to move it, name a pool that serves it in %s, or let the pool select it again)",
				a, p, si.namespace, v1alpha1.AnnotationAddressPool))
			if out.warning == "" {
				out.warning = eventPoolNoLongerSelects
			}
		default:
			parts = append(parts, fmt.Sprintf("%s from pool %s", a, p))
		}
	}
	out.message = "assigned " + strings.Join(parts, ", ")
	return out
}

// failedAuto carries candidatePools' refusal, reason and all, through
// allocateFamily's error to failure.
type failedAuto struct{ out outcome }

func (e *failedAuto) Error() string { return e.out.message }

// failure turns an allocator error into a reason and a message that tells
// the operator what to do, with free addresses where that helps.
func (l *ledger) failure(err error, pools []string) outcome {
	var (
		auto       *failedAuto
		conflict   *ipam.ConflictError
		notInPool  *ipam.NotInPoolError
		notAllowed *ipam.PoolNotAllowedError
		buggy      *ipam.BuggyIPError
		full       *ipam.PoolFullError
		noPool     *ipam.NoPoolError
		reserved   *ipam.ReservedError
	)
	switch {
	case errors.As(err, &auto):
		return auto.out
	case errors.As(err, &reserved):
		return l.reservedFailure(reserved)
	case errors.As(err, &conflict):
		p, _ := l.alloc.PoolOf(conflict.Addr)
		msg := err.Error()
		if conflict.OtherNamespace {
			msg += l.acrossNamespacesFix(p)
		}
		return outcome{reason: v1alpha1.ReasonIPInUse, message: msg + l.freeHint(p, ipam.FamilyOf(conflict.Addr))}
	case errors.As(err, &notInPool):
		return outcome{reason: v1alpha1.ReasonNotInPool, message: fmt.Sprintf("%s is not in any address pool; pools: %s", notInPool.Addr, l.poolList())}
	case errors.As(err, &notAllowed):
		return outcome{reason: v1alpha1.ReasonPoolNotAllowed, message: err.Error() + l.freeHintAny(pools, ipam.FamilyOf(notAllowed.Addr))}
	case errors.As(err, &buggy):
		return outcome{reason: v1alpha1.ReasonBuggyIP, message: err.Error() + l.freeHint(buggy.Pool, ipam.FamilyOf(buggy.Addr))}
	case errors.As(err, &full):
		return outcome{reason: v1alpha1.ReasonPoolExhausted, message: err.Error() + "; add addresses to the pool, or free some by deleting Services or switching them away from type LoadBalancer"}
	case errors.As(err, &noPool):
		return outcome{reason: v1alpha1.ReasonNoPool, message: err.Error()}
	}
	return outcome{reason: v1alpha1.ReasonAllocationError, message: err.Error()}
}

// acrossNamespacesFix says how to let Services of different namespaces
// share an address of pool, for a Service refused for the namespace rule
// (see ipam.Sharing). A legacy ConfigMap pool has no key for it: MetalLB's
// format is read as MetalLB wrote it, so the fix is to define the pool as
// an IPPool.
func (l *ledger) acrossNamespacesFix(pool string) string {
	p := l.cfg.Pools[pool]
	switch {
	case p == nil:
		return "; only an address of an IPPool with spec.allowSharingAcrossNamespaces: true may be shared across namespaces"
	case p.Source.Kind == "ConfigMap":
		return fmt.Sprintf("; pool %s comes from the legacy ConfigMap, which cannot allow that: to share it across namespaces, define the pool as an IPPool (ironlbctl convert writes one) with spec.allowSharingAcrossNamespaces: true", pool)
	}
	return fmt.Sprintf("; to share it across namespaces, set spec.allowSharingAcrossNamespaces: true on IPPool/%s", pool)
}

func (l *ledger) freeHint(pool string, f ipam.Family) string {
	if pool == "" {
		return ""
	}
	free := l.alloc.FreeRanges(pool, f, 4)
	if len(free) == 0 {
		return fmt.Sprintf("; pool %s has no free %s address", pool, f)
	}
	return fmt.Sprintf("; free in pool %s: %s", pool, joinRanges(free))
}

func (l *ledger) freeHintAny(pools []string, f ipam.Family) string {
	for _, p := range pools {
		if p != "" && len(l.alloc.FreeRanges(p, f, 1)) > 0 {
			return l.freeHint(p, f)
		}
	}
	return ""
}

func (l *ledger) poolList() string {
	if len(l.cfg.Pools) == 0 {
		return "none configured"
	}
	var parts []string
	for _, name := range sortedKeys(l.cfg.Pools) {
		p := l.cfg.Pools[name]
		rs := make([]string, len(p.Ranges))
		for i, r := range p.Ranges {
			rs[i] = r.String()
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", name, strings.Join(rs, ", ")))
	}
	return strings.Join(parts, "; ")
}

func (l *ledger) terminatingNote(pool string) string {
	if l.terminating[pool] {
		return " (it is being deleted)"
	}
	return ""
}

func joinRanges(rs []ipam.Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

func missingFamilies(held []netip.Addr, want []ipam.Family) []ipam.Family {
	var out []ipam.Family
	for _, f := range want {
		if !slices.ContainsFunc(held, func(a netip.Addr) bool { return ipam.FamilyOf(a) == f }) {
			out = append(out, f)
		}
	}
	return out
}

// inFamilyOrder orders ips like the Service's ipFamilies, so the primary
// family's address comes first in status, as on cloud load balancers.
func inFamilyOrder(ips []netip.Addr, fams []ipam.Family) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, f := range fams {
		for _, a := range ips {
			if ipam.FamilyOf(a) == f {
				out = append(out, a)
			}
		}
	}
	for _, a := range ips {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
