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
	// changed: ips differ from what the Service held before this decision.
	changed bool
}

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
func (l *ledger) decideLocked(si serviceInfo, req request, reqErr error) outcome {
	before := l.alloc.IPs(si.key)
	out := l.decideInner(si, req, reqErr, before)
	after := l.alloc.IPs(si.key)
	out.changed = !slices.Equal(before, after)
	if len(after) > 0 {
		l.requests[si.key] = req.addressKey()
	} else {
		delete(l.requests, si.key)
	}
	if out.reason == v1alpha1.ReasonAllocated {
		out.ips = inFamilyOrder(after, req.families)
		delete(l.pending, si.key)
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

func (l *ledger) decideInner(si serviceInfo, req request, reqErr error, held []netip.Addr) outcome {
	if reqErr != nil {
		l.alloc.Release(si.key)
		return outcome{reason: v1alpha1.ReasonInvalidRequest, message: reqErr.Error()}
	}
	// What a Service holds stays while its own request is unchanged,
	// whatever the config does since (a pool that shrank leaves it alone);
	// after the Service's own request changed, what it holds must match
	// the new request under the config in force.
	if len(held) > 0 && (l.requests[si.key] == req.addressKey() || l.keeps(held, req)) {
		// Re-assert with the current sharing rules: the Service's own ports
		// may have changed so that it now collides with a Service it shares
		// with. Then, and only then, it must move.
		if err := l.alloc.Assign(si.key, held, req.sharing, ipam.AssignOptions{}); err == nil {
			missing := missingFamilies(held, req.families)
			if len(missing) == 0 || len(req.ips) > 0 {
				return l.allocated(si.key)
			}
			// PreferDualStack gaining a family: add it, keep the rest.
			for _, f := range missing {
				l.allocateFamily(si, req, f)
			}
			return l.allocated(si.key)
		}
	}
	l.alloc.Release(si.key)

	if len(req.ips) > 0 {
		return l.assignRequested(si, req)
	}
	names, explicit, fail := l.candidatePools(si, req)
	if fail != nil {
		return *fail
	}
	var firstErr error
	got := 0
	for _, f := range req.families {
		if _, err := l.alloc.Allocate(si.key, f, names, req.sharing, ipam.AllocateOptions{Explicit: explicit}); err != nil {
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
	return l.allocated(si.key)
}

// keeps reports whether the addresses a Service holds answer its (changed)
// request: the same requested addresses, the right families, and, if it
// names a pool, addresses of that pool.
func (l *ledger) keeps(held []netip.Addr, req request) bool {
	if len(req.ips) > 0 {
		return req.requestsExactly(held)
	}
	for _, a := range held {
		if !slices.Contains(req.families, ipam.FamilyOf(a)) {
			return false
		}
		if req.pool != "" {
			if p, _ := l.alloc.PoolOf(a); p != req.pool {
				return false
			}
		}
	}
	return !req.requireAll || len(missingFamilies(held, req.families)) == 0
}

func (l *ledger) allocateFamily(si serviceInfo, req request, f ipam.Family) {
	names, explicit, fail := l.candidatePools(si, req)
	if fail == nil {
		l.alloc.Allocate(si.key, f, names, req.sharing, ipam.AllocateOptions{Explicit: explicit})
	}
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

// assignRequested claims the addresses the Service asked for by name.
func (l *ledger) assignRequested(si serviceInfo, req request) outcome {
	var allowed []string
	for name, p := range l.cfg.Pools {
		if l.terminating[name] || (req.pool != "" && name != req.pool) {
			continue
		}
		if p.Allows(si.namespace, si.nsLabels, si.labels) {
			allowed = append(allowed, name)
		}
	}
	slices.Sort(allowed)
	if len(allowed) == 0 {
		allowed = []string{""} // a pool name nobody has: everything is "not allowed"
	}
	err := l.alloc.Assign(si.key, req.ips, req.sharing, ipam.AssignOptions{RequirePool: true, Pools: allowed})
	if err != nil {
		return l.failure(err, allowed)
	}
	return l.allocated(si.key)
}

func (l *ledger) allocated(key string) outcome {
	ips := l.alloc.IPs(key)
	var parts []string
	for _, a := range ips {
		if p, ok := l.alloc.PoolOf(a); ok {
			parts = append(parts, fmt.Sprintf("%s from pool %s", a, p))
		} else {
			parts = append(parts, fmt.Sprintf("%s (outside every pool now: kept, not renumbered; add it back to a pool or move the Service)", a))
		}
	}
	return outcome{reason: v1alpha1.ReasonAllocated, message: "assigned " + strings.Join(parts, ", ")}
}

// failure turns an allocator error into a reason and a message that tells
// the operator what to do, with free addresses where that helps.
func (l *ledger) failure(err error, pools []string) outcome {
	var (
		conflict   *ipam.ConflictError
		notInPool  *ipam.NotInPoolError
		notAllowed *ipam.PoolNotAllowedError
		buggy      *ipam.BuggyIPError
		full       *ipam.PoolFullError
		noPool     *ipam.NoPoolError
	)
	switch {
	case errors.As(err, &conflict):
		p, _ := l.alloc.PoolOf(conflict.Addr)
		return outcome{reason: v1alpha1.ReasonIPInUse, message: err.Error() + l.freeHint(p, ipam.FamilyOf(conflict.Addr))}
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
