// Package v1alpha1 holds ironlb's configuration API, group ironlb.io, version
// v1alpha1: IPPool, IPReservation, L2Announcement, BGPPeer, BGPAnnouncement
// and BFDProfile.
// Every config kind is cluster-scoped, because addresses, routers and nodes
// belong to the whole cluster, not to a namespace. Two namespaced kinds are
// written by the speakers and only read by users: ServiceAnnouncement (who
// announces a Service's addresses, beside the Service) and BGPSessionState
// (each node's session with each BGP peer, in ironlb-system).
//
// Rules about a single object that OpenAPI can state (required fields,
// bounds, lengths, enums, patterns) live here as schema validation, which
// every API server since Kubernetes 1.16 enforces at `kubectl apply`. Rules
// OpenAPI cannot state (address syntax, BGP timers, the families of two
// fields) are not written as CEL (x-kubernetes-validations): an API server
// older than 1.25 does not run CEL, kubectl refuses the unknown field when
// it validates against such a server, and 1.25 to 1.30 reject a CRD whose
// rules call CEL's IP and CIDR library. internal/config checks them, and
// everything that relates objects to each other (two pools overlapping, an
// announcement naming a missing pool), and reports them on each object's
// Valid condition and in an event, the same on every Kubernetes version and
// for the legacy ConfigMap.
//
// This package imports only k8s.io/api and k8s.io/apimachinery, so that the
// pure packages above it (internal/config) stay free of any Kubernetes client.
//
// +kubebuilder:object:generate=true
// +groupName=ironlb.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "ironlb.io", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	// It is apimachinery's builder rather than controller-runtime's
	// scheme.Builder (same use: call AddToScheme) so that importing the API
	// types never pulls in controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds every kind in this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&IPPool{}, &IPPoolList{},
		&IPReservation{}, &IPReservationList{},
		&L2Announcement{}, &L2AnnouncementList{},
		&BGPPeer{}, &BGPPeerList{},
		&BGPAnnouncement{}, &BGPAnnouncementList{},
		&BFDProfile{}, &BFDProfileList{},
		&ServiceAnnouncement{}, &ServiceAnnouncementList{},
		&BGPSessionState{}, &BGPSessionStateList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
