package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/routerctl"
)

// FRR's commands the counter polls.
const (
	// frrSummary is per-neighbour state and accepted prefix count
	// (peer->pcount): no table walk.
	frrSummary = "show bgp ipv6 unicast summary json"
	// frrStatistics walks the IPv6 unicast table once, in bgpd, and
	// prints counts only: the prefixes with a path and every path
	// (bgp_table_stats_rn, FRR 8.4). Printing the table itself
	// (`show bgp ipv6 unicast json`) would be megabytes of JSON at
	// 10,000 prefixes, and zebra's RIB (`show ipv6 route summary json`)
	// is empty when bgpd runs with -n (labnet.RouterConfig's NoKernel).
	frrStatistics = "show bgp ipv6 unicast statistics json"
)

// frrCounter counts the speakers' routes in FRR's bgpd over its vty
// socket. The table holds BGP routes only (the lab redistributes nothing
// into it), so nothing is subtracted.
type frrCounter struct {
	vty       *routerctl.VTY
	neighbors []netip.Addr
}

// newFRRCounter connects to bgpd and checks that its table is empty
// before the speakers start.
func newFRRCounter(ctx context.Context, frr *labnet.FRR, neighbors []netip.Addr) (*frrCounter, error) {
	vty, err := routerctl.DialVTY(filepath.Join(frr.Dir(), "bgpd.vty"))
	if err != nil {
		return nil, err
	}
	c := &frrCounter{vty: vty, neighbors: neighbors}
	got, err := c.table(ctx)
	if err == nil && got != (routeCount{}) {
		err = fmt.Errorf("the router has BGP routes before any speaker started: %+v", got)
	}
	if err != nil {
		vty.Close()
		return nil, err
	}
	return c, nil
}

func (c *frrCounter) paths(context.Context) (map[netip.Addr]int, error) {
	b, err := c.vty.Command(frrSummary)
	if err != nil {
		return nil, err
	}
	got, err := parseFRRSummary(b)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]int{}
	for _, a := range c.neighbors {
		n, ok := got[a]
		if !ok {
			return nil, fmt.Errorf("FRR has no neighbour %s", a)
		}
		out[a] = n
	}
	return out, nil
}

func (c *frrCounter) table(context.Context) (routeCount, error) {
	b, err := c.vty.Command(frrStatistics)
	if err != nil {
		return routeCount{}, err
	}
	return parseFRRStatistics(b)
}

// bgp is table: the statistics are exact already.
func (c *frrCounter) bgp(ctx context.Context) (routeCount, error) { return c.table(ctx) }

func (c *frrCounter) Close() error { return c.vty.Close() }

// frrSummaryJSON is the part of `show bgp ipv6 unicast summary json` the
// counter reads.
type frrSummaryJSON struct {
	Peers map[string]struct {
		State  string `json:"state"`
		PfxRcd int    `json:"pfxRcd"`
	} `json:"peers"`
}

// parseFRRSummary reads `show bgp ipv6 unicast summary json`: the
// prefixes each neighbour gave, 0 for one that is not Established. A
// neighbour is in the map if bgpd has it configured. With no neighbour in
// the address family bgpd prints {}.
func parseFRRSummary(b []byte) (map[netip.Addr]int, error) {
	var s frrSummaryJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("FRR summary: %w", err)
	}
	out := map[netip.Addr]int{}
	for k, p := range s.Peers {
		a, err := netip.ParseAddr(k)
		if err != nil {
			return nil, fmt.Errorf("FRR summary: neighbour %q: %w", k, err)
		}
		if p.State == "Established" {
			out[a] = p.PfxRcd
		} else {
			out[a] = 0
		}
	}
	return out, nil
}

// frrStatisticsJSON is the part of `show bgp ipv6 unicast statistics json`
// the counter reads (FRR 8.4: one object per table in a list under the
// address family's name).
type frrStatisticsJSON struct {
	IPv6Unicast []struct {
		TotalPrefixes       *int `json:"totalPrefixes"`
		TotalAdvertisements *int `json:"totalAdvertisements"`
	} `json:"ipv6Unicast"`
}

// parseFRRStatistics reads `show bgp ipv6 unicast statistics json`:
// totalPrefixes counts the prefixes with at least one path,
// totalAdvertisements every path (a path bgpd has marked removed but not
// yet freed included: it is still in the table).
func parseFRRStatistics(b []byte) (routeCount, error) {
	var s frrStatisticsJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return routeCount{}, fmt.Errorf("FRR statistics: %w", err)
	}
	if len(s.IPv6Unicast) != 1 || s.IPv6Unicast[0].TotalPrefixes == nil || s.IPv6Unicast[0].TotalAdvertisements == nil {
		return routeCount{}, fmt.Errorf("FRR statistics: no IPv6 unicast counts in %.200q", b)
	}
	st := s.IPv6Unicast[0]
	return routeCount{Routes: *st.TotalAdvertisements, Networks: *st.TotalPrefixes}, nil
}
