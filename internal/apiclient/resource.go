package apiclient

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ironlbGroup is the API group of ironlb's own kinds (api/v1alpha1).
const ironlbGroup = "ironlb.io"

// clusterScoped lists the kinds this package may be asked for that live
// outside any namespace. A fixed table instead of a discovery call: the
// speaker knows every kind it uses when it is built, and a discovery round
// trip at start (and its cached REST mapper) is what this package avoids.
// A cluster-scoped kind missing here would be requested under a namespace
// and fail with NotFound, which the tests of each caller catch at once.
// The ironlb.io entries follow +kubebuilder:resource:scope=Cluster in
// api/v1alpha1.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Node"}:                                true,
	{Kind: "Namespace"}:                           true,
	{Kind: "PersistentVolume"}:                    true,
	{Group: ironlbGroup, Kind: "IPPool"}:          true,
	{Group: ironlbGroup, Kind: "IPReservation"}:   true,
	{Group: ironlbGroup, Kind: "L2Announcement"}:  true,
	{Group: ironlbGroup, Kind: "BGPPeer"}:         true,
	{Group: ironlbGroup, Kind: "BGPAnnouncement"}: true,
	{Group: ironlbGroup, Kind: "BFDProfile"}:      true,
}

// resource says where the objects of kind gvk (a single-object kind, not a
// list) are served: the lower-case plural resource name and whether it is
// namespaced.
func resource(gvk schema.GroupVersionKind) (gvr schema.GroupVersionResource, namespaced bool) {
	gvr, _ = meta.UnsafeGuessKindToResource(gvk)
	return gvr, !clusterScoped[gvk.GroupKind()]
}

// objectKind returns the kind of obj in scheme. A type registered under
// several kinds (none in the scheme the speaker uses) gives the first one.
func objectKind(scheme *runtime.Scheme, obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return gvks[0], nil
}

// listKind returns the kind of list and of one of its items: the scheme's
// convention is that the list of Kind is KindList.
func listKind(scheme *runtime.Scheme, list runtime.Object) (listGVK, itemGVK schema.GroupVersionKind, err error) {
	listGVK, err = objectKind(scheme, list)
	if err != nil {
		return listGVK, itemGVK, err
	}
	kind, ok := strings.CutSuffix(listGVK.Kind, "List")
	if !ok || kind == "" {
		return listGVK, itemGVK, fmt.Errorf("%s is not a list kind", listGVK.Kind)
	}
	return listGVK, listGVK.GroupVersion().WithKind(kind), nil
}
