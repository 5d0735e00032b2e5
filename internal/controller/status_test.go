package controller

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestStatusPatch checks, on the real API server, why and how the
// controller writes Service status from a reduced record (status.go).
func TestStatusPatch(t *testing.T) {
	ctx := context.Background()
	ns := "status-patch"
	ensureNamespace(t, ns)
	cleanupServices(t, ns)

	get := func(name string) *corev1.Service {
		t.Helper()
		var svc corev1.Service
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			t.Fatal(err)
		}
		return &svc
	}
	patch := func(name string, body []byte) error {
		obj := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		return env.Client.Status().Patch(ctx, obj, client.RawPatch(types.StrategicMergePatchType, body))
	}

	// The reason for patching: an Update of services/status takes labels
	// and annotations from the body, so writing a reduced copy back would
	// erase them.
	t.Run("UpdateOfStatusWritesMetadata", func(t *testing.T) {
		svc := lbService(ns, "update")
		svc.Labels = map[string]string{"team": "a"}
		svc.Annotations = map[string]string{"note": "keep me"}
		create(t, svc)
		got := get("update")
		got.Labels, got.Annotations = nil, nil
		got.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}
		if err := env.Client.Status().Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		after := get("update")
		if len(after.Labels) != 0 || len(after.Annotations) != 0 {
			t.Skipf("this API server keeps metadata on a status update (labels %v, annotations %v); patching is then merely cheaper", after.Labels, after.Annotations)
		}
	})

	t.Run("PatchTouchesOnlyOurs", func(t *testing.T) {
		svc := lbService(ns, "patch")
		svc.Labels = map[string]string{"team": "a"}
		svc.Annotations = map[string]string{"note": "keep me", "ironlb.io/address-pool": "p"}
		create(t, svc)
		// Someone else's condition, which the patch must leave alone.
		other := get("patch")
		meta.SetStatusCondition(&other.Status.Conditions, metav1.Condition{Type: "example.com/Other", Status: metav1.ConditionTrue, Reason: "Fine", Message: "not ours"})
		if err := env.Client.Status().Update(ctx, other); err != nil {
			t.Fatal(err)
		}
		before := get("patch")

		out := outcome{ips: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, reason: v1alpha1.ReasonAllocated, message: "allocated 192.0.2.7 from pool p"}
		rec := newRecord(before)
		body, changed := statusPatch(rec, out, time.Now())
		if !changed {
			t.Fatal("statusPatch: nothing to change on a Service with no address")
		}
		if err := patch("patch", body); err != nil {
			t.Fatalf("patch %s: %v", body, err)
		}
		after := get("patch")
		if diff := cmp.Diff(before.Labels, after.Labels); diff != "" {
			t.Errorf("labels changed (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(before.Annotations, after.Annotations); diff != "" {
			t.Errorf("annotations changed (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(before.Spec, after.Spec); diff != "" {
			t.Errorf("spec changed (-before +after):\n%s", diff)
		}
		vip := corev1.LoadBalancerIPModeVIP
		if diff := cmp.Diff([]corev1.LoadBalancerIngress{{IP: "192.0.2.7", IPMode: &vip}}, after.Status.LoadBalancer.Ingress); diff != "" {
			t.Errorf("ingress (-want +got):\n%s", diff)
		}
		if c := meta.FindStatusCondition(after.Status.Conditions, "example.com/Other"); c == nil || c.Message != "not ours" {
			t.Errorf("other condition: got %+v, want it untouched", c)
		}
		c := meta.FindStatusCondition(after.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAllocated || c.Message != "Allocated 192.0.2.7 from pool p" {
			t.Fatalf("IPAllocated condition: got %+v", c)
		}

		// The record of the written Service needs no write for the same outcome.
		if body, changed := statusPatch(newRecord(after), out, time.Now()); changed {
			t.Errorf("statusPatch after writing: wants to write %s again", body)
		}

		// A new message with the same status keeps lastTransitionTime.
		out.message = "allocated 192.0.2.7 from pool p, again"
		body, _ = statusPatch(newRecord(after), out, time.Now().Add(time.Hour))
		if err := patch("patch", body); err != nil {
			t.Fatal(err)
		}
		again := get("patch")
		c2 := meta.FindStatusCondition(again.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
		if c2.Message != "Allocated 192.0.2.7 from pool p, again" || !c2.LastTransitionTime.Equal(&c.LastTransitionTime) {
			t.Errorf("condition after a message change: got %+v, want the new message and lastTransitionTime %v", c2, c.LastTransitionTime)
		}

		// A patch decided on an older version is refused, as an Update would be.
		stale := statusPatchOrFail(t, newRecord(after), outcome{reason: v1alpha1.ReasonPoolExhausted, message: "no addresses left"})
		if err := patch("patch", stale); !apierrors.IsConflict(err) {
			t.Errorf("patch from a stale version: got %v, want a conflict", err)
		}

		// Clearing removes the addresses and our condition only.
		if err := patch("patch", clearPatch(newRecord(again))); err != nil {
			t.Fatal(err)
		}
		cleared := get("patch")
		if len(cleared.Status.LoadBalancer.Ingress) != 0 || meta.FindStatusCondition(cleared.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) != nil {
			t.Errorf("after clearing: status %+v, want no ingress and no IPAllocated condition", cleared.Status)
		}
		if meta.FindStatusCondition(cleared.Status.Conditions, "example.com/Other") == nil {
			t.Error("clearing removed the other condition")
		}
		if diff := cmp.Diff(before.Annotations, cleared.Annotations); diff != "" {
			t.Errorf("annotations changed (-before +after):\n%s", diff)
		}
	})
}

func statusPatchOrFail(t *testing.T, rec *svcRecord, out outcome) []byte {
	t.Helper()
	body, changed := statusPatch(rec, out, time.Now())
	if !changed {
		t.Fatalf("statusPatch(%+v): nothing to change", out)
	}
	return body
}

// TestRecordIngressExact: a record says "nothing to write" only when the
// Service's ingress is exactly what the controller would write.
func TestRecordIngressExact(t *testing.T) {
	vip, proxy := corev1.LoadBalancerIPModeVIP, corev1.LoadBalancerIPModeProxy
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	for _, tc := range []struct {
		name    string
		ingress []corev1.LoadBalancerIngress
		exact   bool
	}{
		{"ours", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &vip}, {IP: "2001:db8::1", IPMode: &vip}}, true},
		// Before 1.30 the API server drops ipMode; from 1.30 it defaults it.
		{"no ipMode", []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}, {IP: "2001:db8::1", IPMode: &vip}}, true},
		{"proxy mode", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &proxy}, {IP: "2001:db8::1", IPMode: &vip}}, false},
		{"hostname", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", Hostname: "a.example", IPMode: &vip}, {IP: "2001:db8::1", IPMode: &vip}}, false},
		{"ports", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &vip, Ports: []corev1.PortStatus{{Port: 80}}}, {IP: "2001:db8::1", IPMode: &vip}}, false},
		{"not canonical", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &vip}, {IP: "2001:DB8::1", IPMode: &vip}}, false},
		{"mapped", []corev1.LoadBalancerIngress{{IP: "::ffff:192.0.2.1", IPMode: &vip}, {IP: "2001:db8::1", IPMode: &vip}}, false},
		{"unparsable extra", []corev1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: &vip}, {IP: "2001:db8::1", IPMode: &vip}, {IP: "x", IPMode: &vip}}, false},
		{"order", []corev1.LoadBalancerIngress{{IP: "2001:db8::1", IPMode: &vip}, {IP: "192.0.2.1", IPMode: &vip}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{Status: corev1.ServiceStatus{
				LoadBalancer: corev1.LoadBalancerStatus{Ingress: tc.ingress},
				Conditions: []metav1.Condition{{Type: v1alpha1.ServiceConditionIPAllocated, Status: metav1.ConditionTrue,
					Reason: v1alpha1.ReasonAllocated, Message: "M"}},
			}}
			_, changed := statusPatch(newRecord(svc), outcome{ips: want, reason: v1alpha1.ReasonAllocated, message: "M"}, time.Now())
			if changed == tc.exact {
				t.Errorf("statusPatch changed = %v, want %v", changed, !tc.exact)
			}
		})
	}
}
