package announce

import (
	"net/netip"

	"github.com/ironlb/ironlb/internal/config"
)

// Node is what the rule needs of a Kubernetes Node. The caller reads the
// facts with internal/kube (NodeReady, Excluded), so that the speaker and
// ironlbctl read them alike.
type Node struct {
	Name  string
	Ready bool
	// Excluded: the node is labelled
	// v1alpha1.LabelExcludeFromLoadBalancers and announces nothing.
	Excluded bool
	// Draining: the node is cordoned or labelled
	// v1alpha1.LabelMaintenance (kube.Draining). It ranks after every
	// other node for Layer 2 addresses, and hands those it announces to
	// a better one by planned handovers (Decision.From).
	Draining bool
	// Labels are matched by the announcements' node selectors.
	Labels map[string]string
}

// Service is what the rule needs of a LoadBalancer Service that has
// addresses.
type Service struct {
	// Key is "namespace/name".
	Key string
	IPs []netip.Addr
	// Local is externalTrafficPolicy: Local: kube-proxy forwards the
	// Service's external traffic only to endpoints on the node that
	// received it, so a node without one would drop it.
	Local bool
	// EndpointNodes are the nodes with a ready endpoint; read only when
	// Local.
	EndpointNodes map[string]bool
}

// Iface is a network interface a node may answer on.
type Iface struct {
	Name string
	MAC  string
}

// View is everything one round reads. Every speaker builds it from the
// same API objects and the same membership, so every speaker reaches the
// same decisions; ironlbctl builds it from the same objects, with no
// membership, to say who announces what.
type View struct {
	Config *config.Config
	// Nodes by name.
	Nodes map[string]Node
	// Alive are the members memberlist reports alive. nil means there is
	// no membership (disabled, not running, or ironlbctl): node readiness
	// alone decides, as the API server reports it. Only Layer 2 reads it:
	// in BGP mode the routers' sessions tell a dead node apart.
	Alive map[string]bool
	// Ifaces are the interfaces of each node, as its speaker publishes
	// them. A node missing here (no membership, or it published nothing)
	// is taken to have whichever interface an announcement names.
	Ifaces map[string][]Iface
	// Current maps an address to the node that announces it now, as
	// reported in the ServiceAnnouncements; the Layer 2 owner choice keeps
	// addresses where they are (see OwnerFunc).
	Current map[netip.Addr]string
	// New are the members that joined moments ago (the speaker's
	// probation). A new member is a candidate for an address only where
	// no other node is: a node that comes back, after a failure the
	// others survived while the API server was away, would otherwise be
	// the Current owner of its old addresses until their new owners'
	// reports reach the API server, and take them back. Every speaker
	// reads the same join times from the membership, so they agree.
	New map[string]bool
	// Restarting are the members that stopped to restart in place and
	// are expected back (election.Members.Restarting): not alive, but each
	// stays the owner of the addresses it announces now (Current), which
	// its node goes on forwarding, and another node answers for them in
	// its name (Decision.Proxy) until it is back. Moving them instead
	// would reset every connection through them.
	Restarting map[string]bool
	// DataPathDown are the nodes whose speaker says the node's data path
	// is down: its kube-proxy's health endpoint fails, so traffic sent to
	// the node's MAC or routed to it would not reach the Services. Such a
	// node announces nothing (NoDataPath), in both modes, unless every
	// node that could does so too (DataPathsIgnored). Every speaker reads
	// the same membership metadata, so they agree.
	DataPathDown map[string]bool
	// DataPathUp are the nodes whose speaker says the node's data path is
	// up. A node in neither set has said nothing (an older speaker, or
	// one whose word this speaker does not have, as for the nodes of a
	// degraded view): it is not refused, and does not count as up for
	// DataPathsIgnored.
	DataPathUp map[string]bool
	// Moves are the planned handovers the owners of some addresses have
	// begun to rebalance them (Rebalance), by address. Each owner
	// publishes its own in its membership metadata (From is the
	// publisher), so every speaker reads the same. A move whose From no
	// longer announces the address (Current), or whose To may not
	// announce it, is ignored.
	Moves    map[netip.Addr]Move
	Services []Service
}

// NoneReady reports whether nodes has nodes and none of them is Ready.
// The rule then counts every node as Ready (Round): every Node NotReady
// at once is not every node dead but the control plane failing them all
// together (the node lifecycle controller, or the kubelets' path to the
// API server: an overloaded API server, a control-plane network cut, an
// expired certificate), while the nodes' data paths (kube-proxy) still
// work. Going dark would turn that into an outage of every Service;
// readiness tells no node apart then, and the membership (Layer 2) and
// the routers' sessions (BGP) still tell the dead ones.
func NoneReady(nodes map[string]Node) bool {
	for _, n := range nodes {
		if n.Ready {
			return false
		}
	}
	return len(nodes) > 0
}

// DataPathsIgnored reports whether the rule ignores v.DataPathDown: some
// node says its data path is down, but no node that could announce
// otherwise says it is up (View.DataPathUp: not saying is not up, so a
// node that alone knows its own state, the others being out of reach,
// does not refuse itself while no node would take over). The nodes that could are the Ready ones (every
// one with NoneReady) that are not excluded and, with a membership, whose
// speaker is alive or restarting. That is most often a cluster with no
// kube-proxy to ask (a replacement such as Cilium's serves no
// kube-proxy health endpoint) rather than every data path broken at
// once: refusing every node would turn it into an outage of every
// Service, and refusing none tells no node apart that could have
// forwarded.
func DataPathsIgnored(v View) bool {
	if len(v.DataPathDown) == 0 {
		return false
	}
	noneReady := NoneReady(v.Nodes)
	for name, n := range v.Nodes {
		if (!n.Ready && !noneReady) || n.Excluded {
			continue
		}
		if v.Alive != nil && !v.Alive[name] && !v.Restarting[name] {
			continue
		}
		if v.DataPathUp[name] {
			return false
		}
	}
	return true
}
