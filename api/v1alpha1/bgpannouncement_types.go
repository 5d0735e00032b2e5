package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAnnouncement makes the addresses of some pools reachable through BGP:
// every selected node announces a route for each address to its BGP peers,
// and the routers spread traffic across those nodes.
//
// With neither ipPools nor ipPoolSelectors, the announcement covers every
// pool; with no peers, it goes to every peer. A pool or peer name that
// matches nothing is reported as a warning and has no effect until it does.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpann,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Communities",type=string,JSONPath=`.spec.communities`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which addresses are announced, how, from which nodes and
	// to which peers.
	// +optional
	Spec BGPAnnouncementSpec `json:"spec,omitempty"`

	// Status is written by the ironlb controller.
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BGPAnnouncementSpec selects pools, peers and nodes, and sets the route
// attributes for BGP mode.
type BGPAnnouncementSpec struct {
	// IPPools names the pools whose addresses are announced.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	IPPools []string `json:"ipPools,omitempty"`

	// IPPoolSelectors selects further pools by their labels.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	IPPoolSelectors []metav1.LabelSelector `json:"ipPoolSelectors,omitempty"`

	// AggregationLength is the prefix length of the routes announced for
	// IPv4 addresses. 32 announces each address on its own; a shorter length
	// announces the enclosing block instead, so routers need fewer entries.
	// It may not be shorter than the widest CIDR block a selected pool's
	// entry is made of (an entry 198.51.100.0/24 allows 24 to 32; a range
	// allows the prefix length of its widest aligned block), so a route does
	// not claim a whole subnet the pool only has part of. A pool that breaks
	// this is not announced by this object, and a warning names it.
	// +optional
	// +kubebuilder:default=32
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is aggregationLength for IPv6 addresses.
	// +optional
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref sets the LOCAL_PREF attribute of the routes, which routers
	// of the same AS use to choose among paths (higher wins). It is only
	// sent to iBGP peers. Empty: not set.
	// +optional
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPref *uint32 `json:"localPref,omitempty"`

	// Communities are attached to the routes. Each is a standard community
	// "ASN:value" with 16-bit parts ("65535:65282", RFC 1997), a large
	// community "large:global:local1:local2" with 32-bit parts (RFC 8092),
	// a well-known name (no-export, no-advertise, no-export-subconfed,
	// no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale,
	// no-llgr), or an alias from bgp-communities in the legacy ConfigMap.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	Communities []string `json:"communities,omitempty"`

	// Peers names the BGPPeers the routes are sent to. Empty: every peer.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	Peers []string `json:"peers,omitempty"`

	// NodeSelectors limits the nodes that announce the routes, by node
	// labels; a node matching any selector does. Empty: every node with a
	// session to the peer. Typically left empty, so that every node can
	// take traffic.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
}

// BGPAnnouncementList is a list of BGPAnnouncement.
// +kubebuilder:object:root=true
type BGPAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAnnouncement `json:"items"`
}
