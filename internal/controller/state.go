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
	// pending holds the Services waiting for an address, so that a release
	// can wake them: the address they asked for may just have become free.
	pending map[string]bool
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
		pending:     map[string]bool{},
		requests:    map[string]string{},
		displaced:   map[string]displacement{},
		ready:       make(chan struct{}),
	}
}

// holdBack keeps the addresses key's status shows (shown) but key no
// longer holds from every other Service, replacing what it held back
// before. It reports whether it holds any back now, and whether it let go
// any it held back before (a Service may be waiting for it).
//
// The status is the record of who holds what that Restore reads: were
// such an address given to another Service whose status then showed it, a
// restart before key's status was rewritten would find two Services
// claiming it, and might take it from the one whose spec did not change.
// The Reconcile that writes key's status lets them go once the write is
// done. Callers hold mu.
func (s *state) holdBack(key string, shown []netip.Addr) (holds, freed bool) {
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
		freed = freed || !slices.Contains(gone, a)
	}
	s.alloc.Reserve(key, gone)
	return len(gone) > 0, freed
}

// pendingKeys are the Services waiting for an address. Callers hold mu.
func (s *state) pendingKeys() []string {
	out := make([]string, 0, len(s.pending))
	for k := range s.pending {
		out = append(out, k)
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
