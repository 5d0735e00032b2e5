package faults

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// TestCheckerObserve feeds the churn's checker sequences of Service
// events, as its watch would see them, and checks what it reports.
func TestCheckerObserve(t *testing.T) {
	// svc is one event's Service: its UID and name, the sharing key in its
	// spec, the key its status was written under ("-" for no record) and
	// the address in its status ("" for none).
	svc := func(name, key, written, ip string) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), Annotations: map[string]string{}}}
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		if key != "" {
			s.Annotations[annotationSharing] = key
		}
		if written != "-" {
			s.Annotations[annotationStatusSharing] = "hash(" + written + ")"
		}
		if ip != "" {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		}
		return s
	}
	const a = "203.0.113.3"
	for _, tc := range []struct {
		name   string
		events []*corev1.Service
		dups   int
		moves  int
		err    string // a part of the first error, if any
	}{{
		name:   "two Services without a key",
		events: []*corev1.Service{svc("s1", "", "-", a), svc("s2", "", "-", a)},
		dups:   1, err: "held by s2",
	}, {
		name:   "one key",
		events: []*corev1.Service{svc("s1", "k", "k", a), svc("s2", "k", "k", a)},
	}, {
		name:   "two keys",
		events: []*corev1.Service{svc("s1", "k", "k", a), svc("s2", "j", "j", a)},
		dups:   1,
	}, {
		name:   "a key and none",
		events: []*corev1.Service{svc("s1", "", "-", a), svc("s2", "k", "k", a)},
		dups:   1, err: `s2 (key "k", written under "k") and s1 (key "", written under "")`,
	}, {
		// CI, 2026-12-07: s18 gained key a and kept its address; s11, of
		// key a, was given it too, and its write landed before s18's.
		name: "joined before the gained key's write",
		events: []*corev1.Service{
			svc("s18", "", "-", a), svc("s18", "k", "-", a),
			svc("s11", "k", "k", a),
			svc("s18", "k", "k", a),
		},
	}, {
		name: "joined after losing the key, not yet written",
		events: []*corev1.Service{
			svc("s1", "k", "k", a), svc("s2", "k", "k", a),
			svc("s2", "", "k", a),
			svc("s1", "k", "k", a), // a label, say
		},
	}, {
		name: "left after losing the key",
		events: []*corev1.Service{
			svc("s1", "k", "k", a), svc("s2", "k", "k", a),
			svc("s2", "", "k", a), svc("s2", "", "-", "203.0.113.4"),
		},
	}, {
		name: "kept after losing the key, written",
		events: []*corev1.Service{
			svc("s1", "k", "k", a), svc("s2", "k", "k", a),
			svc("s2", "", "k", a), svc("s2", "", "-", a),
		},
		dups: 1, err: `s2 (key "", written under "")`,
	}, {
		name:   "moved, asking for the same",
		events: []*corev1.Service{svc("s1", "", "-", a), svc("s1", "", "-", "203.0.113.4")},
		moves:  1, err: "s1 moved",
	}, {
		name:   "moved after its request changed",
		events: []*corev1.Service{svc("s1", "", "-", a), svc("s1", "k", "-", a), svc("s1", "k", "k", "203.0.113.4")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			k := &checker{svcs: map[types.UID]*held{}, reported: map[string]bool{}, start: time.Now()}
			for _, s := range tc.events {
				k.observe(watch.Modified, s)
			}
			errs, moves, dups, _ := k.result()
			if dups != tc.dups || moves != tc.moves {
				t.Errorf("%d duplicates and %d moves, want %d and %d: %v", dups, moves, tc.dups, tc.moves, errs)
			}
			if tc.err != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.err)) {
				t.Errorf("errors %v, want the first to hold %q", errs, tc.err)
			}
		})
	}
}
