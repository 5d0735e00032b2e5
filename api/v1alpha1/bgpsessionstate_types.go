package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels on every BGPSessionState, so one node's or one peer's sessions can
// be selected: `kubectl get bgpsess -n ironlb-system -l ironlb.io/node=node-1`.
// The value is the node's or BGPPeer's name when that is a valid label
// value; otherwise (longer than 63 characters, or a legacy ConfigMap peer
// such as "peers[0]") a cleaned-up, hash-suffixed form of it. The exact
// names are in the status.
const (
	LabelNode = "ironlb.io/node"
	LabelPeer = "ironlb.io/peer"
)

// BGPSessionState is one node's BGP session with one BGPPeer, as the
// speaker on that node sees it: the session's state, its BFD state, how
// many prefixes it announces and, while it is not Established, why. There
// is one per node and peer, in the speakers' namespace (ironlb-system),
// and only the speaker of that node writes it: it creates it when a
// BGPPeer selects the node and deletes it when none does any more. Objects
// of nodes that no longer exist are deleted by one speaker (the first
// Ready node's). It is read-only for users: `kubectl get bgpsess -n
// ironlb-system` lists every session, `-o wide` adds why one is down.
// Like ServiceAnnouncement it has no spec and no status subresource, so
// the speaker creates or changes it in one request.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=bgpsess,categories=ironlb
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.status.peer`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.peerAddress`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.status.bfdState`
// +kubebuilder:printcolumn:name="Prefixes",type=integer,JSONPath=`.status.prefixesSent`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.lastTransitionTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastError`,priority=1
type BGPSessionState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is written by the speaker of the node.
	// +optional
	Status BGPSessionStateStatus `json:"status,omitempty"`
}

// BGPState is a BGP session's state (RFC 4271 section 8.2.2).
// +kubebuilder:validation:Enum=Idle;Connect;Active;OpenSent;OpenConfirm;Established
type BGPState string

// BGP session states.
const (
	BGPStateIdle        BGPState = "Idle"
	BGPStateConnect     BGPState = "Connect"
	BGPStateActive      BGPState = "Active"
	BGPStateOpenSent    BGPState = "OpenSent"
	BGPStateOpenConfirm BGPState = "OpenConfirm"
	BGPStateEstablished BGPState = "Established"
)

// BFDState is a BFD session's state (RFC 5880 section 4.1).
// +kubebuilder:validation:Enum=Up;Down;Init;AdminDown
type BFDState string

// BFD session states.
const (
	BFDStateUp        BFDState = "Up"
	BFDStateDown      BFDState = "Down"
	BFDStateInit      BFDState = "Init"
	BFDStateAdminDown BFDState = "AdminDown"
)

// BGPSessionStateStatus is the state of one node's session with one peer.
type BGPSessionStateStatus struct {
	// Node is the node whose speaker runs the session.
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`
	// Peer is the BGPPeer's name ("peers[0]" and so on for the peers of
	// the legacy ConfigMap).
	// +kubebuilder:validation:MaxLength=253
	Peer string `json:"peer"`
	// PeerAddress is the router's address.
	// +kubebuilder:validation:MaxLength=45
	PeerAddress string `json:"peerAddress"`
	// State is the session's state; routes are announced only when it is
	// Established.
	State BGPState `json:"state"`
	// BFDState is the state of the session's BFD session; empty without
	// BFD.
	// +optional
	BFDState BFDState `json:"bfdState,omitempty"`
	// PrefixesSent counts the prefixes announced on the session.
	// +kubebuilder:validation:Minimum=0
	PrefixesSent int32 `json:"prefixesSent"`
	// LastError says why the session is not Established: the last
	// connection error, with what to check (a TCP MD5 password mismatch
	// shows as a timeout), or why the session went down (a NOTIFICATION
	// from the router, hold timer expiry, BFD). Empty once Established.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
	// LastTransitionTime is when the session last changed state; for an
	// Established session, when it was established.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}

// BGPSessionStateList is a list of BGPSessionState.
// +kubebuilder:object:root=true
type BGPSessionStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPSessionState `json:"items"`
}
