package speaker

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

// A planned handover (announce.Decision.From) moves an address from a
// node that could go on announcing it, drained or rebalanced, to another,
// without a lost packet and without two MACs answering at any moment.
// The old owner's node forwards the address's traffic all along (kube-proxy
// serves it on every node), so what must not happen is a client left with
// no answer, or told two MACs. In order:
//
//  1. Both speakers see the handover at once (a Node's drain syncs every
//     speaker at once; a rebalancing move is the old owner's, published in
//     its metadata before anyone acts on it).
//  2. The old owner answers new requests naming the new owner's MAC
//     (Decision.Proxy, as for a restarting peer). Clients that hold its
//     own MAC go on reaching the address through it.
//  3. The new owner waits handoverDelay, by which time the old owner has
//     switched, and only then answers, naming its own MAC, and announces
//     (gratuitous ARP, unsolicited NA): every client moves to it.
//  4. The old owner goes on answering in the new owner's name for
//     handoverLinger after the handover is over in its view (the new
//     owner reported), so that no request goes unanswered in between.
//
// Each speaker runs its own half on its own clock; both halves are
// idempotent per turn, and a failure of either node during the handover
// ends it as a failover would.
const (
	handoverDelay  = 500 * time.Millisecond
	handoverLinger = handoverDelay + time.Second
)

// arrival is an address this node is taking over in a planned handover:
// from whom, and when this node first saw it.
type arrival struct {
	from string
	at   time.Time
}

// lingering is an address this node answered for in another node's name
// during a planned handover: the new owner, its MAC per interface name,
// and until when this node answers so.
type lingering struct {
	owner string
	macs  map[string]net.HardwareAddr
	until time.Time
}

// heldBack removes from mine the addresses this node takes over in a
// planned handover it first saw less than handoverDelay ago, and
// returns when the first of them is due (zero if none). A handover whose
// old owner is no longer alive is a failover: nothing is held back.
func (l *layer2) heldBack(t *turn, ds map[netip.Addr]*announce.Decision, mine map[string][]netip.Addr, now time.Time) (map[string][]netip.Addr, time.Time) {
	for ip, d := range ds {
		if d.Owner == l.node && d.From != "" && !l.owned[ip] {
			if _, ok := l.arriving[ip]; !ok {
				l.arriving[ip] = arrival{from: d.From, at: now}
				l.log.Info("taking over in a planned handover", "ip", ip, "from", d.From, "in", handoverDelay)
			}
		}
	}
	var wake time.Time
	hold := map[netip.Addr]bool{}
	for ip, a := range l.arriving {
		d, due := ds[ip], a.at.Add(handoverDelay)
		if d == nil || d.Owner != l.node || !now.Before(due) || (t.view.Alive != nil && !t.view.Alive[a.from]) {
			delete(l.arriving, ip)
			continue
		}
		hold[ip] = true
		wake = earliest(wake, due)
	}
	if len(hold) == 0 {
		return mine, wake
	}
	out := make(map[string][]netip.Addr, len(mine))
	for name, ips := range mine {
		out[name] = slices.DeleteFunc(slices.Clone(ips), func(ip netip.Addr) bool { return hold[ip] })
	}
	return out, wake
}

// linger adds to proxied, per interface, the addresses this node handed
// over in a planned handover less than handoverLinger ago, named with
// their new owner's MAC, while that node still owns them; and returns
// when the first of them ends (zero if none). It records the handovers
// under way in proxied.
func (l *layer2) linger(ds map[netip.Addr]*announce.Decision, proxied map[string]map[netip.Addr]net.HardwareAddr, now time.Time) time.Time {
	for name, ips := range proxied {
		for ip, mac := range ips {
			d := ds[ip]
			if d == nil || d.From != l.node {
				continue
			}
			g, ok := l.leaving[ip]
			if !ok || g.owner != d.Owner {
				g = lingering{owner: d.Owner, macs: map[string]net.HardwareAddr{}}
			}
			g.macs[name], g.until = mac, now.Add(handoverLinger)
			l.leaving[ip] = g
		}
	}
	var wake time.Time
	for ip, g := range l.leaving {
		d := ds[ip]
		if d == nil || d.Owner != g.owner || !now.Before(g.until) {
			delete(l.leaving, ip)
			continue
		}
		wake = earliest(wake, g.until)
		if d.From == l.node {
			continue // in proxied already
		}
		for name, mac := range g.macs {
			if proxied[name] == nil {
				proxied[name] = map[netip.Addr]net.HardwareAddr{}
			}
			proxied[name][ip] = mac
		}
	}
	return wake
}
