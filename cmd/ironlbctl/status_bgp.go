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
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// bgpAnnouncer is a node announcing a Service address to a BGP peer or,
// with Node empty, why no node announces the address: the BGP counterpart
// of v1alpha1.Announcer. ironlbctl computes it (see setBGPAnnouncers); the
// speakers write nothing per Service in BGP mode.
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
	// nodes by name.
	nodes map[string]nodeFacts
	// endpoints are, by Service, the nodes holding a ready endpoint of it.
	// Read only when some Service announced over BGP has
	// externalTrafficPolicy: Local.
	endpoints map[types.NamespacedName]map[string]bool
}

// nodeFacts is what announcing over BGP depends on of a Node.
type nodeFacts struct {
	ready    bool
	excluded bool // labelled v1alpha1.LabelExcludeFromLoadBalancers
	labels   map[string]string
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

// newBGPFacts keeps of nodes and eps what setBGPAnnouncers needs.
func newBGPFacts(cfg *config.Config, sessions []v1alpha1.BGPSessionStateStatus, nodes []corev1.Node, eps []discoveryv1.EndpointSlice) bgpFacts {
	f := bgpFacts{cfg: cfg, sessions: sessions, nodes: make(map[string]nodeFacts, len(nodes)),
		endpoints: map[types.NamespacedName]map[string]bool{}}
	for _, n := range nodes {
		excluded := kube.Excluded(n.Labels)
		f.nodes[n.Name] = nodeFacts{ready: kube.NodeReady(&n), excluded: excluded, labels: n.Labels}
	}
	for _, sl := range eps {
		name, ok := sl.Labels[discoveryv1.LabelServiceName]
		if !ok {
			continue
		}
		key := types.NamespacedName{Namespace: sl.Namespace, Name: name}
		for _, ep := range sl.Endpoints {
			// As kube-proxy and the speaker: nil means ready.
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
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

// poolAnnouncers are the sessions on which a pool's addresses are
// announced, sorted by node then peer; or, when there are none, why.
type poolAnnouncers struct {
	sessions []nodePeer
	reason   string
}

// setBGPAnnouncers fills in the BGPAnnouncers of rows: for each address
// announced over BGP, the nodes announcing it and to which peer, or why no
// node does. It mirrors the speaker (internal/speaker bgpMode.addresses
// and internal/bgp.RoutesFor): a node announces an address to a peer when
// its session with the peer is Established, it is Ready and not labelled
// v1alpha1.LabelExcludeFromLoadBalancers, a BGPAnnouncement covering the address's pool selects both
// the node and the peer, and, unless a Service holding the address has
// externalTrafficPolicy: Cluster, it holds a ready endpoint of one of the
// Services holding the address.
//
// The work per address is linear in the number of sessions: what depends
// only on the pool is computed once per pool.
func setBGPAnnouncers(rows []statusRow, f bgpFacts) {
	// Who may announce a shared address depends on every Service holding
	// it: the speaker announces it if any of them may be.
	type use struct {
		cluster bool                   // held by an externalTrafficPolicy: Cluster Service
		local   []types.NamespacedName // the Local Services holding it
	}
	uses := map[netip.Addr]*use{}
	addrs := make([][]bgpAddr, len(rows))
	for i, r := range rows {
		addrs[i] = bgpAddrs(f.cfg, r.IPs)
		for _, a := range addrs[i] {
			u := uses[a.ip]
			if u == nil {
				u = &use{}
				uses[a.ip] = u
			}
			if r.local {
				u.local = append(u.local, types.NamespacedName{Namespace: r.Namespace, Name: r.Name})
			} else {
				u.cluster = true
			}
		}
	}
	pools := map[string]poolAnnouncers{}
	for i := range rows {
		rows[i].BGPAnnouncers = nil
		for _, a := range addrs[i] {
			p, ok := pools[a.pool]
			if !ok {
				p = f.poolAnnouncers(a.pool)
				pools[a.pool] = p
			}
			u, ip := uses[a.ip], a.ip.String()
			n := len(rows[i].BGPAnnouncers)
			for _, s := range p.sessions {
				if u.cluster || slices.ContainsFunc(u.local, func(svc types.NamespacedName) bool { return f.endpoints[svc][s.node] }) {
					rows[i].BGPAnnouncers = append(rows[i].BGPAnnouncers, bgpAnnouncer{IP: ip, Node: s.node, Peer: s.peer})
				}
			}
			if len(rows[i].BGPAnnouncers) == n {
				reason := p.reason
				if reason == "" {
					reason = "no node with a ready endpoint"
				}
				rows[i].BGPAnnouncers = append(rows[i].BGPAnnouncers, bgpAnnouncer{IP: ip, Reason: reason})
			}
		}
	}
}

// poolAnnouncers returns the sessions on which the addresses of pool are
// announced when any node may announce them (externalTrafficPolicy:
// Cluster), or why there are none: the reason names the first condition
// that no session meets, in the order they are checked.
func (f bgpFacts) poolAnnouncers(pool string) poolAnnouncers {
	anns := f.cfg.BGPFor(pool)
	var out []nodePeer
	for _, s := range f.sessions {
		if s.State == v1alpha1.BGPStateEstablished &&
			slices.ContainsFunc(anns, func(a *config.BGPAnnouncement) bool { return a.SelectsPeer(s.Peer) }) {
			out = append(out, nodePeer{s.Node, s.Peer})
		}
	}
	for _, step := range []struct {
		keep   func(nodePeer) bool
		reason string
	}{
		{nil, "no Established session"},
		{func(s nodePeer) bool { return f.nodes[s.node].ready }, "no Established session on a Ready node"},
		{func(s nodePeer) bool { return !f.nodes[s.node].excluded }, "no Established session on a node not labelled " + v1alpha1.LabelExcludeFromLoadBalancers},
		{func(s nodePeer) bool {
			return slices.ContainsFunc(anns, func(a *config.BGPAnnouncement) bool {
				return a.SelectsNode(f.nodes[s.node].labels) && a.SelectsPeer(s.peer)
			})
		}, "no BGPAnnouncement selects a node with an Established session"},
	} {
		if step.keep != nil {
			out = slices.DeleteFunc(out, func(s nodePeer) bool { return !step.keep(s) })
		}
		if len(out) == 0 {
			return poolAnnouncers{reason: step.reason}
		}
	}
	slices.SortFunc(out, func(a, b nodePeer) int { return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.peer, b.peer)) })
	return poolAnnouncers{sessions: slices.Compact(out)}
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
