package announce

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
)

// OwnerFunc chooses the node that answers for ip among candidates, the
// nodes that may, given current, the node that answers for it now ("" if
// none). The speaker passes election.StickyOwner. It is passed in rather
// than imported because package election also holds the speakers'
// memberlist, which ironlbctl, a user of this package, must not link
// (cmd/ironlbctl/deps_test.go).
type OwnerFunc func(ip netip.Addr, candidates []string, current string) string

// Decision is the Layer 2 outcome for one address.
type Decision struct {
	IP netip.Addr
	// Services using IP, sorted ("namespace/name").
	Services []string
	// Owner is the node that answers for IP; "" when no node may, and
	// Reason says why.
	Owner  string
	Reason string
	// Ifaces are the interfaces the owner answers on; nil Ifaces with an
	// owner means "whichever interfaces the announcement names" (the owner
	// published none). Decisions of one pool share the slice: read only.
	Ifaces []Iface
	// Announcements names the owner's interfaces when Ifaces is nil: the
	// union of the matching L2Announcements' interface lists (empty: all).
	Announcements []string
	// Proxy is the node that answers for IP in the owner's name, naming
	// the owner's MACs: while the owner's speaker restarts
	// (View.Restarting), a running node; in a planned handover, From.
	// "" otherwise.
	Proxy string
	// From is the node handing IP over to Owner in a planned handover:
	// it announced IP until now and may go on (its node is up, its
	// speaker alive), but is drained (Node.Draining) or asked to by the
	// rebalancing (View.Moves). Clients that cached its MAC go on
	// reaching the address through it; it answers new requests naming
	// Owner's MAC (Proxy), and the owner begins to announce only once
	// From does so (see internal/speaker), so that at no moment do two
	// MACs answer. "" when IP does not move, or moves because its owner
	// may no longer announce it (a failover).
	From string
	// Candidates are the nodes that may answer for IP, sorted, and
	// Preferred those of them ranked best (L2Announcement.Rank, drained
	// nodes last): the owner is chosen among Preferred unless the
	// current one stays. Rebalance reads both. Read only: decisions share
	// them.
	Candidates, Preferred []string
}

// drainedRank ranks a drained node (Node.Draining) after every node an
// L2Announcement's preference ranks.
const drainedRank = math.MaxInt32

// layer2Nodes are the nodes that may answer for a pool's addresses as
// far as the pool decides: every check but the endpoints of Local
// Services, which depend on the address.
type layer2Nodes struct {
	candidates []string           // sorted
	refused    map[string]Refusal // the others, and why
	// ifaces are the interfaces each candidate would answer on, for the
	// candidates whose interfaces are known (View.Ifaces).
	ifaces map[string][]Iface
	// announced are, for the other candidates, the interfaces the
	// announcements selecting them name (nil: all); see
	// Decision.Announcements.
	announced map[string][]string
	// rank is each candidate's preference (layer2Node).
	rank map[string]int
	// preferred are the best-ranked candidates, and isCandidate the
	// candidates as a set: what each address of the pool whose
	// candidates are not narrowed further uses, so that a round costs
	// O(addresses + nodes), not O(addresses x nodes) (BenchmarkLayer2).
	preferred   []string
	isCandidate map[string]bool
}

// Layer2 elects an owner for every Layer 2 address of the view: one whose
// pool an L2Announcement covers. An address outside every pool, or in a
// pool that only BGPAnnouncements cover, gets no Decision.
//
// A node may answer for an address when it is Ready, not excluded, an
// alive member (when there is a membership), with its data path up (its
// kube-proxy healthy, View.DataPathDown), selected by one of the
// pool's L2Announcements, has one of the interfaces they name (when its
// interfaces are known), and holds a ready endpoint of every
// externalTrafficPolicy: Local Service using the address: one node gets
// all of the address's traffic, for every Service sharing it. owner picks
// among those nodes; with none, the Decision says why of each node.
func (r *Round) Layer2(owner OwnerFunc) map[netip.Addr]*Decision {
	out := map[netip.Addr]*Decision{}
	for i := range r.addrs {
		a := &r.addrs[i]
		if a.rules == nil || len(a.rules.l2) == 0 {
			continue
		}
		nodes := r.layer2Nodes(a.rules)
		d := &Decision{IP: a.ip, Services: a.keys()}
		out[a.ip] = d
		candidates := nodes.candidates
		if local := a.local(); len(local) > 0 {
			candidates = slices.DeleteFunc(slices.Clone(candidates), func(n string) bool {
				return endpointRefusal(local, n).Refused()
			})
		}
		if len(candidates) == 0 {
			d.Reason = r.layer2Reason(a, nodes)
			continue
		}
		candidates = r.settledOnly(r.restartingOnlyWhereCurrent(a.ip, candidates))
		if len(candidates) == 0 {
			d.Reason = r.layer2Reason(a, nodes)
			continue
		}
		// The filters keep order and drop only: as many left means
		// none dropped, and the pool's own answers hold.
		isCandidate := nodes.isCandidate
		if len(candidates) == len(nodes.candidates) {
			d.Candidates, d.Preferred = nodes.candidates, nodes.preferred
		} else {
			d.Candidates, d.Preferred = candidates, preferred(candidates, nodes.rank)
			isCandidate = nil
		}
		r.electLayer2(d, owner, nodes.rank, isCandidate)
		d.Ifaces = nodes.ifaces[d.Owner]
		d.Announcements = nodes.announced[d.Owner]
		if r.view.Restarting[d.Owner] {
			running := slices.DeleteFunc(slices.Clone(candidates), func(n string) bool { return r.view.Restarting[n] })
			d.Proxy = owner(a.ip, running, "")
		}
	}
	return out
}

// electLayer2 sets d's owner, among d.Candidates (isCandidate, if not
// nil, is them as a set): the current owner if
// it is one, unless it is drained and a better-ranked node may announce,
// or it publishes a move of the address to another candidate
// (View.Moves); then, and when the current owner is no candidate, the
// owner's choice among the best-ranked. A current owner that stays a
// candidate but is not left the address hands it over (d.From).
//
// A node that is merely ranked lower than another keeps its addresses:
// a better node that comes back takes nothing at once (the same reason as
// election.StickyOwner's), but gets them one at a time by the
// rebalancing's planned handovers.
func (r *Round) electLayer2(d *Decision, owner OwnerFunc, rank map[string]int, isCandidate map[string]bool) {
	candidate := func(n string) bool {
		if isCandidate != nil {
			return isCandidate[n]
		}
		return slices.Contains(d.Candidates, n)
	}
	cur := r.view.Current[d.IP]
	if !candidate(cur) {
		d.Owner = owner(d.IP, d.Preferred, cur)
		return
	}
	if r.view.Restarting[cur] {
		d.Owner = cur // it keeps what it has while it is away
		return
	}
	mv, to := r.view.Moves[d.IP], ""
	switch {
	case mv.From == cur && mv.To != cur && candidate(mv.To) && !r.view.Restarting[mv.To]:
		to = mv.To
	case rank[cur] == drainedRank && rank[d.Preferred[0]] < drainedRank:
		to = owner(d.IP, d.Preferred, "")
	default:
		d.Owner = cur
		return
	}
	d.Owner, d.From, d.Proxy = to, cur, cur
}

// preferred are the candidates of the best rank.
func preferred(candidates []string, rank map[string]int) []string {
	best, n := math.MaxInt, 0
	for _, c := range candidates {
		switch r := rank[c]; {
		case r < best:
			best, n = r, 1
		case r == best:
			n++
		}
	}
	if n == len(candidates) {
		return candidates
	}
	out := make([]string, 0, n)
	for _, c := range candidates {
		if rank[c] == best {
			out = append(out, c)
		}
	}
	return out
}

// restartingOnlyWhereCurrent drops from candidates the restarting nodes
// (View.Restarting) that do not announce ip now: a restarting node keeps
// what it has and takes nothing new while it is away.
func (r *Round) restartingOnlyWhereCurrent(ip netip.Addr, candidates []string) []string {
	if len(r.view.Restarting) == 0 {
		return candidates
	}
	cur := r.view.Current[ip]
	return slices.DeleteFunc(slices.Clone(candidates), func(n string) bool { return r.view.Restarting[n] && n != cur })
}

// layer2Nodes makes, once per pool, the checks that depend only on the
// pool and the node.
func (r *Round) layer2Nodes(p *poolRules) *layer2Nodes {
	if p.layer2 != nil {
		return p.layer2
	}
	ln := &layer2Nodes{refused: map[string]Refusal{}, ifaces: map[string][]Iface{}, announced: map[string][]string{}, rank: map[string]int{}}
	for _, name := range r.sortedNames() {
		n := r.node(name)
		ifaces, why := r.layer2Node(n, p.l2)
		if why.Refused() {
			ln.refused[name] = why
			continue
		}
		ln.candidates = append(ln.candidates, name)
		ln.rank[name] = rank(n, p.l2)
		if _, known := r.view.Ifaces[name]; known {
			ln.ifaces[name] = ifaces
		} else {
			ln.announced[name] = announcedIfaces(p.l2, n.Labels)
		}
	}
	ln.preferred = preferred(ln.candidates, ln.rank)
	ln.isCandidate = make(map[string]bool, len(ln.candidates))
	for _, c := range ln.candidates {
		ln.isCandidate[c] = true
	}
	p.layer2 = ln
	return ln
}

// layer2Node reports whether node n may answer for the addresses of a
// pool covered by anns, and on which interfaces (nil when its interfaces
// are not known), or why not.
func (r *Round) layer2Node(n Node, anns []*config.L2Announcement) ([]Iface, Refusal) {
	if why := nodeRefusal(n); why.Refused() {
		return nil, why
	}
	if r.view.Alive != nil && !r.view.Alive[n.Name] && !r.view.Restarting[n.Name] {
		return nil, Refusal{Reason: NotAlive}
	}
	if why := r.dataPathRefusal(n.Name); why.Refused() {
		return nil, why
	}
	var selected bool
	var matched []Iface
	own, known := r.view.Ifaces[n.Name]
	for _, a := range anns {
		if !a.SelectsNode(n.Labels) {
			continue
		}
		selected = true
		for _, i := range own {
			if len(a.Interfaces) == 0 || slices.Contains(a.Interfaces, i.Name) {
				matched = append(matched, i)
			}
		}
	}
	if !selected {
		return nil, Refusal{Reason: NotSelected, Mode: config.Layer2}
	}
	if !known {
		return nil, Refusal{}
	}
	if len(matched) == 0 {
		return nil, Refusal{Reason: NoInterface}
	}
	slices.SortFunc(matched, func(a, b Iface) int { return cmp.Compare(a.Name, b.Name) })
	return slices.CompactFunc(matched, func(a, b Iface) bool { return a.Name == b.Name }), Refusal{}
}

// rank is n's preference for a pool covered by anns: the best
// L2Announcement.Rank among those selecting it, or drainedRank when it is
// drained.
func rank(n Node, anns []*config.L2Announcement) int {
	if n.Draining {
		return drainedRank
	}
	best := math.MaxInt32 - 1
	for _, a := range anns {
		if a.SelectsNode(n.Labels) {
			best = min(best, a.Rank(n.Labels))
		}
	}
	return best
}

// layer2Reason says why no node may answer for a: each node's first
// failed check, nodes in name order.
func (r *Round) layer2Reason(a *address, nodes *layer2Nodes) string {
	var why refusals
	local := a.local()
	for _, name := range r.sortedNames() {
		if w, ok := nodes.refused[name]; ok {
			why.add(w, name)
		} else if w := endpointRefusal(local, name); w.Refused() {
			why.add(w, name)
		}
	}
	return why.String()
}

// endpointRefusal refuses node unless it holds a ready endpoint of every
// Service in local (Layer 2: the owner gets every Service's traffic). It
// names the first Service without one.
func endpointRefusal(local []*Service, node string) Refusal {
	for _, s := range local {
		if !s.EndpointNodes[node] {
			return Refusal{Reason: NoEndpoint, Services: s.Key}
		}
	}
	return Refusal{}
}

// keys are the Services using a, sorted, each once.
func (a *address) keys() []string {
	out := make([]string, 0, 1+len(a.more))
	for s := range a.services {
		out = append(out, s.Key)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// local are the externalTrafficPolicy: Local Services using a, in View
// order.
func (a *address) local() []*Service {
	var out []*Service
	for s := range a.services {
		if s.Local {
			out = append(out, s)
		}
	}
	return out
}

// announcedIfaces is the union of the interface lists of the
// announcements in anns that select a node with labels; nil if any of them
// names none (every interface).
func announcedIfaces(anns []*config.L2Announcement, labels map[string]string) []string {
	var out []string
	for _, a := range anns {
		if !a.SelectsNode(labels) {
			continue
		}
		if len(a.Interfaces) == 0 {
			return nil
		}
		out = append(out, a.Interfaces...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Mine returns, per interface name, the addresses node answers for
// according to ds. A decision that names no interfaces (the owner
// published none) uses the interfaces in its Announcements, or all of all
// when that is empty.
func Mine(ds map[netip.Addr]*Decision, node string, all []Iface) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for ip, d := range ds {
		if d.Owner != node {
			continue
		}
		ifaces := d.Ifaces
		if ifaces == nil {
			for _, i := range all {
				if len(d.Announcements) == 0 || slices.Contains(d.Announcements, i.Name) {
					ifaces = append(ifaces, i)
				}
			}
		}
		for _, i := range ifaces {
			out[i.Name] = append(out[i.Name], ip)
		}
	}
	for _, ips := range out {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	return out
}

// Proxied returns, per interface name of node's, the addresses node
// answers for in another node's name (Decision.Proxy) and the MAC to
// name for each: the owner's interface of the same name. An owner that
// published no interfaces, or none of that name, gets no proxy answers
// there: there is no MAC to name.
func Proxied(ds map[netip.Addr]*Decision, node string, all []Iface) map[string]map[netip.Addr]string {
	out := map[string]map[netip.Addr]string{}
	for ip, d := range ds {
		if d.Proxy != node {
			continue
		}
		for _, mine := range all {
			for _, theirs := range d.Ifaces {
				if theirs.Name != mine.Name || theirs.MAC == "" {
					continue
				}
				if out[mine.Name] == nil {
					out[mine.Name] = map[netip.Addr]string{}
				}
				out[mine.Name][ip] = theirs.MAC
			}
		}
	}
	return out
}

// settledOnly returns the candidates that are not new members (View.New),
// or all of them if every one is new.
func (r *Round) settledOnly(candidates []string) []string {
	if len(r.view.New) == 0 {
		return candidates
	}
	old := slices.DeleteFunc(slices.Clone(candidates), func(n string) bool { return r.view.New[n] })
	if len(old) == 0 {
		return candidates
	}
	return old
}
