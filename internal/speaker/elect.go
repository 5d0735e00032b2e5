package speaker

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/kube"
)

// Node is what the election needs of a Kubernetes Node.
type Node struct {
	Name   string
	Ready  bool
	Labels map[string]string
}

// Service is what the election needs of a LoadBalancer Service that has
// addresses.
type Service struct {
	// Key is "namespace/name".
	Key string
	IPs []netip.Addr
	// Local is externalTrafficPolicy: Local: only nodes with a ready
	// endpoint of the Service may announce it (traffic is not forwarded
	// to other nodes, so another node would drop it).
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

// View is everything one election round reads. Every speaker builds it
// from the same API objects and the same membership, so every speaker
// reaches the same Decisions.
type View struct {
	Config *config.Config
	// Nodes by name.
	Nodes map[string]Node
	// Alive are the members memberlist reports alive. nil means there is
	// no membership (disabled or not running): node readiness alone
	// decides, as the API server reports it.
	Alive map[string]bool
	// Ifaces are the interfaces of each node, as its speaker publishes
	// them. A node missing here (no membership, or it published nothing)
	// is taken to have whichever interface an announcement names.
	Ifaces map[string][]Iface
	// Current maps an address to the node that announces it now, as
	// reported in the ServiceAnnouncements; it keeps addresses where they
	// are (election.StickyOwner).
	Current  map[netip.Addr]string
	Services []Service
}

// Decision is the outcome for one address.
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
	// published none).
	Ifaces []Iface
	// Announcements names the owner's interfaces when Ifaces is nil: the
	// union of the matching L2Announcements' interface lists (empty: all).
	Announcements []string
}

// Decide elects an owner for every Layer 2 address of v.Services. An
// address outside every pool, or in a pool no L2Announcement covers (a BGP
// pool), gets no Decision.
func Decide(v View) map[netip.Addr]*Decision {
	out := map[netip.Addr]*Decision{}
	local := map[netip.Addr][]*Service{}
	for i := range v.Services {
		s := &v.Services[i]
		for _, ip := range s.IPs {
			d := out[ip]
			if d == nil {
				d = &Decision{IP: ip}
				out[ip] = d
			}
			d.Services = append(d.Services, s.Key)
			if s.Local {
				local[ip] = append(local[ip], s)
			}
		}
	}
	names := make([]string, 0, len(v.Nodes))
	for n := range v.Nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for ip, d := range out {
		slices.Sort(d.Services)
		d.Services = slices.Compact(d.Services)
		var pool *config.Pool
		if v.Config != nil {
			pool = v.Config.PoolFor(ip)
		}
		if pool == nil {
			delete(out, ip)
			continue
		}
		anns := v.Config.L2For(pool.Name)
		if len(anns) == 0 {
			delete(out, ip)
			continue
		}
		var why refusals
		candidates := make([]string, 0, len(names))
		ifaces := map[string][]Iface{}
		for _, name := range names {
			n := v.Nodes[name]
			if ok, reason := v.eligible(n, anns, local[ip], ifaces); !ok {
				why.add(reason, name)
				continue
			}
			candidates = append(candidates, name)
		}
		if len(candidates) == 0 {
			d.Reason = why.String()
			continue
		}
		d.Owner = election.StickyOwner(ip, candidates, v.Current[ip])
		d.Ifaces = ifaces[d.Owner]
		if _, known := v.Ifaces[d.Owner]; !known {
			d.Ifaces = nil
			d.Announcements = announcedIfaces(anns, v.Nodes[d.Owner].Labels)
		}
	}
	return out
}

// eligible reports whether node n may announce an address of a pool
// covered by anns and used by the Local services local, and if not, why.
// It records in ifaces the interfaces n would answer on.
func (v View) eligible(n Node, anns []*config.L2Announcement, local []*Service, ifaces map[string][]Iface) (bool, string) {
	if !n.Ready {
		return false, "not Ready"
	}
	if kube.Excluded(n.Labels) {
		return false, "labelled " + v1alpha1.LabelExcludeFromLoadBalancers
	}
	if v.Alive != nil && !v.Alive[n.Name] {
		return false, "speaker not running or unreachable"
	}
	var selected bool
	var matched []Iface
	own, known := v.Ifaces[n.Name]
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
		return false, "not selected by any L2Announcement's nodeSelectors"
	}
	if known {
		if len(matched) == 0 {
			return false, "has none of the announced interfaces"
		}
		slices.SortFunc(matched, func(a, b Iface) int { return cmp.Compare(a.Name, b.Name) })
		ifaces[n.Name] = slices.CompactFunc(matched, func(a, b Iface) bool { return a.Name == b.Name })
	}
	for _, s := range local {
		if !s.EndpointNodes[n.Name] {
			return false, "no ready endpoint of " + s.Key + " (externalTrafficPolicy: Local)"
		}
	}
	return true, ""
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

// refusals groups the nodes that may not announce an address by reason,
// for a message such as "no node may announce it: node-1, node-2 not
// Ready; node-3 labelled ...".
type refusals struct {
	reasons []string
	nodes   map[string][]string
}

func (r *refusals) add(reason, node string) {
	if r.nodes == nil {
		r.nodes = map[string][]string{}
	}
	if _, ok := r.nodes[reason]; !ok {
		r.reasons = append(r.reasons, reason)
	}
	r.nodes[reason] = append(r.nodes[reason], node)
}

func (r *refusals) String() string {
	if len(r.reasons) == 0 {
		return "no node may announce it: the cluster has no nodes"
	}
	parts := make([]string, 0, len(r.reasons))
	for _, reason := range r.reasons {
		nodes := r.nodes[reason]
		list := strings.Join(nodes, ", ")
		if len(nodes) > 3 {
			list = fmt.Sprintf("%s and %d more", strings.Join(nodes[:3], ", "), len(nodes)-3)
		}
		parts = append(parts, list+": "+reason)
	}
	return "no node may announce it (" + strings.Join(parts, "; ") + ")"
}

// Mine returns, per interface name, the addresses node announces
// according to ds. A decision that names no interfaces (the owner
// published none) uses the interfaces in ds's Announcements, or all of
// all when that is empty.
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
