package announce

import (
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
)

// Round is one View with its Service addresses grouped: each address
// once, with its pool and the Services that use it, and each pool once,
// with the announcements that cover it. NewRound groups them; Layer2 and
// BGP read the grouping, so that what depends only on a pool and a node
// (is the node Ready, selected, alive, which interfaces) is worked out
// once per pool and node, and what remains per address is the
// externalTrafficPolicy: Local check and, in Layer 2, the owner's hash.
//
// A Round does not change its View; it caches per-pool results in itself
// as Layer2 and BGP compute them, so it is for one goroutine.
type Round struct {
	view  View
	addrs []address // sorted by IP
	pools map[*config.Pool]*poolRules
	names []string // the nodes' names, sorted; set by sortedNames
	// lastPool and lastRules are the pool rulesFor found last and its
	// rules (see there).
	lastPool  *config.Pool
	lastRules *poolRules
	// noneReady: no node is Ready, so every node counts as Ready
	// (NoneReady).
	noneReady bool
	// dataPathDown are the nodes refused for their data path: the view's
	// DataPathDown, or none when DataPathsIgnored.
	dataPathDown map[string]bool
}

// address is one Service address of the View.
type address struct {
	ip netip.Addr
	// rules are those of the address's pool; nil when it is in no pool,
	// or in one that no announcement covers: then no node announces it.
	rules *poolRules
	// first and more are the Services using the address, in View order
	// (pointers into View.Services): most addresses have one Service, and
	// keeping it inline saves an allocation per address and sync.
	first *Service
	more  []*Service
}

// services yields the Services using a, in View order.
func (a *address) services(yield func(*Service) bool) {
	if !yield(a.first) {
		return
	}
	for _, s := range a.more {
		if !yield(s) {
			return
		}
	}
}

// poolRules are a pool's announcements and, once Layer2 has asked, which
// nodes may answer for its addresses.
type poolRules struct {
	pool *config.Pool
	l2   []*config.L2Announcement
	bgp  []*config.BGPAnnouncement
	// layer2 is set by Round.layer2Nodes.
	layer2 *layer2Nodes
}

// NewRound groups v's Service addresses. It reads v and does not change
// it; the Round keeps v, which must not change while it is used. The
// Round's addresses are in address order.
func NewRound(v View) *Round {
	n := 0
	for i := range v.Services {
		n += len(v.Services[i].IPs)
	}
	r := &Round{
		view:      v,
		noneReady: NoneReady(v.Nodes),
		addrs:     make([]address, 0, n),
		pools:     map[*config.Pool]*poolRules{},
	}
	if !DataPathsIgnored(v) {
		r.dataPathDown = v.DataPathDown
	}
	for i := range v.Services {
		s := &v.Services[i]
		for _, ip := range s.IPs {
			r.addrs = append(r.addrs, address{ip: ip, first: s})
		}
	}
	// One address per IP: sorted by IP, the Services sharing one (in View
	// order, which the stable sort keeps) fold into its first. A map of
	// the addresses seen was a quarter of what a Round allocated, and a
	// Round is made at every sync (10,000 Services in
	// test/bench/bgpscale); sorted, neighbours mostly share a pool too
	// (rulesFor).
	slices.SortStableFunc(r.addrs, func(a, b address) int { return a.ip.Compare(b.ip) })
	out := r.addrs[:0]
	for _, a := range r.addrs {
		if k := len(out) - 1; k >= 0 && out[k].ip == a.ip {
			out[k].more = append(out[k].more, a.first)
			continue
		}
		a.rules = r.rulesFor(a.ip)
		out = append(out, a)
	}
	r.addrs = out
	return r
}

// rulesFor returns the rules of ip's pool, looking each pool's
// announcements up once.
func (r *Round) rulesFor(ip netip.Addr) *poolRules {
	cfg := r.view.Config
	if cfg == nil {
		return nil
	}
	// Pools do not overlap: when the last address's pool holds ip, it is
	// ip's pool. Neighbouring Service addresses mostly share a pool, and
	// this saves PoolFor's pass over every pool.
	if r.lastPool != nil && r.lastPool.Contains(ip) {
		return r.lastRules
	}
	p := cfg.PoolFor(ip)
	if p == nil {
		return nil
	}
	pr, ok := r.pools[p]
	if !ok {
		pr = &poolRules{pool: p, l2: cfg.L2For(p.Name), bgp: cfg.BGPFor(p.Name)}
		if len(pr.l2)+len(pr.bgp) == 0 {
			pr = nil // no announcement: no node announces the pool
		}
		r.pools[p] = pr
	}
	r.lastPool, r.lastRules = p, pr
	return pr
}

// sortedNames are the view's node names, sorted: the order refusals are
// listed in.
func (r *Round) sortedNames() []string {
	if r.names == nil {
		r.names = make([]string, 0, len(r.view.Nodes))
		for n := range r.view.Nodes {
			r.names = append(r.names, n)
		}
		slices.Sort(r.names)
	}
	return r.names
}

// node returns the view's Node named name; a node the view does not know
// is not Ready. When no node is Ready, every known node counts as Ready
// (NoneReady).
func (r *Round) node(name string) Node {
	n, ok := r.view.Nodes[name]
	if !ok {
		return Node{Name: name}
	}
	n.Name = name
	n.Ready = n.Ready || r.noneReady
	return n
}

// nodeRefusal makes the checks every mode shares, in Reason's order:
// Ready, then not excluded.
func nodeRefusal(n Node) Refusal {
	switch {
	case !n.Ready:
		return Refusal{Reason: NotReady}
	case n.Excluded:
		return Refusal{Reason: Excluded}
	}
	return Refusal{}
}

// dataPathRefusal refuses a node whose data path is down (View.DataPathDown),
// unless the rule ignores them all (DataPathsIgnored).
func (r *Round) dataPathRefusal(name string) Refusal {
	if r.dataPathDown[name] {
		return Refusal{Reason: NoDataPath}
	}
	return Refusal{}
}
