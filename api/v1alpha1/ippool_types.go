package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPool is a set of addresses ironlb may give to Services of type
// LoadBalancer. A pool only hands out addresses; whether and how they are
// reachable from outside is decided by L2Announcement and BGPAnnouncement
// objects that select the pool.
//
// No two pools may share an address. When a new or changed pool overlaps an
// older one, the newer pool is marked Valid=False and left out (or keeps its
// last valid version), so a mistake never takes addresses from a pool that
// already works.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=lbpool,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Used v4",type=integer,JSONPath=`.status.ipv4.used`
// +kubebuilder:printcolumn:name="Free v4",type=string,JSONPath=`.status.ipv4.free`
// +kubebuilder:printcolumn:name="Reserved v4",type=integer,JSONPath=`.status.ipv4.reserved`,priority=1
// +kubebuilder:printcolumn:name="Used v6",type=integer,JSONPath=`.status.ipv6.used`,priority=1
// +kubebuilder:printcolumn:name="Free v6",type=string,JSONPath=`.status.ipv6.free`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the pool as the operator wants it.
	// +required
	Spec IPPoolSpec `json:"spec"`

	// Status is written by the ironlb controller: whether the pool is in
	// force and how many of its addresses are used.
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec describes a pool's addresses and who may use them.
type IPPoolSpec struct {
	// Addresses are the addresses this pool hands out. Each entry is a CIDR
	// ("192.168.1.0/24"), an inclusive range ("192.168.1.87-192.168.1.97")
	// or a single address ("192.168.1.88"). IPv4 and IPv6 entries may be
	// mixed. A dual-stack Service takes each family's address from the
	// first pool it may use that has one of that family, so its two
	// addresses may come from one pool or from two. Entries must not
	// overlap each other or any other pool.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=100
	// +listType=atomic
	Addresses []string `json:"addresses"`

	// AutoAssign lets the controller pick addresses from this pool for
	// Services that do not ask for a specific address. Set it to false for a
	// pool of scarce addresses that should only go to Services asking for
	// one by address (spec.loadBalancerIP) or by pool (annotation).
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255 when picking
	// addresses automatically. Some old consumer routers and firewalls treat
	// them as broadcast addresses and drop their traffic.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AllowSharingAcrossNamespaces lets Services of different namespaces
	// share an address of this pool (with the same allow-shared-ip key, as
	// always). By default a Service may only join an address held by
	// Services of its own namespace: a sharing key is a plain string any
	// namespace can write, and a Service that joins another team's address
	// takes its ports and, with externalTrafficPolicy Local, can leave it
	// with no node to announce it. Turning this off later moves no
	// Service: those already sharing keep their address.
	// +optional
	AllowSharingAcrossNamespaces bool `json:"allowSharingAcrossNamespaces,omitempty"`

	// ServiceAllocation limits which Services may get addresses from this
	// pool and in which order pools are tried. Without it, any Service may
	// use the pool, after pools that have a serviceAllocation matching it.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts a pool to some Services and orders it among
// the pools a Service may use. Namespace conditions are ORed together, Service
// selectors are ORed together, and a Service must satisfy both groups (an
// empty group allows everything).
type ServiceAllocation struct {
	// Priority orders the pools a Service may use: the pool with the lowest
	// positive number is tried first. 0, the default, means "no priority":
	// such pools come after every pool with a priority, and pools without
	// a serviceAllocation come last. Ties are broken by pool name.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int32 `json:"priority,omitempty"`

	// Namespaces lists the namespaces whose Services may use this pool.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors selects, by namespace labels, further namespaces
	// whose Services may use this pool.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors selects, by Service labels, the Services that may use
	// this pool. A Service must match at least one selector.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPPoolStatus is written by the ironlb controller.
type IPPoolStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Valid" says whether the pool is in force and, if not,
	// which field is wrong or which older pool it clashes with.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// IPv4 counts the pool's IPv4 addresses; absent if it has none.
	// +optional
	IPv4 *AddressCounts `json:"ipv4,omitempty"`

	// IPv6 counts the pool's IPv6 addresses; absent if it has none.
	// +optional
	IPv6 *AddressCounts `json:"ipv6,omitempty"`
}

// AddressCounts counts the addresses of one IP family in a pool. Total and
// Free are decimal strings, not integers, because one IPv6 /64 alone holds
// 2^64 addresses, more than any JSON integer Kubernetes accepts; they are
// exact, never rounded or capped. Used and Reserved count assigned and
// reserved addresses and always fit an integer.
type AddressCounts struct {
	// Total is the number of addresses the pool can hand out, after
	// avoidBuggyIPs, as a decimal number.
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=40
	Total string `json:"total"`

	// Used is the number of the pool's addresses assigned to Services (an
	// address shared by several Services counts once).
	// +kubebuilder:validation:Minimum=0
	Used int64 `json:"used"`

	// Reserved is the number of the pool's addresses that IPReservations
	// hold, whether their Service holds them (then they count in Used
	// too) or not yet.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Reserved int64 `json:"reserved"`

	// Free is Total minus the addresses in use or reserved, as a decimal
	// number: what a Service asking for no particular address can get.
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=40
	Free string `json:"free"`
}

// IPPoolList is a list of IPPool.
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}
