package election

import "net/netip"

// This file is the pure half of the package: no I/O, no clock, no
// goroutines, only the standard library (TestImports enforces it). Every
// speaker calls these functions with the same inputs and so reaches the same
// answer without talking to anyone.

// Owner returns the node that announces ip: among candidates, the one with
// the highest rendezvous weight for ip (highest-random-weight hashing,
// Thaler and Ravishankar 1998). It returns "" if there are no candidates.
//
// candidates are the names of the nodes that may announce ip right now:
// eligible for it (node selectors, Ready, endpoints for
// externalTrafficPolicy=Local) and alive in the membership. Their order and
// any duplicates do not matter, so every speaker that holds the same set
// computes the same owner. Because the choice is per IP, Services sharing
// an IP always share one announcer.
//
// Each (node, ip) pair has a fixed weight, so:
//   - when a node leaves the set, only the IPs it owned move, each to the
//     node with the next-highest weight, which spreads them evenly over
//     the others;
//   - when a node joins the set, it takes exactly the IPs for which it has
//     the highest weight (about 1/n of them) and nothing else moves.
//
// The second point means that with Owner alone a node that recovers takes
// its IPs back: a second handover, shortly after the failover, for every
// IP it used to own. StickyOwner avoids that; see there.
func Owner(ip netip.Addr, candidates []string) string {
	key := ipKey(ip)
	var best string
	var bestW uint64
	for i, c := range candidates {
		w := weight(c, &key)
		if i == 0 || w > bestW || (w == bestW && c < best) {
			best, bestW = c, w
		}
	}
	return best
}

// StickyOwner is Owner with memory: if current, the node that announces ip
// now, is still among candidates, it keeps ip; otherwise the owner is
// Owner(ip, candidates).
//
// This is the choice speakers make. It moves an IP only when its announcer
// stops being a candidate (it died, left, went NotReady, or lost
// eligibility), never because another node became one. So an IP does not
// move back when the node that lost it recovers, and a flapping node
// does not drag its IPs back and forth: at each move clients must relearn
// the MAC, and connections whose state lives on the old node (IPVS
// kube-proxy's connection table) may break, so MetalLB's move-back on
// recovery doubles the disruption of every failure. The price is balance: IPs that failed
// over stay on their new owners, so after failures a recovered or newly
// added node announces only IPs that were assigned or orphaned since it
// joined. Deliberate rebalancing (dropping current for some IPs, with a
// planned, make-before-break handover) is the caller's choice to make.
//
// current must come from state every speaker reads alike, or speakers could
// disagree: the announcer the owning speaker last reported for ip through
// the API server ("" if none). A stale current is harmless when its node is
// not a candidate (after a crash, everyone falls back to Owner whatever
// they have read). The only window where views can differ is when the old
// owner comes back before every speaker has seen the new owner's report; it
// lasts as long as the report takes to reach the informers and ends with
// one owner again, because there is one report per IP and the last write
// wins.
func StickyOwner(ip netip.Addr, candidates []string, current string) string {
	if current != "" {
		for _, c := range candidates {
			if c == current {
				return current
			}
		}
	}
	return Owner(ip, candidates)
}

// ipKey is the 16-byte form of ip, so that an IPv4 address and its
// IPv4-mapped IPv6 form (::ffff:a.b.c.d) get the same owner. Zones are
// ignored: service IPs have none.
func ipKey(ip netip.Addr) [16]byte {
	return ip.Unmap().As16()
}

// FNV-1a, 64 bit (draft-eastlake-fnv).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// weight is the rendezvous weight of node for the IP key: FNV-1a over the
// node name, a zero byte (Kubernetes names never contain one, so no two
// (name, ip) pairs share an input), and the IP, then passed through a
// finalizer. FNV alone mixes its last input bytes poorly into the high bits,
// which skews HRW towards some nodes when IPs differ only in their last
// byte, as neighbouring service IPs do; murmur3's 64-bit finalizer fixes
// that. It allocates nothing. Speakers of different versions must agree on
// every owner during a rolling upgrade, so changing weight is a breaking
// change.
func weight(node string, key *[16]byte) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the zero separator: h ^= 0 is a no-op
	for _, b := range key {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	return fmix64(h)
}

// fmix64 is MurmurHash3's 64-bit finalizer: every input bit affects every
// output bit with probability close to one half.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93e53fe1a85
	h ^= h >> 33
	return h
}
