package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// bgpAnnouncer is a node announcing a Service address to a BGP peer or,
// with Node empty, why no node announces the address: the BGP counterpart
// of v1alpha1.Announcer. ironlbctl computes it with the speakers' rule
// (see setBGPAnnouncers); the speakers write nothing per Service in BGP
// mode.
type bgpAnnouncer struct {
	IP     string `json:"ip"`
	Node   string `json:"node,omitempty"`
	Peer   string `json:"peer,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// bgpFacts is what the BGP announcers of every Service are computed from,
// read once for all Services.
type bgpFacts struct {
	cfg *config.Config
	// sessions are the speakers' BGPSessionStates.
	sessions []v1alpha1.BGPSessionStateStatus
	// nodes by name, as announce reads them.
	nodes map[string]announce.Node
	// endpoints are, by Service ("namespace/name"), the nodes holding a
	// ready endpoint of it. Read only when some Service announced over
	// BGP has externalTrafficPolicy: Local.
	endpoints map[string]map[string]bool
}

// readBGPFacts reads what setBGPAnnouncers needs beyond the config and the
// sessions: the Nodes, if a Service is announced over BGP, and the
// EndpointSlices, if such a Service has externalTrafficPolicy: Local. Each
// is listed once for all Services, never per Service.
func readBGPFacts(ctx context.Context, c client.Reader, cfg *config.Config, rows []statusRow, sessions []v1alpha1.BGPSessionStateStatus) (bgpFacts, error) {
	var bgp, local bool
	for _, r := range rows {
		if len(bgpAddrs(cfg, r.IPs)) > 0 {
			bgp = true
			local = local || r.local
		}
	}
	if !bgp {
		return newBGPFacts(cfg, sessions, nil, nil), nil
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return bgpFacts{}, fmt.Errorf("list nodes: %w", err)
	}
	var eps discoveryv1.EndpointSliceList
	if local {
		if err := c.List(ctx, &eps); err != nil {
			return bgpFacts{}, fmt.Errorf("list endpoint slices: %w", err)
		}
	}
	return newBGPFacts(cfg, sessions, nodes.Items, eps.Items), nil
}

// newBGPFacts keeps of nodes and eps what setBGPAnnouncers needs, read
// with internal/kube as the speakers read them.
func newBGPFacts(cfg *config.Config, sessions []v1alpha1.BGPSessionStateStatus, nodes []corev1.Node, eps []discoveryv1.EndpointSlice) bgpFacts {
	f := bgpFacts{cfg: cfg, sessions: sessions, nodes: make(map[string]announce.Node, len(nodes)),
		endpoints: map[string]map[string]bool{}}
	for i := range nodes {
		n := &nodes[i]
		f.nodes[n.Name] = announce.Node{Name: n.Name, Ready: kube.NodeReady(n), Excluded: kube.Excluded(n.Labels), Draining: kube.Draining(n), Labels: n.Labels}
	}
	for i := range eps {
		svc, ok := kube.SliceService(&eps[i])
		if !ok {
			continue
		}
		key := eps[i].Namespace + "/" + svc
		for _, ep := range eps[i].Endpoints {
			if ep.NodeName == nil || !kube.EndpointReady(ep) {
				continue
			}
			if f.endpoints[key] == nil {
				f.endpoints[key] = map[string]bool{}
			}
			f.endpoints[key][*ep.NodeName] = true
		}
	}
	return f
}

// view is the announce.View of rows: the one the speakers read, without
// the membership (BGP does not read it).
func (f bgpFacts) view(rows []statusRow) announce.View {
	v := announce.View{Config: f.cfg, Nodes: f.nodes}
	for _, r := range rows {
		svc := announce.Service{Key: r.Namespace + "/" + r.Name, Local: r.local}
		for _, s := range r.IPs {
			if a, err := netip.ParseAddr(s); err == nil {
				svc.IPs = append(svc.IPs, a)
			}
		}
		if svc.Local {
			svc.EndpointNodes = f.endpoints[svc.Key]
		}
		if len(svc.IPs) > 0 {
			v.Services = append(v.Services, svc)
		}
	}
	return v
}

// bgpAddr is a Service address in a pool that is announced over BGP.
type bgpAddr struct {
	ip   netip.Addr
	pool string
}

// bgpAddrs returns those of ips that are in a pool a BGPAnnouncement
// covers.
func bgpAddrs(cfg *config.Config, ips []string) []bgpAddr {
	var out []bgpAddr
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if p := cfg.PoolFor(a); p != nil && len(cfg.BGPFor(p.Name)) > 0 {
			out = append(out, bgpAddr{a, p.Name})
		}
	}
	return out
}

// nodePeer is one BGP session: a node's with a peer.
type nodePeer struct{ node, peer string }

// setBGPAnnouncers fills in the BGPAnnouncers of rows: for each address
// announced over BGP, the nodes announcing it and to which peer, or why no
// node does. Whether a node may announce an address is the speakers' own
// rule, announce.Round.BGP, asked for every node with an Established
// session; a node announces the address to a peer when its session with
// the peer is Established and one of the BGPAnnouncements that select the
// node (BGPVerdict.Announcements) names the peer, as internal/bgp's
// Routes sends the routes.
//
// When no node does, the reason names the furthest check that some node
// with an Established session to a peer the pool is announced to passed:
// the checks are made in announce.Reason's order, with the peer's
// selection counted with the node's (NotSelected).
func setBGPAnnouncers(rows []statusRow, f bgpFacts) {
	up := f.established()
	round := announce.NewRound(f.view(rows))
	verdicts := map[string]map[netip.Addr]announce.BGPVerdict{}
	for _, s := range up {
		if verdicts[s.node] != nil {
			continue
		}
		m := map[netip.Addr]announce.BGPVerdict{}
		for v := range round.BGP(s.node) {
			m[v.IP] = v
		}
		verdicts[s.node] = m
	}
	pools := map[string][]*config.BGPAnnouncement{}
	for i := range rows {
		rows[i].BGPAnnouncers = nil
		for _, a := range bgpAddrs(f.cfg, rows[i].IPs) {
			anns, ok := pools[a.pool]
			if !ok {
				anns = f.cfg.BGPFor(a.pool)
				pools[a.pool] = anns
			}
			ip := a.ip.String()
			furthest := announce.Eligible // no session to a peer of the pool
			n := len(rows[i].BGPAnnouncers)
			for _, s := range up {
				if !selectsPeer(anns, s.peer) {
					continue
				}
				switch why := sessionRefusal(verdicts[s.node][a.ip], s.peer); why {
				case announce.Eligible:
					rows[i].BGPAnnouncers = append(rows[i].BGPAnnouncers, bgpAnnouncer{IP: ip, Node: s.node, Peer: s.peer})
				default:
					furthest = max(furthest, why)
				}
			}
			if len(rows[i].BGPAnnouncers) == n {
				rows[i].BGPAnnouncers = append(rows[i].BGPAnnouncers, bgpAnnouncer{IP: ip, Reason: noBGPAnnouncer(furthest)})
			}
		}
	}
}

// established are the Established sessions, sorted by node then peer,
// each once.
func (f bgpFacts) established() []nodePeer {
	var out []nodePeer
	for _, s := range f.sessions {
		if s.State == v1alpha1.BGPStateEstablished {
			out = append(out, nodePeer{s.Node, s.Peer})
		}
	}
	slices.SortFunc(out, func(a, b nodePeer) int { return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.peer, b.peer)) })
	return slices.Compact(out)
}

// selectsPeer reports whether one of anns is announced to peer.
func selectsPeer(anns []*config.BGPAnnouncement, peer string) bool {
	return slices.ContainsFunc(anns, func(a *config.BGPAnnouncement) bool { return a.SelectsPeer(peer) })
}

// sessionRefusal is why a node's Established session with peer does not
// carry the address v is about: v's refusal, with a peer that none of
// the announcements selecting the node names counted as NotSelected, in
// its place among the checks.
func sessionRefusal(v announce.BGPVerdict, peer string) announce.Reason {
	if why := v.Refusal.Reason; why != announce.Eligible && why < announce.NotSelected {
		return why
	}
	if !selectsPeer(v.Announcements, peer) {
		return announce.NotSelected
	}
	return v.Refusal.Reason
}

// noBGPAnnouncer says why no node announces an address, given the
// furthest check a node with an Established session to one of the pool's
// peers got to (Eligible: there is no such session).
func noBGPAnnouncer(furthest announce.Reason) string {
	switch furthest {
	case announce.Eligible:
		return "no Established session"
	case announce.NotReady:
		return "no Established session on a Ready node"
	case announce.Excluded:
		return "no Established session on a node not labelled " + v1alpha1.LabelExcludeFromLoadBalancers
	case announce.NotSelected:
		return "no BGPAnnouncement selects a node with an Established session"
	default:
		return "no node with a ready endpoint"
	}
}

// bgpAnnouncedBy is the BGP part of the ANNOUNCED BY column: the nodes
// announcing the Service's addresses, sorted ("node-1, node-2"), each with
// its peers when wide ("node-1 (router), node-2 (router)"); then, for the
// addresses no node announces, why ("none (no Established session)").
func (r statusRow) bgpAnnouncedBy(wide bool) string {
	peers := map[string][]string{}
	var reasons []string
	for _, a := range r.BGPAnnouncers {
		if a.Node == "" {
			if p := "none (" + a.Reason + ")"; !slices.Contains(reasons, p) {
				reasons = append(reasons, p)
			}
			continue
		}
		if !slices.Contains(peers[a.Node], a.Peer) {
			peers[a.Node] = append(peers[a.Node], a.Peer)
		}
	}
	var parts []string
	nodes := slices.Sorted(maps.Keys(peers))
	for i, n := range nodes {
		if !wide && i == bgpNodesShown {
			parts[i-1] += fmt.Sprintf(" +%d", len(nodes)-i)
			break
		}
		if wide {
			slices.Sort(peers[n])
			n += " (" + strings.Join(peers[n], ", ") + ")"
		}
		parts = append(parts, n)
	}
	return strings.Join(append(parts, reasons...), ", ")
}

// bgpNodesShown is how many announcing nodes the plain table names: in BGP
// mode every eligible node announces, and fifty names would push STATUS
// off the screen. -o wide and -o json list them all.
const bgpNodesShown = 3
