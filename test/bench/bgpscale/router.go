package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/routerctl"
)

// routerKind is the routing daemon on the lab's router (-router).
type routerKind string

const (
	routerBIRD routerKind = "bird"
	routerFRR  routerKind = "frr"
)

// parseRouterKind checks -router's value.
func parseRouterKind(s string) (routerKind, error) {
	switch k := routerKind(s); k {
	case routerBIRD, routerFRR:
		return k, nil
	}
	return "", fmt.Errorf("unknown router %q (bird or frr)", s)
}

// metricName is the name a figure is printed under. BIRD's run keeps the
// names design/PERFORMANCE.md quotes; another router's figures start with
// its name ("frr_bgp_converge_10000") so that they are never read or
// aggregated as BIRD's. References and targets keep their names: they are
// the same values whatever the router is.
func (k routerKind) metricName(name string) string {
	if k == routerBIRD || strings.HasPrefix(name, "reference_") || strings.HasPrefix(name, "target_") {
		return name
	}
	return string(k) + "_" + name
}

// routerCounter is the router daemon's count of the speakers' routes, as
// routerView polls it; birdCounter and frrCounter implement it. Not safe
// for concurrent use.
type routerCounter interface {
	// paths returns how many paths each neighbour (by address) has given
	// the router; a neighbour whose session is down has none. It must be
	// cheap: it is polled every 100 ms while the speakers converge.
	paths(ctx context.Context) (map[netip.Addr]int, error)
	// table counts the paths in the router's BGP table and the prefixes
	// that have one, exactly and as cheaply as the daemon allows: it is
	// polled every 20 ms while a node's paths are withdrawn.
	table(ctx context.Context) (routeCount, error)
	// bgp counts the same as table, however long that takes, to check
	// what the cheap count relies on.
	bgp(ctx context.Context) (routeCount, error)
	Close() error
}

// routerDaemon is one run's routing daemon on the router.
type routerDaemon struct {
	labnet.RouterDaemon
	counter routerCounter
	// procs are the daemon's processes, whose CPU the diagnostics report.
	procs []watched
}

// startRouter starts the -router daemon afresh with rc and connects to it.
// Stop (which also closes the counter) stops it.
func (b *bench) startRouter(ctx context.Context, rc labnet.RouterConfig) (*routerDaemon, error) {
	var addrs []netip.Addr
	for _, h := range b.cl.Lab.Nodes() {
		addrs = append(addrs, h.IPv6)
	}
	switch b.opts.Router {
	case routerBIRD:
		bird, err := b.router.StartBIRD(ctx, rc)
		if err != nil {
			return nil, err
		}
		ctl, err := dialBIRD(filepath.Join(bird.Dir(), "bird.ctl"))
		if err != nil {
			return nil, errors.Join(err, bird.Stop())
		}
		d := &routerDaemon{RouterDaemon: bird, procs: []watched{{"bird", "bird", bird.Process()}}}
		if d.counter, err = newBIRDCounter(ctl, addrs); err != nil {
			return nil, errors.Join(err, d.Stop())
		}
		return d, nil
	case routerFRR:
		frr, err := b.router.StartFRR(ctx, rc)
		if err != nil {
			return nil, err
		}
		d := &routerDaemon{RouterDaemon: frr}
		for _, p := range frr.Processes() { // zebra, bfdd, bgpd
			comm := filepath.Base(p.Args[0])
			d.procs = append(d.procs, watched{comm, comm, p})
		}
		if d.counter, err = newFRRCounter(ctx, frr, addrs); err != nil {
			return nil, errors.Join(err, d.Stop())
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown router %q", b.opts.Router)
}

// Stop closes the counter and stops the daemon.
func (d *routerDaemon) Stop() error {
	var err error
	if d.counter != nil {
		err = d.counter.Close()
	}
	return errors.Join(err, d.RouterDaemon.Stop())
}

// birdCounter counts over BIRD's control socket: per-protocol channel
// statistics (no table walk) for the paths, and one walk of table master6
// without a filter, minus the direct routes that were there before any
// speaker started, for the table.
type birdCounter struct {
	ctl  *birdCtl
	base routeCount // the direct routes and their networks
	// protos are the BGP protocols' names by neighbour.
	protos map[netip.Addr]string
}

// newBIRDCounter counts what BIRD has before the speakers start, and
// checks that none of it is BGP. It takes ctl over.
func newBIRDCounter(ctl *birdCtl, neighbors []netip.Addr) (*birdCounter, error) {
	c := &birdCounter{ctl: ctl, protos: map[netip.Addr]string{}}
	for _, a := range neighbors {
		c.protos[a] = routerctl.BIRDProtocol(a)
	}
	bgp, err := ctl.countBGP()
	if err == nil && bgp != (routeCount{}) {
		err = fmt.Errorf("the router has BGP routes before any speaker started: %+v", bgp)
	}
	if err == nil {
		c.base, err = ctl.count()
	}
	if err != nil {
		ctl.Close()
		return nil, err
	}
	return c, nil
}

func (c *birdCounter) paths(context.Context) (map[netip.Addr]int, error) {
	out := map[netip.Addr]int{}
	for a, proto := range c.protos {
		n, err := c.ctl.imported(proto)
		if err != nil {
			return nil, err
		}
		out[a] = n
	}
	return out, nil
}

func (c *birdCounter) table(context.Context) (routeCount, error) {
	n, err := c.ctl.count()
	return routeCount{Routes: n.Routes - c.base.Routes, Networks: n.Networks - c.base.Networks}, err
}

func (c *birdCounter) bgp(context.Context) (routeCount, error) { return c.ctl.countBGP() }

func (c *birdCounter) Close() error { return c.ctl.Close() }
