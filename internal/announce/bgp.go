package announce

import (
	"iter"
	"net/netip"
	"strings"

	"github.com/ironlb/ironlb/internal/config"
)

// BGPVerdict says whether one node announces one address over BGP.
type BGPVerdict struct {
	IP netip.Addr
	// Pool is the name of the address's pool.
	Pool string
	// Announcements are the BGPAnnouncements covering the pool that
	// select the node, whatever the Refusal: they give the routes'
	// attributes and the peers they go to. Verdicts of one pool share the
	// slice: read only.
	Announcements []*config.BGPAnnouncement
	// Refusal is why the node does not announce IP; zero when it does.
	Refusal Refusal
}

// bgpNode is what a pool decides of one node: the announcements that
// select it, or why it may not announce the pool's addresses.
type bgpNode struct {
	anns []*config.BGPAnnouncement
	why  Refusal
}

// BGP yields, for every address of the view in a pool that a
// BGPAnnouncement covers, whether the node named node announces it, in
// the order the view's Services first name the addresses. Every eligible
// node announces (the routers spread the traffic): no owner is chosen.
//
// A node announces an address when it is Ready, not excluded, with its
// data path up (View.DataPathDown: a router would send it traffic that
// kube-proxy does not forward), selected by a BGPAnnouncement covering
// the pool and, when every Service using
// the address has externalTrafficPolicy: Local, holds a ready endpoint of
// one of them. A Service with externalTrafficPolicy: Cluster sharing the
// address makes every node fit for it: the address's routes are one per
// node, whichever Service asked, as they are for MetalLB. The membership
// (View.Alive) is not read: a BGP router drops a dead node's routes with
// its session.
//
// The checks on the node and the pool are made once per pool; only the
// endpoint check is made per address. The speaker asks for its own node;
// ironlbctl asks for every node with a session.
func (r *Round) BGP(node string) iter.Seq[BGPVerdict] {
	return func(yield func(BGPVerdict) bool) {
		n := r.node(node)
		pools := map[*poolRules]bgpNode{}
		var last *poolRules
		var pn bgpNode
		for i := range r.addrs {
			a := &r.addrs[i]
			if a.rules == nil || len(a.rules.bgp) == 0 {
				continue
			}
			if a.rules != last {
				var ok bool
				if pn, ok = pools[a.rules]; !ok {
					pn = bgpPoolNode(n, r.dataPathRefusal(node), a.rules.bgp)
					pools[a.rules] = pn
				}
				last = a.rules
			}
			v := BGPVerdict{IP: a.ip, Pool: a.rules.pool.Name, Announcements: pn.anns, Refusal: pn.why}
			if !v.Refusal.Refused() {
				v.Refusal = a.bgpEndpoints(node)
			}
			if !yield(v) {
				return
			}
		}
	}
}

// bgpPoolNode makes the checks that depend only on node n and the
// announcements anns of a pool, in Reason's order; dataPath is n's
// (Round.dataPathRefusal).
func bgpPoolNode(n Node, dataPath Refusal, anns []*config.BGPAnnouncement) bgpNode {
	var out bgpNode
	for _, a := range anns {
		if a.SelectsNode(n.Labels) {
			out.anns = append(out.anns, a)
		}
	}
	if out.why = nodeRefusal(n); out.why.Refused() {
		return out
	}
	if out.why = dataPath; out.why.Refused() {
		return out
	}
	if len(out.anns) == 0 {
		out.why = Refusal{Reason: NotSelected, Mode: config.BGP}
	}
	return out
}

// bgpEndpoints refuses node for a when every Service using a is Local
// and none of them has a ready endpoint on node.
func (a *address) bgpEndpoints(node string) Refusal {
	for s := range a.services {
		if !s.Local || s.EndpointNodes[node] {
			return Refusal{}
		}
	}
	why := Refusal{Reason: NoEndpoint, Services: a.first.Key}
	if len(a.more) > 0 {
		why.Services = strings.Join(a.keys(), ", ")
	}
	return why
}
