package announce

import (
	"net/netip"
	"slices"
)

// Move is a planned handover of one Layer 2 address (Decision.From).
type Move struct {
	IP       netip.Addr
	From, To string
}

// Rebalance returns the planned handover that best evens out the Layer 2
// addresses of ds among their nodes, if one is due: ok is false when the
// addresses are as even as their candidates allow, or when a handover is
// already under way (a Decision with From), since moves go one at a time.
//
// Owners stay where failures put them (election.StickyOwner), so after
// failures the survivors hold more than their share, and a node that
// comes back, or joins, holds nothing. Rebalance undoes that slowly: the
// speaker that owns the returned address hands it over (View.Moves), at
// most one address at a time, rate-limited, and only while the membership
// is steady (internal/speaker). In order:
//
//  1. An address whose owner is not among its best-ranked candidates
//     (Decision.Preferred: a more preferred node came back) goes to the
//     least loaded of them.
//  2. Otherwise an address goes from its owner to the least loaded other
//     best-ranked candidate when the owner holds at least two more
//     addresses than it; the largest such difference first. When no such
//     address is left, no two nodes that could swap an address differ by
//     more than one.
//
// Ties go to the lower address and the node name that sorts first, so
// every speaker computes the same. Each move lowers the sum of the
// squared loads, so the moves end.
func Rebalance(ds map[netip.Addr]*Decision) (Move, bool) {
	load := map[string]int{}
	for _, d := range ds {
		if d.From != "" {
			return Move{}, false
		}
		if d.Owner != "" {
			load[d.Owner]++
		}
	}
	ips := make([]netip.Addr, 0, len(ds))
	for ip, d := range ds {
		if d.Owner != "" && d.Proxy == "" && len(d.Preferred) > 0 {
			ips = append(ips, ip)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	var best Move
	bestGap := 1 // a move must narrow a gap of two or more
	groups := map[groupKey]*group{}
	for _, ip := range ips {
		d := ds[ip]
		g := groupOf(groups, d.Preferred, load)
		to := g.least
		if to == d.Owner {
			to = g.second
		}
		if to == "" {
			continue
		}
		if !g.members[d.Owner] {
			return Move{IP: ip, From: d.Owner, To: to}, true
		}
		if gap := load[d.Owner] - load[to]; gap > bestGap {
			best, bestGap = Move{IP: ip, From: d.Owner, To: to}, gap
		}
	}
	return best, best.To != ""
}

// A group is what Rebalance needs of one list of preferred nodes: most
// addresses of a pool share the pool's list (Layer2), so it is worked
// out once per list, not once per address, and a round stays
// O(addresses + nodes) (BenchmarkRebalance).
type group struct {
	// least and second are the two nodes holding the fewest
	// addresses, the first by name among equals ("" if there is none).
	least, second string
	members       map[string]bool
}

// groupKey identifies a list of nodes by its storage: lists shared by
// reference are one group; equal lists in different storage are merely
// worked out twice.
type groupKey struct {
	first *string
	n     int
}

// groupOf returns the group of nodes (not empty), from groups or worked
// out and added there.
func groupOf(groups map[groupKey]*group, nodes []string, load map[string]int) *group {
	k := groupKey{&nodes[0], len(nodes)}
	if g, ok := groups[k]; ok {
		return g
	}
	g := &group{members: make(map[string]bool, len(nodes))}
	less := func(a, b string) bool { return load[a] < load[b] || (load[a] == load[b] && a < b) }
	for _, n := range nodes {
		g.members[n] = true
		switch {
		case g.least == "" || less(n, g.least):
			g.least, g.second = n, g.least
		case g.second == "" || less(n, g.second):
			g.second = n
		}
	}
	groups[k] = g
	return g
}
