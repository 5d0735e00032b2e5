package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2Announcement makes the addresses of some pools reachable on the local
// network segment (Layer 2 mode): for each address, one elected node answers
// ARP (IPv4) and NDP (IPv6) requests with its own MAC address. Nothing is
// configured on the nodes' interfaces. Clients must be on the same segment
// as the announcing nodes, and kube-proxy in IPVS mode needs strictARP.
//
// With neither ipPools nor ipPoolSelectors, the announcement covers every
// pool. A name in ipPools that matches no pool is reported as a warning and
// has no effect until such a pool exists.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=l2ann,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Announcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which addresses are announced, from which nodes and on
	// which interfaces.
	// +optional
	Spec L2AnnouncementSpec `json:"spec,omitempty"`

	// Status is written by the ironlb controller.
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// L2AnnouncementSpec selects pools, nodes and interfaces for Layer 2 mode.
type L2AnnouncementSpec struct {
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

	// NodeSelectors limits the nodes that may announce, by node labels; a
	// node matching any selector is eligible. Empty: every node running the
	// ironlb speaker.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// NodePreference orders the eligible nodes: an address is announced
	// by a node matching the first selector that matches any node that
	// may announce it, else the second, and so on; nodes matching none
	// come last. Among equally preferred nodes the addresses are spread
	// evenly. A failure moves addresses at once to the best node left;
	// when a more preferred node comes back, addresses return to it one
	// at a time, each by a planned handover that loses no traffic.
	// Empty: every eligible node is equally preferred.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	NodePreference []metav1.LabelSelector `json:"nodePreference,omitempty"`

	// Interfaces limits the network interfaces ARP and NDP are answered on,
	// by exact name (for example "eth0"). Empty: every interface.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[^/:\s]{1,15}$`
	// +listType=set
	Interfaces []string `json:"interfaces,omitempty"`
}

// L2AnnouncementList is a list of L2Announcement.
// +kubebuilder:object:root=true
type L2AnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Announcement `json:"items"`
}
