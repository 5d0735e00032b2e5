package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPReservation holds addresses for one Service, named by namespace and
// name, or for the Services of one namespace that a label selector picks:
// such a Service gets the reserved address whenever it exists, also when
// it asks for nothing specific, and no other Service gets it, also while
// no entitled Service exists. It is what keeps a Service's address across
// a Helm re-install or a GitOps tool deleting and re-creating it.
//
// It is cluster-scoped, like IPPool: an address is a cluster resource, and
// holding one back from every namespace is a decision for whoever owns the
// pools, not for the team of one namespace. A namespaced reservation would
// let any namespace's users take an address away from everyone else.
//
// The addresses must lie in a pool. Two reservations of one address: the
// older one is in force, the newer is Valid=False naming the older. An
// address another Service already holds when the reservation is created
// stays with that Service (ironlb never takes an address away); the
// reservation's Bound condition says it waits for that Service to let the
// address go. Deleting a reservation moves nothing: the Service keeps its
// address as an ordinary allocation.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=lbres,categories=ironlb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.service.namespace`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.service.name`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Bound",type=string,JSONPath=`.status.conditions[?(@.type=="Bound")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPReservation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which addresses are held and for whom.
	// +required
	Spec IPReservationSpec `json:"spec"`

	// Status is written by the ironlb controller.
	// +optional
	Status IPReservationStatus `json:"status,omitempty"`
}

// IPReservationSpec names the reserved addresses and the Service(s) they
// are for. Exactly one of service and serviceSelector is set.
type IPReservationSpec struct {
	// Addresses are the reserved addresses, at most one per IP family
	// ("192.168.1.88", or "192.168.1.88" and "2001:db8::88" for a
	// dual-stack Service). Each must lie in a pool.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=45
	// +listType=atomic
	Addresses []string `json:"addresses"`

	// Service is the Service the addresses are for.
	// +optional
	Service *ReservedService `json:"service,omitempty"`

	// ServiceSelector picks, by labels, the Services of one namespace the
	// addresses are for, instead of a single Service by name: for Services
	// that share one address (with the allow-shared-ip annotation), or a
	// Service whose name a tool chooses.
	// +optional
	ServiceSelector *ReservedServiceSelector `json:"serviceSelector,omitempty"`
}

// ReservedService names one Service.
type ReservedService struct {
	// Namespace of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// Name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// ReservedServiceSelector picks Services of one namespace by label.
type ReservedServiceSelector struct {
	// Namespace of the Services.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// Selector matches the Services' labels. It must not be empty: an
	// empty selector would hold the addresses for every Service of the
	// namespace.
	// +required
	Selector metav1.LabelSelector `json:"selector"`
}

// IPReservationStatus is written by the ironlb controller.
type IPReservationStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Valid" says whether the reservation is in force and, if
	// not, which field is wrong or which older reservation holds the
	// address; "Bound" whether the Service it is for holds the addresses,
	// and if not, what it waits for.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// ConditionBound is the IPReservation condition that says whether the
// Service it is for holds the reserved addresses.
const ConditionBound = "Bound"

// Reasons for the Bound condition.
const (
	// ReasonBound: the Service(s) it is for hold every reserved address.
	ReasonBound = "Bound"
	// ReasonWaitingForService: no Service it is for holds the address;
	// nobody else gets it meanwhile.
	ReasonWaitingForService = "WaitingForService"
	// ReasonHeldByOther: a Service it is not for held the address before
	// the reservation and keeps it until it lets it go.
	ReasonHeldByOther = "HeldByOther"
	// ReasonNotInForce: the reservation is invalid and has no last good
	// version in force.
	ReasonNotInForce = "NotInForce"
)

// ReasonReserved is the IPAllocated condition reason of a Service that
// requests an address an IPReservation holds for another Service.
const ReasonReserved = "IPReserved"

// IPReservationList is a list of IPReservation.
// +kubebuilder:object:root=true
type IPReservationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPReservation `json:"items"`
}
