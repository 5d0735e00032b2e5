package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// ledger owns the controller's allocation state: the config in force, the
// allocator, and what the controller knows of each Service besides (the
// request each holder was given its addresses for, the pending Services
// and what they wait for, the Services displaced at restore, the pools
// being deleted).
//
// Ownership and concurrency: the service reconciler's workers, the config
// reconciler and the restorer share one ledger, and reach its state only
// through the methods in this file, which take and return values. The lock
// is the ledger's own; each method holds it for one in-memory decision and
// never across an API call, so a slow API server cannot stall allocation.
// What a change asks of others (Services to wake, pool status to write) is
// returned as wakeups, for the caller to act on outside the lock. The
// methods in decide.go and the helpers here whose doc says "Callers hold
// l.mu" run inside one of those critical sections.
type ledger struct {
	mu    sync.Mutex
	cfg   *config.Config
	alloc *ipam.Allocator
	// terminating names pools being deleted: they keep their allocations
	// but give out no new addresses.
	terminating map[string]bool
	// requests holds, per Service holding addresses, the addressKey of the
	// request they were given for; see decideLocked.
	requests map[string]string
	// pending holds the Services waiting for an address and what they
	// wait for, so that a release wakes those that may take what it freed
	// (see waitingFor).
	pending map[string]waitFor
	// displaced records, from restore, Services whose status claimed an
	// address an older Service also claimed.
	displaced map[string]displacement
	// entitled holds, per Service some IPReservation in force is for, the
	// names of those reservations, as of its last decide; it tells
	// reservationStates whom a selector's reservation is for.
	entitled map[string][]string
	// usageChanged: pool usage changed since poolUsage last read it.
	usageChanged bool

	// ready is closed when restore has rebuilt the allocator; reconcilers
	// wait for it (waitRestored) so nothing is assigned before every
	// existing allocation is known.
	ready chan struct{}
}

// displacement explains why a Service lost the address in its status.
type displacement struct {
	msg string
	ips []netip.Addr // what it got instead; nil until it got something
}

// wakeups is what a change to the ledger asks of the reconcilers, which
// act on it after the ledger's lock is released.
type wakeups struct {
	// services are the pending Services that may take an address the
	// change freed (see waitingFor).
	services []string
	// poolUsage: pool usage changed, the first time since poolUsage last
	// read it; the pools' status and metrics are due for a write.
	poolUsage bool
	// deletedPool: a pool being deleted may have no users left, so its
	// finalizer may come off.
	deletedPool bool
}

func newLedger() *ledger {
	return &ledger{
		cfg:         &config.Config{Pools: map[string]*config.Pool{}},
		alloc:       ipam.New(),
		terminating: map[string]bool{},
		pending:     map[string]waitFor{},
		requests:    map[string]string{},
		displaced:   map[string]displacement{},
		entitled:    map[string][]string{},
		ready:       make(chan struct{}),
	}
}

// deletingPools names the pools of in being deleted. It is the one
// definition of "terminating" for restore and the config reconciler alike.
func deletingPools(in config.Input) map[string]bool {
	out := map[string]bool{}
	for _, p := range in.Pools {
		if !p.DeletionTimestamp.IsZero() {
			out[p.Name] = true
		}
	}
	return out
}

// waitRestored returns once restore has run, or with ctx's error.
func (l *ledger) waitRestored(ctx context.Context) error {
	select {
	case <-l.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claim is one Service's claim, at restore, on the addresses its status
// shows.
type claim struct {
	svc  *svcRecord
	key  string
	rank int // svc.claimRank()
}

// restoreResult is what restore did, for its log line.
type restoreResult struct {
	restored  int
	displaced []displacedClaim
	pools     int
	problems  []config.Problem
}

// displacedClaim is a claim restore did not honour because an earlier
// claim holds the address (see restorer).
type displacedClaim struct {
	key string
	ips []netip.Addr
	err error
}

// restore builds the Config from in, keeping for an invalid object its
// version in prev (the last good versions saved in the cluster, see
// lastGood; nil for none), gives the allocator every address of
// claims, first claim first (see restorer for the order and why), and
// marks the ledger restored, which lets decide begin. It is the start-up
// step and runs once.
func (l *ledger) restore(in config.Input, prev *config.Config, claims []claim) restoreResult {
	rank := make(map[string]int, len(claims))
	for _, c := range claims {
		rank[c.key] = c.rank
	}
	l.mu.Lock()
	defer close(l.ready)
	defer l.mu.Unlock()
	cfg, problems := config.Build(in, prev)
	l.install(cfg, deletingPools(in))
	res := restoreResult{pools: len(cfg.Pools), problems: problems}
	// Held back only once every claim is in: holding back an address
	// another Service keeps would refuse it to a later Service that shares
	// it with that one.
	var holdBack []claim
	for _, c := range claims {
		svc, key := c.svc, c.key
		ips := svc.ingress
		if svc.reqErr != nil || !svc.asksFor(ips) || !l.inRequestedPool(svc.req, ips) {
			holdBack = append(holdBack, c)
			continue
		}
		if err := l.alloc.Assign(key, ips, svc.req.sharing, ipam.AssignOptions{}); err != nil {
			why := "the older Service keeps the address"
			var conflict *ipam.ConflictError
			if errors.As(err, &conflict) && slices.ContainsFunc(conflict.Holders, func(h string) bool { return rank[h] < c.rank }) {
				why = "its sharing key or ports may have changed since its status was written, and those of the Service that keeps the address have not"
			}
			l.displaced[key] = displacement{msg: fmt.Sprintf("Its status claimed %s, but %s; %s.", joinAddrs(ips), err, why)}
			res.displaced = append(res.displaced, displacedClaim{key: key, ips: ips, err: err})
			holdBack = append(holdBack, c)
			continue
		}
		l.requests[key] = svc.req.addressKey()
		res.restored++
	}
	for _, c := range holdBack {
		l.holdBack(c.key, c.svc.ingress)
	}
	return res
}

// setConfig builds the Config from in and puts it in force. Build gets the
// Config in force, so an object that turned invalid keeps its last good
// version.
func (l *ledger) setConfig(in config.Input) []config.Problem {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg, problems := config.Build(in, l.cfg)
	l.install(cfg, deletingPools(in))
	return problems
}

// decide works out the addresses of the Service si (see decideLocked) and
// holds back those its status shows (shown) but it no longer holds (see
// holdBack). heldBack reports whether it holds any back: the caller calls
// statusWritten once the Service's status is written.
func (l *ledger) decide(si serviceInfo, req request, reqErr error, shown []netip.Addr) (out outcome, heldBack bool, w wakeups) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out = l.decideLocked(si, req, reqErr)
	// In the same critical section, before any other Service can be
	// given what this one just gave up.
	heldBack, freed := l.holdBack(si.key, shown)
	w.services = l.waitingFor(freed)
	w.poolUsage = l.usageChange(out.changed || len(freed) > 0)
	return out, heldBack, w
}

// statusWritten lets go of what the ledger held back for the Service key
// (see holdBack), whose status no longer shows it.
func (l *ledger) statusWritten(key string) wakeups {
	l.mu.Lock()
	defer l.mu.Unlock()
	freed := l.alloc.HeldBack(key)
	l.alloc.HoldBack(key, nil)
	return wakeups{services: l.waitingFor(freed), poolUsage: l.usageChange(len(freed) > 0)}
}

// release frees key's addresses, held or held back, and forgets the
// Service. It serves Services that are gone, being deleted or not
// ironlb's: restore disregards what their status shows, so nothing need
// wait for it to be cleared.
func (l *ledger) release(key string) wakeups {
	l.mu.Lock()
	defer l.mu.Unlock()
	freed := append(l.alloc.IPs(key), l.alloc.HeldBack(key)...)
	l.alloc.Release(key)
	l.alloc.HoldBack(key, nil)
	delete(l.pending, key)
	delete(l.displaced, key)
	delete(l.requests, key)
	delete(l.entitled, key)
	had := len(freed) > 0
	return wakeups{
		services:    l.waitingFor(freed),
		poolUsage:   l.usageChange(had),
		deletedPool: had && len(l.terminating) > 0,
	}
}

// poolUsers returns the Services holding addresses of pool, sorted.
func (l *ledger) poolUsers(pool string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alloc.PoolUsers(pool)
}

// poolUsage returns the address counts of every pool in force and, for
// each pool being deleted, the Services holding its addresses. Usage
// changes from then on are news again (see wakeups.poolUsage).
func (l *ledger) poolUsage() (stats map[string]ipam.Stats, users map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.usageChanged = false
	stats = map[string]ipam.Stats{}
	for _, name := range l.alloc.Pools() {
		stats[name] = l.alloc.Stats(name)
	}
	users = map[string][]string{}
	for name := range l.terminating {
		users[name] = l.alloc.PoolUsers(name)
	}
	return stats, users
}

// usageChange records whether pool usage changed, and reports whether
// that is news: the first change since poolUsage last read the usage.
// Callers hold l.mu.
func (l *ledger) usageChange(changed bool) bool {
	if !changed || l.usageChanged {
		return false
	}
	l.usageChanged = true
	return true
}

// install puts cfg in force and hands its pools and reservations to the
// allocator; the terminating pools give out no new addresses. Callers
// hold l.mu.
func (l *ledger) install(cfg *config.Config, terminating map[string]bool) {
	l.cfg = cfg
	l.terminating = terminating
	pools := make([]ipam.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools = append(pools, ipam.Pool{
			Name:          p.Name,
			Ranges:        p.Ranges,
			AutoAssign:    p.AutoAssign && !terminating[p.Name],
			AvoidBuggyIPs: p.AvoidBuggyIPs,

			AllowSharingAcrossNamespaces: p.AllowSharingAcrossNamespaces,
		})
	}
	l.alloc.SetPools(pools)
	reserved := map[netip.Addr]string{}
	for _, r := range cfg.Reservations {
		for _, a := range r.Addrs {
			reserved[a] = r.Name
		}
	}
	l.alloc.SetReservations(reserved)
}

// holdBack keeps the addresses key's status shows (shown) but key does
// not hold from every other Service, replacing what it held back before.
// It reports whether it holds any back, and which it let go of that it
// held back before (a Service may be waiting for one).
//
// The status is the record of who holds what that restore reads: were
// such an address given to another Service whose status then showed it, a
// restart before key's status was rewritten would find two Services
// claiming it, and might take it from the one whose spec did not change.
// The Reconcile that writes key's status lets them go once the write is
// done (statusWritten). Callers hold l.mu.
func (l *ledger) holdBack(key string, shown []netip.Addr) (holds bool, freed []netip.Addr) {
	var gone []netip.Addr
	if len(shown) > 0 { // not for a new Service: a burst of them takes this path
		held := l.alloc.IPs(key)
		for _, a := range shown {
			if !slices.Contains(held, a) {
				gone = append(gone, a)
			}
		}
	}
	for _, a := range l.alloc.HeldBack(key) {
		if !slices.Contains(gone, a) {
			freed = append(freed, a)
		}
	}
	l.alloc.HoldBack(key, gone)
	return len(gone) > 0, freed
}

// waitFor is what a pending Service waits for: an address of one of
// pools (an automatic request), or one of ips (a request for addresses).
// One waiting for neither (an invalid request, no pool it may use) waits
// for its own spec or the config to change, which wake it anyway.
type waitFor struct {
	pools []string
	ips   []netip.Addr
}

// waitFor is what the Service si, just decided pending (or short of a
// family it requires), waits for: the addresses it requests, and an
// address of the pools for each family it leaves to them. Callers hold
// l.mu.
func (l *ledger) waitFor(si serviceInfo, req request, reqErr error) waitFor {
	if reqErr != nil {
		return waitFor{}
	}
	w := waitFor{ips: req.ips}
	if len(missingFamilies(req.ips, req.families)) > 0 {
		if names, _, fail := l.autoPools(si, req); fail == nil {
			w.pools = names
		}
	}
	return w
}

// waitingFor returns the pending Services that may take one of freed, the
// addresses a Service just let go of: those waiting for one of them, or
// for an address of a pool one of them is in. Waking every pending Service
// instead would cost a decide per pending Service for every address freed,
// also for those that cannot use it. Callers hold l.mu.
func (l *ledger) waitingFor(freed []netip.Addr) []string {
	if len(freed) == 0 {
		return nil
	}
	var pools []string
	for _, a := range freed {
		if p, ok := l.alloc.PoolOf(a); ok && !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	var out []string
	for key, w := range l.pending {
		if slices.ContainsFunc(w.pools, func(p string) bool { return slices.Contains(pools, p) }) ||
			slices.ContainsFunc(w.ips, func(a netip.Addr) bool { return slices.Contains(freed, a) }) {
			out = append(out, key)
		}
	}
	return out
}

// inRequestedPool reports whether ips may be what req, if it names a pool,
// was given: each address is in that pool or in none. One in another pool
// means the Service asked for another pool since its status was written
// (while no controller ran): restoring it would record the new request as
// met and keep the Service in the wrong pool for good. An address in no
// pool is kept, as while the controller runs: its pool may have shrunk
// under it, which moves nobody. (A range moved from one pool to another
// while no controller ran looks like a changed request, and moves its
// Services to their pool.) Callers hold l.mu.
func (l *ledger) inRequestedPool(req request, ips []netip.Addr) bool {
	if req.pool == "" {
		return true
	}
	for _, a := range ips {
		if p, ok := l.alloc.PoolOf(a); ok && p != req.pool {
			return false
		}
	}
	return true
}
