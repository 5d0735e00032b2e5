package main

import (
	"fmt"
	"strings"

	"github.com/ironlb/ironlb/test/bench/routerctl"
)

// birdCtl is BIRD's control socket (routerctl.BIRD) with the commands
// the counter polls.
type birdCtl struct{ *routerctl.BIRD }

// dialBIRD connects to the control socket at path.
func dialBIRD(path string) (*birdCtl, error) {
	b, err := routerctl.DialBIRD(path)
	if err != nil {
		return nil, err
	}
	return &birdCtl{b}, nil
}

// routeCount is the router's view of the BGP routes.
type routeCount struct {
	// Routes are the paths, Networks the prefixes with at least one.
	Routes, Networks int
}

// showCount is what `show route ... count` says of one table.
type showCount struct {
	// Shown are the routes that passed the command's filter, of Routes
	// looked at; Networks are every prefix with a route, filtered or not
	// (BIRD 2.0.12, nest/rt-show.c: rt_show_net counts a network before
	// it filters).
	Shown, Routes, Networks int
}

// parseShowCount reads the reply of `show route table T ... count`:
//
//	1007-3000 of 3000 routes for 1002 networks in table master6
//	0000
func parseShowCount(lines []string) (showCount, error) {
	for _, line := range lines {
		text := routerctl.ReplyText(line)
		var c showCount
		if n, _ := fmt.Sscanf(strings.TrimSpace(text), "%d of %d routes for %d networks", &c.Shown, &c.Routes, &c.Networks); n == 3 {
			return c, nil
		}
	}
	return showCount{}, fmt.Errorf("no route count in %q", lines)
}

// shown runs a `show route ... count` command and returns how many routes
// passed its filter.
func (b *birdCtl) shown(cmd string) (int, error) {
	lines, err := b.Command(cmd)
	if err != nil {
		return 0, err
	}
	c, err := parseShowCount(lines)
	return c.Shown, err
}

// countBGP counts the BGP paths of table master6 and the prefixes that
// have at least one: with "primary" only each prefix's best route passes
// the filter, and the BGP prefixes here are not the direct ones. It walks
// the table twice, evaluating a filter on every route; the pollers use
// count and imported instead.
func (b *birdCtl) countBGP() (routeCount, error) {
	var c routeCount
	var err error
	if c.Routes, err = b.shown("show route table master6 count where source = RTS_BGP"); err != nil {
		return c, err
	}
	c.Networks, err = b.shown("show route table master6 count primary where source = RTS_BGP")
	return c, err
}

// count counts every route and network of table master6, in one walk
// without a filter.
func (b *birdCtl) count() (routeCount, error) {
	lines, err := b.Command("show route table master6 count")
	if err != nil {
		return routeCount{}, err
	}
	c, err := parseShowCount(lines)
	return routeCount{Routes: c.Shown, Networks: c.Networks}, err
}

// imported returns how many routes BGP protocol proto has in its table,
// from the protocol's channel statistics: no table walk.
func (b *birdCtl) imported(proto string) (int, error) {
	lines, err := b.Command("show protocols all " + proto)
	if err != nil {
		return 0, err
	}
	return parseImported(lines)
}

// parseImported reads the channel statistics in `show protocols all P`:
//
//	1006-  Channel ipv6
//	         State:          UP
//	         ...
//	         Routes:         10000 imported, 0 exported, 3334 preferred
//
// A protocol that is down has no Routes line: 0.
func parseImported(lines []string) (int, error) {
	for _, line := range lines {
		_, rest, ok := strings.Cut(line, "Routes:")
		if !ok {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d imported", &n); err != nil {
			return 0, fmt.Errorf("channel statistics %q: %w", line, err)
		}
		return n, nil
	}
	return 0, nil
}
