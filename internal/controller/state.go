package controller

import (
	"net/netip"
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
