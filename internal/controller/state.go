package controller

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// state is what the reconcilers share: the config in force and the
// allocator. mu guards both; holders keep it only for in-memory decisions,
// never across API calls, so a slow API server cannot stall allocation.
type state struct {
	mu    sync.Mutex
	cfg   *config.Config
	alloc *ipam.Allocator
	// terminating names pools being deleted: they keep their allocations
	// but give out no new addresses.
	terminating map[string]bool
	// requests holds, per Service holding addresses, the addressKey of the
	// request they were given for; see decide.
	requests map[string]string
	// pending holds the Services waiting for an address and what they
	// wait for, so that a release wakes those that may take what it freed
	// (see waitingFor).
	pending map[string]waitFor
	// displaced records, from Restore, Services whose status claimed an
	// address an older Service also claimed.
	displaced map[string]displacement

	// ready is closed when Restore has rebuilt the allocator; reconcilers
	// wait for it so nothing is assigned before every existing allocation
	// is known.
	ready chan struct{}
}

// displacement explains why a Service lost the address in its status.
type displacement struct {
	msg string
	ips []netip.Addr // what it got instead; nil until it got something
}

func newState() *state {
	return &state{
		cfg:         &config.Config{Pools: map[string]*config.Pool{}},
		alloc:       ipam.New(),
		terminating: map[string]bool{},
		pending:     map[string]waitFor{},
		requests:    map[string]string{},
		displaced:   map[string]displacement{},
		ready:       make(chan struct{}),
	}
}

// holdBack keeps the addresses key's status shows (shown) but key no
// longer holds from every other Service, replacing what it held back
// before. It reports whether it holds any back now, and which it let go
// of that it held back before (a Service may be waiting for one).
//
// The status is the record of who holds what that Restore reads: were
// such an address given to another Service whose status then showed it, a
// restart before key's status was rewritten would find two Services
// claiming it, and might take it from the one whose spec did not change.
// The Reconcile that writes key's status lets them go once the write is
// done. Callers hold mu.
func (s *state) holdBack(key string, shown []netip.Addr) (holds bool, freed []netip.Addr) {
	var gone []netip.Addr
	if len(shown) > 0 { // not for a new Service: a burst of them takes this path
		held := s.alloc.IPs(key)
		for _, a := range shown {
			if !slices.Contains(held, a) {
				gone = append(gone, a)
			}
		}
	}
	for _, a := range s.alloc.Reserved(key) {
		if !slices.Contains(gone, a) {
			freed = append(freed, a)
		}
	}
	s.alloc.Reserve(key, gone)
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

// waitFor is what the Service si, just decided pending, waits for.
// Callers hold mu.
func (s *state) waitFor(si serviceInfo, req request, reqErr error) waitFor {
	switch {
	case reqErr != nil:
		return waitFor{}
	case len(req.ips) > 0:
		return waitFor{ips: req.ips}
	}
	names, _, fail := s.candidatePools(si, req)
	if fail != nil {
		return waitFor{}
	}
	return waitFor{pools: names}
}

// waitingFor returns the pending Services that may take one of freed, the
// addresses a Service just let go of: those waiting for one of them, or
// for an address of a pool one of them is in. Waking every pending Service
// instead cost a decide per pending Service for every address freed, also
// for those that cannot use it. Callers hold mu.
func (s *state) waitingFor(freed []netip.Addr) []string {
	if len(freed) == 0 {
		return nil
	}
	var pools []string
	for _, a := range freed {
		if p, ok := s.alloc.PoolOf(a); ok && !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	var out []string
	for key, w := range s.pending {
		if slices.ContainsFunc(w.pools, func(p string) bool { return slices.Contains(pools, p) }) ||
			slices.ContainsFunc(w.ips, func(a netip.Addr) bool { return slices.Contains(freed, a) }) {
			out = append(out, key)
		}
	}
	return out
}

// setConfig installs cfg and hands its pools to the allocator. Callers hold mu.
func (s *state) setConfig(cfg *config.Config, terminating map[string]bool) {
	s.cfg = cfg
	s.terminating = terminating
	pools := make([]ipam.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools = append(pools, ipam.Pool{
			Name:          p.Name,
			Ranges:        p.Ranges,
			AutoAssign:    p.AutoAssign && !terminating[p.Name],
			AvoidBuggyIPs: p.AvoidBuggyIPs,
		})
	}
	s.alloc.SetPools(pools)
}
