package speaker

import (
	"reflect"

	"github.com/ironlb/ironlb/internal/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// The speaker's cache holds every Node of the cluster, but the speaker
// reads a handful of fields of each. The transform below keeps only
// those: everything a speaker reads from a Node must be kept here; the
// speaker never writes Nodes, so nothing is lost by dropping the rest.
// (Services and EndpointSlices, which grow with the cluster, are not
// cached at all: see records.go.)

// slimMeta keeps what identifies an object: enough for the informer
// (resourceVersion) and for events about it (UID).
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID,
		ResourceVersion: m.ResourceVersion, DeletionTimestamp: m.DeletionTimestamp,
	}
}

// slimNode keeps the labels (selectors, the exclusion label), the Ready
// condition, whether it is cordoned (kube.Draining) and the addresses (the node's InternalIP for membership and
// BGP). Nodes are few, but each carries its image list, often tens of
// kilobytes.
func slimNode(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: slimMeta(n.ObjectMeta),
	}
	out.Labels = n.Labels
	out.Spec.Unschedulable = n.Spec.Unschedulable
	out.Status.Addresses = n.Status.Addresses
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out
}

// slimTransform is the cache transform for Nodes: anything else (such as
// a tombstone) passes unchanged.
func slimTransform(obj any) (any, error) {
	if n, ok := obj.(*corev1.Node); ok {
		return slimNode(n), nil
	}
	return obj, nil
}

var _ toolscache.TransformFunc = slimTransform

// slimChanged reports whether an update from old to new changed what the
// speaker reads. Most updates of a Node do not: a kubelet's status report
// every few seconds would otherwise cost a sync of every Service. Other
// kinds always count as changed. (For Services and EndpointSlices, the
// records' equal methods play this part.)
func slimChanged(old, new any) bool {
	n, ok := new.(*corev1.Node)
	if !ok {
		return true
	}
	o, ok := old.(*corev1.Node)
	return !ok || !sameMeta(o.ObjectMeta, n.ObjectMeta) ||
		!reflect.DeepEqual(o.Labels, n.Labels) || !reflect.DeepEqual(o.Status, n.Status) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable
}

// sameMeta compares what slimMeta keeps, except the resourceVersion, which
// every update changes.
func sameMeta(a, b metav1.ObjectMeta) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.UID == b.UID &&
		a.DeletionTimestamp.Equal(b.DeletionTimestamp)
}

// nodeEligibilityChanged reports whether old and new are a Node whose
// readiness, labels (exclusion, maintenance, announcements' node
// selectors) or cordon changed: what moves addresses by the API alone.
func nodeEligibilityChanged(old, new any) bool {
	n, ok := new.(*corev1.Node)
	if !ok {
		return false
	}
	o, ok := old.(*corev1.Node)
	return !ok || kube.NodeReady(o) != kube.NodeReady(n) || !reflect.DeepEqual(o.Labels, n.Labels) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable
}
