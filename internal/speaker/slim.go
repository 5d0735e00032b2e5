package speaker

import (
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// The speaker watches every Service, EndpointSlice and Node of the
// cluster, but reads a handful of fields of each. The transforms below
// keep only those in the cache: at 10,000 Services with an EndpointSlice
// each, the full objects were about 30 MB of a speaker's heap, the part
// that grows with the cluster (test/bench/bgpscale). Everything a speaker
// reads from these objects must be kept here; the speaker never writes
// them, so nothing is lost by dropping the rest.

// slimMeta keeps what identifies an object: enough for the informer
// (resourceVersion), for events about it (UID) and for ServiceAnnouncement
// owner references.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID,
		ResourceVersion: m.ResourceVersion, DeletionTimestamp: m.DeletionTimestamp,
	}
}

// slimService keeps what serves and ingressIPs read, and
// externalTrafficPolicy.
func slimService(svc *corev1.Service) *corev1.Service {
	out := &corev1.Service{
		TypeMeta:   svc.TypeMeta,
		ObjectMeta: slimMeta(svc.ObjectMeta),
		Spec: corev1.ServiceSpec{
			Type:                  svc.Spec.Type,
			LoadBalancerClass:     svc.Spec.LoadBalancerClass,
			ExternalTrafficPolicy: svc.Spec.ExternalTrafficPolicy,
		},
	}
	if n := len(svc.Status.LoadBalancer.Ingress); n > 0 {
		out.Status.LoadBalancer.Ingress = make([]corev1.LoadBalancerIngress, n)
		for i, in := range svc.Status.LoadBalancer.Ingress {
			out.Status.LoadBalancer.Ingress[i] = corev1.LoadBalancerIngress{IP: in.IP}
		}
	}
	return out
}

// slimEndpointSlice keeps the Service the slice belongs to and the nodes
// holding a ready endpoint, once each: what endpointNodes reads. A slice
// of a hundred endpoints on three nodes keeps three.
func slimEndpointSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{
		TypeMeta:    es.TypeMeta,
		ObjectMeta:  slimMeta(es.ObjectMeta),
		AddressType: es.AddressType,
	}
	if svc, ok := es.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	for _, ep := range es.Endpoints {
		if ep.NodeName == nil || !endpointReady(ep) {
			continue
		}
		if slices.ContainsFunc(out.Endpoints, func(e discoveryv1.Endpoint) bool { return *e.NodeName == *ep.NodeName }) {
			continue
		}
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{NodeName: ep.NodeName})
	}
	// In node order, so that pods moving within the slice change nothing
	// (see slimChanged).
	slices.SortFunc(out.Endpoints, func(a, b discoveryv1.Endpoint) int { return strings.Compare(*a.NodeName, *b.NodeName) })
	return out
}

// slimNode keeps the labels (selectors, the exclusion label), the Ready
// condition and the addresses (the node's InternalIP for membership and
// BGP). Nodes are few, but each carries its image list, often tens of
// kilobytes.
func slimNode(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: slimMeta(n.ObjectMeta),
	}
	out.Labels = n.Labels
	out.Status.Addresses = n.Status.Addresses
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out
}

// slimTransform is the cache transform for the speaker's watched kinds:
// anything else (such as a tombstone) passes unchanged.
func slimTransform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return slimService(o), nil
	case *discoveryv1.EndpointSlice:
		return slimEndpointSlice(o), nil
	case *corev1.Node:
		return slimNode(o), nil
	}
	return obj, nil
}

var _ toolscache.TransformFunc = slimTransform

// slimChanged reports whether an update from old to new changed what the
// speaker reads. Most updates of the slimmed kinds do not: the controller's
// conditions on a Service, a pod's address or a not-ready pod on a node
// that has a ready one in an EndpointSlice, a kubelet's status report on
// a Node. Each would otherwise cost a sync of every Service. Other kinds
// always count as changed.
func slimChanged(old, new any) bool {
	switch n := new.(type) {
	case *corev1.Service:
		o, ok := old.(*corev1.Service)
		return !ok || !sameMeta(o.ObjectMeta, n.ObjectMeta) ||
			!reflect.DeepEqual(o.Spec, n.Spec) || !reflect.DeepEqual(o.Status, n.Status)
	case *discoveryv1.EndpointSlice:
		o, ok := old.(*discoveryv1.EndpointSlice)
		return !ok || !sameMeta(o.ObjectMeta, n.ObjectMeta) ||
			!reflect.DeepEqual(o.Labels, n.Labels) || !reflect.DeepEqual(o.Endpoints, n.Endpoints)
	case *corev1.Node:
		o, ok := old.(*corev1.Node)
		return !ok || !sameMeta(o.ObjectMeta, n.ObjectMeta) ||
			!reflect.DeepEqual(o.Labels, n.Labels) || !reflect.DeepEqual(o.Status, n.Status)
	}
	return true
}

// sameMeta compares what slimMeta keeps, except the resourceVersion, which
// every update changes.
func sameMeta(a, b metav1.ObjectMeta) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.UID == b.UID &&
		a.DeletionTimestamp.Equal(b.DeletionTimestamp)
}
