package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/ipam"
)

// Protocol is how a pool's addresses are made reachable.
type Protocol string

// Protocols. A legacy ConfigMap pool names one; an IPPool names none and is
// announced by whichever L2Announcement and BGPAnnouncement objects select it.
const (
	Layer2 Protocol = "layer2"
	BGP    Protocol = "bgp"
)

// ObjectRef names the Kubernetes object a piece of configuration came from.
// Namespace is empty for ironlb's cluster-scoped kinds.
type ObjectRef struct {
	Kind      string // "IPPool", "IPReservation", "L2Announcement", "BGPPeer", "BGPAnnouncement", "BFDProfile", "ConfigMap"
	Namespace string
	Name      string
}

// String formats r as kubectl users know it: "IPPool/default" for a
// cluster-scoped object, "ConfigMap ironlb-system/config" for a namespaced one.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func compareRefs(a, b ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// Config is every configuration object in force, parsed and validated. It is
// immutable: Build makes a new one for every change.
type Config struct {
	// Pools maps pool names to pools. No two pools share an address.
	Pools map[string]*Pool
	// L2 are the Layer 2 announcements, ordered by Source.
	L2 []*L2Announcement
	// BGPPeers are the BGP neighbours, ordered by Source.
	BGPPeers []*BGPPeer
	// BGPAnnouncements are the BGP announcements, ordered by Source.
	BGPAnnouncements []*BGPAnnouncement
	// BFDProfiles maps profile names to BFD settings.
	BFDProfiles map[string]*BFDProfile
	// Reservations are the IPReservations, ordered by Source. No two hold
	// one address, and every address lies in a pool of Pools.
	Reservations []*Reservation

	// versions holds, per object, the version in force, so that the next
	// Build can keep it when the object turns invalid.
	versions map[ObjectRef]version
}

// Pool is an IPPool, or an address-pools entry of the legacy ConfigMap.
type Pool struct {
	Name   string
	Source ObjectRef
	// Ranges are the pool's entries in the order written; each is one
	// address, range or CIDR. They do not overlap each other or any other
	// pool's.
	Ranges []ipam.Range
	// AutoAssign: the controller may pick addresses from this pool for
	// Services that did not ask for one (PoolsFor).
	AutoAssign bool
	// AvoidBuggyIPs: skip IPv4 addresses ending in .0 and .255 when picking.
	AvoidBuggyIPs bool
	// AllowSharingAcrossNamespaces: Services of different namespaces may
	// share an address of the pool. Always false for a legacy ConfigMap
	// pool, which has no such key (see the README).
	AllowSharingAcrossNamespaces bool
	// Labels are the IPPool's labels, matched by ipPoolSelectors.
	Labels map[string]string
	// Protocol is set for legacy ConfigMap pools, which name one; "" for an
	// IPPool. Either way, the L2 and BGPAnnouncements in Config are what
	// decide how the pool is announced.
	Protocol Protocol
	// Allocation limits which Services may use the pool; nil: any Service.
	Allocation *Allocation
}

// Allocation restricts a pool to some Services and orders the pools a
// Service may use (IPPool spec.serviceAllocation).
type Allocation struct {
	// Priority: lower positive values are tried first; 0 means none and
	// comes after every pool with a priority.
	Priority int
	// Namespaces and NamespaceSelectors allow the Services of a namespace
	// that is listed or whose labels match a selector. Both empty: any.
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	// ServiceSelectors allow Services whose labels match a selector.
	// Empty: any.
	ServiceSelectors []labels.Selector
}

// Allows reports whether a Service in namespace ns (labels nsLabels) with
// labels svcLabels may use the pool.
func (p *Pool) Allows(ns string, nsLabels, svcLabels map[string]string) bool {
	a := p.Allocation
	if a == nil {
		return true
	}
	if len(a.Namespaces)+len(a.NamespaceSelectors) > 0 &&
		!slices.Contains(a.Namespaces, ns) && !anyMatches(a.NamespaceSelectors, nsLabels) {
		return false
	}
	if len(a.ServiceSelectors) > 0 && !anyMatches(a.ServiceSelectors, svcLabels) {
		return false
	}
	return true
}

// Contains reports whether a belongs to one of the pool's ranges.
func (p *Pool) Contains(a netip.Addr) bool {
	return slices.ContainsFunc(p.Ranges, func(r ipam.Range) bool { return r.Contains(a) })
}

// PoolsFor returns the pools a Service may get automatic addresses from, in
// the order to try them: pools whose Allocation has a positive Priority,
// lowest first; then pools with an Allocation and no priority; then pools
// without an Allocation. Ties are broken by name. This is MetalLB's order.
func (c *Config) PoolsFor(ns string, nsLabels, svcLabels map[string]string) []*Pool {
	var out []*Pool
	for _, p := range c.Pools {
		if p.AutoAssign && p.Allows(ns, nsLabels, svcLabels) {
			out = append(out, p)
		}
	}
	rank := func(p *Pool) (group, prio int) {
		switch {
		case p.Allocation == nil:
			return 2, 0
		case p.Allocation.Priority > 0:
			return 0, p.Allocation.Priority
		default:
			return 1, 0
		}
	}
	slices.SortFunc(out, func(a, b *Pool) int {
		ga, pa := rank(a)
		gb, pb := rank(b)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(pa, pb), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// PoolFor returns the pool that holds address a, or nil.
func (c *Config) PoolFor(a netip.Addr) *Pool {
	for _, p := range c.Pools {
		if p.Contains(a) {
			return p
		}
	}
	return nil
}

// L2Announcement announces some pools' addresses with ARP and NDP.
type L2Announcement struct {
	Source ObjectRef
	// IPPools and IPPoolSelectors are the selection as written.
	IPPools         []string
	IPPoolSelectors []labels.Selector
	// Pools are the names of the pools in this Config that the
	// announcement covers, sorted: those named in IPPools, those matched by
	// IPPoolSelectors, or every pool when both are empty.
	Pools []string
	// NodeSelectors: nodes that may announce; empty means every node.
	NodeSelectors []labels.Selector
	// NodePreference orders the selected nodes: the index of the first
	// selector a node matches is its rank (lower is preferred), and a
	// node matching none ranks last (see Rank).
	NodePreference []labels.Selector
	// Interfaces: interfaces to answer on; empty means every interface.
	Interfaces []string
}

// SelectsNode reports whether a node with labels nodeLabels may announce.
func (a *L2Announcement) SelectsNode(nodeLabels map[string]string) bool {
	return len(a.NodeSelectors) == 0 || anyMatches(a.NodeSelectors, nodeLabels)
}

// Rank is the preference of a node with labels nodeLabels: the index of
// the first NodePreference selector it matches, len(NodePreference) when
// it matches none (0 when there is no preference: all nodes rank alike).
func (a *L2Announcement) Rank(nodeLabels map[string]string) int {
	for i, s := range a.NodePreference {
		if s.Matches(labels.Set(nodeLabels)) {
			return i
		}
	}
	return len(a.NodePreference)
}

// BGPPeer is a BGP neighbour.
type BGPPeer struct {
	// Name is the BGPPeer object's name, which BGPAnnouncement.Peers
	// refers to; "peers[0]" and so on for the legacy ConfigMap's peers.
	Name          string
	Source        ObjectRef
	MyASN         uint32
	PeerASN       uint32
	PeerAddress   netip.Addr
	PeerPort      uint16
	SourceAddress netip.Addr // zero Addr: the kernel's choice
	RouterID      netip.Addr // zero Addr: the node's own IPv4 address
	// HoldTime and KeepaliveTime are whole seconds; both 0 means no
	// keepalives (RFC 4271 section 4.2).
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	EBGPMultiHop  bool
	// Password is the TCP MD5 password (RFC 2385) written inline in the
	// legacy ConfigMap; PasswordSecret names a Secret whose "password" key
	// holds it (BGPPeer). At most one is set.
	Password       string
	PasswordSecret *types.NamespacedName
	// NodeSelectors: nodes that open a session; empty means every node.
	NodeSelectors []labels.Selector
	// BFDProfile names the entry of Config.BFDProfiles to use, or is empty
	// for no BFD (also when the profile named in the object does not exist;
	// that is reported as a warning).
	BFDProfile string
}

// SelectsNode reports whether a node with labels nodeLabels peers with p.
func (p *BGPPeer) SelectsNode(nodeLabels map[string]string) bool {
	return len(p.NodeSelectors) == 0 || anyMatches(p.NodeSelectors, nodeLabels)
}

// BGPAnnouncement announces some pools' addresses as BGP routes.
type BGPAnnouncement struct {
	Source ObjectRef
	// IPPools and IPPoolSelectors are the selection as written.
	IPPools         []string
	IPPoolSelectors []labels.Selector
	// Pools are the names of the pools in this Config that the
	// announcement covers, sorted (see L2Announcement.Pools), minus pools
	// whose entries are too small for the aggregation lengths (reported as
	// warnings).
	Pools []string
	// AggregationLength and AggregationLengthV6 are the prefix lengths of
	// the routes for IPv4 and IPv6 addresses.
	AggregationLength   int
	AggregationLengthV6 int
	// LocalPref is the LOCAL_PREF attribute; nil: not set.
	LocalPref *uint32
	// Communities to attach, aliases resolved, in the order written.
	Communities []Community
	// Peers names the BGPPeers (BGPPeer.Name) to announce to; empty: all.
	// A name that matches no peer matches nothing.
	Peers []string
	// NodeSelectors: nodes that announce; empty means every node.
	NodeSelectors []labels.Selector
}

// SelectsNode reports whether a node with labels nodeLabels announces a.
func (a *BGPAnnouncement) SelectsNode(nodeLabels map[string]string) bool {
	return len(a.NodeSelectors) == 0 || anyMatches(a.NodeSelectors, nodeLabels)
}

// SelectsPeer reports whether a is announced to the peer named name.
func (a *BGPAnnouncement) SelectsPeer(name string) bool {
	return len(a.Peers) == 0 || slices.Contains(a.Peers, name)
}

// BFDProfile holds Bidirectional Forwarding Detection settings (RFC 5880),
// defaults filled in.
type BFDProfile struct {
	Name             string
	Source           ObjectRef
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	EchoInterval     time.Duration
	DetectMultiplier uint32
	EchoMode         bool
	PassiveMode      bool
	MinimumTTL       uint32
}

// L2For returns the Layer 2 announcements that cover the pool named pool.
func (c *Config) L2For(pool string) []*L2Announcement {
	var out []*L2Announcement
	for _, a := range c.L2 {
		if slices.Contains(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

// BGPFor returns the BGP announcements that cover the pool named pool.
func (c *Config) BGPFor(pool string) []*BGPAnnouncement {
	var out []*BGPAnnouncement
	for _, a := range c.BGPAnnouncements {
		if slices.Contains(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

func anyMatches(sels []labels.Selector, l map[string]string) bool {
	set := labels.Set(l)
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// Outcome says what a Problem did to its object.
type Outcome int

const (
	// LeftOut: the object is not in the Config at all.
	LeftOut Outcome = iota
	// KeptLastGood: the object as written is not in the Config; its last
	// valid version (from the prev Config given to Build) is.
	KeptLastGood
	// Warning: the object is in the Config as written, but part of it has
	// no effect (it names something that does not exist, for example).
	Warning
)

// String describes o for logs.
func (o Outcome) String() string {
	switch o {
	case LeftOut:
		return "left out"
	case KeptLastGood:
		return "last valid version in force"
	case Warning:
		return "warning"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Problem is one thing wrong with one object, written for the operator
// who owns the object. An object may have several.
type Problem struct {
	Object ObjectRef
	// Field is the path of the offending field: "spec.addresses[1]" in a
	// CRD, "address-pools[0].addresses[1]" in the legacy ConfigMap's
	// data.config; empty when the problem is the object as a whole.
	Field   string
	Message string
	// Reason is the Valid condition reason to report: v1alpha1.ReasonInvalid,
	// ReasonConflict or ReasonMissingReference.
	Reason  string
	Outcome Outcome
}

// Error formats p as
// `IPPool/lan: spec.addresses[1]: invalid range "10.0.0.5-10.0.0.1": start is after end`,
// noting when the last valid version stays in force.
func (p Problem) Error() string {
	s := p.Object.String() + ": "
	if p.Field != "" {
		s += p.Field + ": "
	}
	s += p.Message
	if p.Outcome == KeptLastGood {
		s += " (the last valid version stays in force)"
	}
	return s
}

// ProblemsByObject groups problems by the object they are about, keeping
// their order. The controller uses it to write one Valid condition per
// object: any problem other than a Warning makes it False.
func ProblemsByObject(ps []Problem) map[ObjectRef][]Problem {
	m := map[ObjectRef][]Problem{}
	for _, p := range ps {
		m[p.Object] = append(m[p.Object], p)
	}
	return m
}
