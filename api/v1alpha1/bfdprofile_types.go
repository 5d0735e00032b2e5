package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BFDProfile is a named set of Bidirectional Forwarding Detection settings
// (RFC 5880) that BGPPeers refer to by name. BFD notices a dead link or
// router within milliseconds, so the session, and the routes through it,
// fail over long before the BGP hold time runs out.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bfdprofile,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Receive",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Transmit",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the BFD timers and modes.
	// +optional
	Spec BFDProfileSpec `json:"spec,omitempty"`

	// Status is written by the ironlb controller.
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BFDProfileSpec holds BFD session settings. Unset fields take the defaults
// shown, which are those of common routers (FRR, BIRD).
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval, in milliseconds, at which
	// this end wants to receive control packets. Default 300.
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	ReceiveInterval *uint32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the minimum interval, in milliseconds, at which
	// this end sends control packets. Default 300.
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is how many control packets may be missed before the
	// session is declared down: the detection time is this times the
	// negotiated interval. Default 3.
	// +optional
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`

	// EchoInterval is the minimum interval, in milliseconds, between echo
	// packets when echoMode is on. Default 50.
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	EchoInterval *uint32 `json:"echoInterval,omitempty"`

	// EchoMode turns on echo packets: the peer loops them back, testing the
	// forwarding path rather than the peer's control plane.
	// +optional
	EchoMode bool `json:"echoMode,omitempty"`

	// PassiveMode makes this end wait for the peer to start the session
	// instead of sending control packets first.
	// +optional
	PassiveMode bool `json:"passiveMode,omitempty"`

	// MinimumTTL is the lowest TTL accepted on incoming control packets,
	// for multi-hop sessions; 254 means at most one hop away. Default 254.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	MinimumTTL *uint32 `json:"minimumTTL,omitempty"`
}

// BFDProfileList is a list of BFDProfile.
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}
