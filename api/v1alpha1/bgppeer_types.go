package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeer is a router that ironlb speakers open BGP sessions to (BGP mode).
// Every node selected by nodeSelectors runs its own session to the peer and
// announces, through it, the addresses chosen by BGPAnnouncement objects.
//
// Two BGPPeers with the same peerAddress, peerPort, sourceAddress and node
// selectors would open two sessions to one router from the same node; the
// newer one is marked Valid=False and left out.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=lbpeer,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Peer Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the router and the session to it.
	// +required
	Spec BGPPeerSpec `json:"spec"`

	// Status is written by the ironlb controller.
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BGPPeerSpec describes one BGP neighbour.
type BGPPeerSpec struct {
	// MyASN is the autonomous system number the speakers use in this
	// session (4-byte ASNs allowed).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// PeerASN is the router's autonomous system number. Equal to myASN
	// makes an iBGP session, different makes eBGP.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	PeerASN uint32 `json:"peerASN"`

	// PeerAddress is the router's IPv4 or IPv6 address.
	// +required
	// +kubebuilder:validation:MaxLength=45
	PeerAddress string `json:"peerAddress"`

	// PeerPort is the router's BGP TCP port.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort uint16 `json:"peerPort,omitempty"`

	// SourceAddress is the local address the session is opened from. It
	// must exist on the node. Empty: the kernel's choice for the route to
	// the peer.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	SourceAddress string `json:"sourceAddress,omitempty"`

	// RouterID is the BGP identifier the speakers send (RFC 6286: a
	// non-zero 32-bit value, written as an IPv4 address). Empty: each node
	// uses its own IPv4 address.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	RouterID string `json:"routerID,omitempty"`

	// HoldTime is how long the session may stay silent before it is
	// declared down, such as "90s". It is rounded down to whole seconds;
	// 0 turns keepalives off. Default 90s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the interval between keepalive messages, rounded
	// down to whole seconds. Default: a third of holdTime.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is more than one hop away (it
	// raises the TTL of the session's packets). Only for eBGP sessions.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// PasswordSecret names a Secret (name and namespace) whose "password"
	// key holds the TCP MD5 signature password of the session (RFC 2385).
	// Empty: no password.
	// +optional
	PasswordSecret *corev1.SecretReference `json:"passwordSecret,omitempty"`

	// NodeSelectors limits the nodes that open a session to this peer, by
	// node labels; a node matching any selector does. Empty: every node
	// running the ironlb speaker.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// BFDProfile names a BFDProfile to run Bidirectional Forwarding
	// Detection with this peer, so a dead link is noticed in milliseconds
	// rather than after holdTime. A name that matches no profile is
	// reported as a warning and the session runs without BFD.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	BFDProfile string `json:"bfdProfile,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
