package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/procusage"
)

// rest is what the cluster costs at rest, per node.
type rest struct {
	Window time.Duration
	// CPU is each speaker's CPU over the window, in ms per second.
	CPU map[string]float64
	// RSS and PeakRSS are each speaker's resident memory at the end of
	// the window and its peak so far, in bytes.
	RSS, PeakRSS map[string]int64
	// Gossip is each node's traffic on the gossip port.
	Gossip map[string]rate
	// ControllerCPU is the controller's, in ms per second.
	ControllerCPU float64
}

// sample is one reading of every speaker's usage and every node's
// counters.
type sample struct {
	usage      map[string]procusage.Usage
	usageAt    map[string]time.Time
	gossip     map[string]traffic
	controller procusage.Usage
	at         time.Time
}

// atRest installs the gossip counters, waits for -settle and measures
// over the -rest window.
func (b *bench) atRest(ctx context.Context) (rest, error) {
	nodes := b.cl.Lab.Nodes()
	if err := forEach(nodes, func(h *labnet.Host) error { return countGossip(ctx, h, gossipPort) }); err != nil {
		return rest{}, err
	}
	fmt.Fprintf(b.diag, "# settling for %s, then measuring at rest for %s\n", b.opts.Settle, b.opts.Rest)
	time.Sleep(b.opts.Settle)
	s0, err := b.sample(ctx, nodes)
	if err != nil {
		return rest{}, err
	}
	time.Sleep(b.opts.Rest)
	s1, err := b.sample(ctx, nodes)
	if err != nil {
		return rest{}, err
	}
	r := rest{Window: s1.at.Sub(s0.at), CPU: map[string]float64{}, RSS: map[string]int64{}, PeakRSS: map[string]int64{}, Gossip: map[string]rate{}}
	for _, h := range nodes {
		n := h.Name
		r.CPU[n] = msPerSecond(s1.usage[n].CPU-s0.usage[n].CPU, s1.usageAt[n].Sub(s0.usageAt[n]))
		r.RSS[n], r.PeakRSS[n] = s1.usage[n].RSS, s1.usage[n].PeakRSS
		r.Gossip[n] = rateBetween(s0.gossip[n], s1.gossip[n])
	}
	r.ControllerCPU = msPerSecond(s1.controller.CPU-s0.controller.CPU, s1.at.Sub(s0.at))
	return r, nil
}

// sample reads every speaker's usage and every node's counters, each with
// the time it was read: with a hundred nodes a reading takes a while, and
// each node's figure is over its own interval.
func (b *bench) sample(ctx context.Context, nodes []*labnet.Host) (sample, error) {
	s := sample{usage: map[string]procusage.Usage{}, usageAt: map[string]time.Time{}, gossip: map[string]traffic{}}
	var mu sync.Mutex
	err := forEach(nodes, func(h *labnet.Host) error {
		u, err := procusage.Of(b.cl.Speaker(h.Name), filepath.Base(b.cl.SpeakerBin()))
		if err != nil {
			return fmt.Errorf("speaker of %s: %w", h.Name, err)
		}
		at := time.Now()
		g, err := readGossip(ctx, h)
		if err != nil {
			return err
		}
		mu.Lock()
		s.usage[h.Name], s.usageAt[h.Name], s.gossip[h.Name] = u, at, g
		mu.Unlock()
		return nil
	})
	if err != nil {
		return s, err
	}
	s.at = time.Now()
	s.controller, err = procusage.Of(b.cl.Controller, "ironlb")
	return s, err
}

// msPerSecond is cpu used over d, in ms per second.
func msPerSecond(cpu, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(cpu.Milliseconds()) / d.Seconds()
}

// parallelism bounds forEach: the lab's calls start processes (nft) or
// threads that enter namespaces, and the machine has few cores.
const parallelism = 8

// forEach calls f for every host, parallelism at a time, and returns the
// first error.
func forEach(hosts []*labnet.Host, f func(*labnet.Host) error) error {
	sem := make(chan struct{}, parallelism)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(h)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
