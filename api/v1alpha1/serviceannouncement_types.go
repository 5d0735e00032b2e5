package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAnnouncement says who makes a LoadBalancer Service's addresses
// reachable: for each address, the node that answers ARP/NDP for it, on
// which interfaces and with which MAC. It has the Service's namespace and
// name, is written by the ironlb speakers (one writer per Service: the
// speaker announcing its first address), and is deleted with the Service.
// It is read-only for users: `kubectl get serviceannouncements -A` lists
// who announces what.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=svcann,categories=ironlb
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`
// +kubebuilder:printcolumn:name="IPs",type=string,JSONPath=`.status.announcers[*].ip`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.announcers[*].node`
// +kubebuilder:printcolumn:name="Interface",type=string,JSONPath=`.status.announcers[*].interface`
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.status.announcers[*].mac`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is written by the speakers.
	// +optional
	Status ServiceAnnouncementStatus `json:"status,omitempty"`
}

// AnnouncementMode is how a Service's addresses are made reachable.
// +kubebuilder:validation:Enum=Layer2;BGP
type AnnouncementMode string

// Announcement modes.
const (
	ModeLayer2 AnnouncementMode = "Layer2"
	ModeBGP    AnnouncementMode = "BGP"
)

// ServiceAnnouncementStatus lists the announcers of a Service's addresses.
type ServiceAnnouncementStatus struct {
	// Mode is how the addresses are announced.
	// +optional
	Mode AnnouncementMode `json:"mode,omitempty"`
	// Announcers has one entry per address and interface that announces it,
	// sorted by address then interface. An address that no node may
	// announce (no eligible node is alive) is listed with an empty node
	// and a reason.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Announcers []Announcer `json:"announcers,omitempty"`
}

// Announcer is one node answering for one address on one interface.
type Announcer struct {
	// IP is the Service address.
	IP string `json:"ip"`
	// Node is the node answering for IP; empty when none may.
	// +optional
	Node string `json:"node,omitempty"`
	// Interface is the network interface it answers on.
	// +optional
	Interface string `json:"interface,omitempty"`
	// MAC is the interface's hardware address: what clients' ARP/NDP
	// caches should hold for IP.
	// +optional
	MAC string `json:"mac,omitempty"`
	// Reason says why no node announces IP, when Node is empty.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// ServiceAnnouncementList is a list of ServiceAnnouncement.
// +kubebuilder:object:root=true
type ServiceAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAnnouncement `json:"items"`
}
