// Package v1alpha1 holds ironlb's configuration API, group ironlb.io, version
// v1alpha1: IPPool, L2Announcement, BGPPeer, BGPAnnouncement and BFDProfile.
// Every config kind is cluster-scoped, because addresses, routers and nodes
// belong to the whole cluster, not to a namespace. Two namespaced kinds are
// written by the speakers and only read by users: ServiceAnnouncement (who
// announces a Service's addresses, beside the Service) and BGPSessionState
// (each node's session with each BGP peer, in ironlb-system).
//
// Rules about a single object live here as OpenAPI and CEL validation, so the
// API server rejects a malformed object at `kubectl apply`. Rules that relate
// objects to each other (two pools overlapping, an announcement naming a
// missing pool) live in internal/config, which reports them on each object's
// Valid condition. internal/config also repeats every rule written here,
// because the legacy ConfigMap and clusters without CEL get no help from the
// API server.
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
