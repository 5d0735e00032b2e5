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
	for _, ip := range ips {
		d := ds[ip]
		to := leastLoaded(d.Preferred, d.Owner, load)
		if to == "" {
			continue
		}
		if !slices.Contains(d.Preferred, d.Owner) {
			return Move{IP: ip, From: d.Owner, To: to}, true
		}
		if gap := load[d.Owner] - load[to]; gap > bestGap {
			best, bestGap = Move{IP: ip, From: d.Owner, To: to}, gap
		}
	}
	return best, best.To != ""
}

// leastLoaded is the node of nodes, other than not, holding the fewest
// addresses, the first by name among equals; "" if there is none.
func leastLoaded(nodes []string, not string, load map[string]int) string {
	var out string
	for _, n := range nodes {
		if n == not {
			continue
		}
		if out == "" || load[n] < load[out] || (load[n] == load[out] && n < out) {
			out = n
		}
	}
	return out
}
