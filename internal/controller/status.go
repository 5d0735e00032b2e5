package controller

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The controller writes a Service's status as a strategic merge patch of
// the status subresource that names only what it owns, rather than an
// Update of the whole object:
//
//   - status.loadBalancer.ingress is an atomic list: the patch replaces it.
//   - status.conditions merges by type: the patch sets or deletes the
//     IPAllocated entry and leaves other controllers' conditions alone.
//   - metadata.resourceVersion makes the API server refuse the patch with a
//     Conflict if the Service changed since the version decided on, exactly
//     as an Update would.
//
// This is what lets the controller keep a small record per Service instead
// of the object: an Update of the status subresource of a Service sends
// the whole object and the API server keeps its labels and annotations
// from the body (only the spec is taken from storage), so an Update from a
// reduced copy would erase them. TestStatusPatch checks both on the real
// API server.

// annotationStatusSharing records, on a Service that holds addresses and
// has a sharing key, the sharing constraints its status was last written
// under (request.sharingHash, in hex). The controller writes it with the
// status, in the same patch (the status subresource of a Service takes
// metadata from the patched object).
//
// Restore needs it: two Services' status can only claim one address they
// may not share if they shared it, under one sharing key, and one of them
// has since changed its key or ports so that they may not share any more.
// The one to move is the one that changed, and only this record tells
// which, as a Service has no metadata.generation to compare a condition
// with. It is left off Services without a sharing key, which cannot be in
// such a conflict, so a burst of Services that do not share writes
// nothing more.
const annotationStatusSharing = "ironlb.io/status-sharing"

// statusPatch is the patch that gives svc's status the outcome out, and
// whether anything is to change at all. now is the lastTransitionTime of a
// condition that is new or changes status; one whose status stays keeps
// its time. This is meta.SetStatusCondition's rule, which the controller
// followed when it wrote whole objects.
func statusPatch(svc *svcRecord, out outcome, now time.Time) ([]byte, bool) {
	ingressChanged, condChanged, c := statusDiff(svc, out)
	sharing := svc.req.sharingHash()
	sharingChanged := len(out.ips) > 0 && svc.statusSharing != sharing
	if !ingressChanged && !condChanged && !sharingChanged {
		return nil, false
	}
	var p servicePatch
	p.Metadata.ResourceVersion = svc.resourceVersion
	if sharingChanged {
		var v *string // null deletes it
		if sharing != 0 {
			s := strconv.FormatUint(sharing, 16)
			v = &s
		}
		p.Metadata.Annotations = map[string]*string{annotationStatusSharing: v}
	}
	if ingressChanged {
		p.Status.LoadBalancer = &lbPatch{Ingress: ingressFor(out.ips)}
	}
	if condChanged {
		if !svc.hasCond || svc.cond.status != c.Status {
			t := metav1.NewTime(now)
			c.LastTransitionTime = &t
		}
		p.Status.Conditions = []any{c}
	}
	return mustJSON(p), true
}

// statusDiff compares what svc's status shows with the outcome out: its
// addresses, and ironlb's condition, which it returns as it should be
// (with no lastTransitionTime).
func statusDiff(svc *svcRecord, out outcome) (ingressChanged, condChanged bool, c condPatch) {
	ingressChanged = !svc.ingressExact || !slices.Equal(svc.ingress, out.ips)
	c = condPatch{
		Type:               v1alpha1.ServiceConditionIPAllocated,
		Status:             metav1.ConditionTrue,
		Reason:             out.reason,
		Message:            capitalize(out.message),
		ObservedGeneration: svc.generation,
	}
	if out.reason != v1alpha1.ReasonAllocated {
		c.Status = metav1.ConditionFalse
	}
	old := svc.cond
	condChanged = !svc.hasCond || old.status != c.Status || old.reason != c.Reason ||
		old.message != c.Message || old.observedGeneration != c.ObservedGeneration
	return ingressChanged, condChanged, c
}

// clearPatch removes the addresses and ironlb's condition from svc's status.
func clearPatch(svc *svcRecord) []byte {
	var p servicePatch
	p.Metadata.ResourceVersion = svc.resourceVersion
	p.Status.LoadBalancer = &lbPatch{} // "ingress": null deletes the list
	p.Status.Conditions = []any{condDelete{Type: v1alpha1.ServiceConditionIPAllocated, Patch: "delete"}}
	return mustJSON(p)
}

// ingressFor is the status.loadBalancer.ingress that announces ips.
func ingressFor(ips []netip.Addr) []ingressPatch {
	var out []ingressPatch
	for _, a := range ips {
		out = append(out, ingressPatch{IP: a.String(), IPMode: corev1.LoadBalancerIPModeVIP})
	}
	return out
}

type servicePatch struct {
	Metadata struct {
		ResourceVersion string             `json:"resourceVersion"`
		Annotations     map[string]*string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Status struct {
		LoadBalancer *lbPatch `json:"loadBalancer,omitempty"`
		Conditions   []any    `json:"conditions,omitempty"`
	} `json:"status"`
}

type lbPatch struct {
	Ingress []ingressPatch `json:"ingress"` // nil is null: delete
}

type ingressPatch struct {
	IP     string                    `json:"ip"`
	IPMode corev1.LoadBalancerIPMode `json:"ipMode"`
}

// condPatch sets every field of the condition but lastTransitionTime,
// which it sets only when given; zero values are written, not omitted, so
// they replace what the Service had.
type condPatch struct {
	Type               string                 `json:"type"`
	Status             metav1.ConditionStatus `json:"status"`
	ObservedGeneration int64                  `json:"observedGeneration"`
	LastTransitionTime *metav1.Time           `json:"lastTransitionTime,omitempty"`
	Reason             string                 `json:"reason"`
	Message            string                 `json:"message"`
}

type condDelete struct {
	Type  string `json:"type"`
	Patch string `json:"$patch"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers; cannot fail
	}
	return b
}
