package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// TestReservationDecisions: what the ledger decides for the Service an
// IPReservation is for and for the others, step by step, and what the
// reservation's Bound condition says meanwhile. Pool default is
// 198.51.100.0/29; IPReservation/web-ip holds 198.51.100.0 for ns/web.
func TestReservationDecisions(t *testing.T) {
	withRes := config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.0/29"}}}},
		Reservations: []v1alpha1.IPReservation{{ObjectMeta: metav1.ObjectMeta{Name: "web-ip"}, Spec: v1alpha1.IPReservationSpec{
			Addresses: []string{"198.51.100.0"}, Service: &v1alpha1.ReservedService{Namespace: "ns", Name: "web"}}}},
	}
	without := config.Input{Pools: withRes.Pools}
	// The pool serves another namespace only: the reservation still gives
	// ns/web its address, plainly.
	restricted := withRes
	restricted.Pools = []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.IPPoolSpec{
		Addresses: []string{"198.51.100.0/29"}, ServiceAllocation: &v1alpha1.ServiceAllocation{Namespaces: []string{"elsewhere"}}}}}
	auto := request{families: v4, requireAll: true}
	parse := func(mutate func(*corev1.Service)) request {
		s := lbService("ns", "x")
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		mutate(s)
		req, err := parseRequest(s)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	type step struct {
		cfg *config.Input // set this config first, if not nil
		svc string        // then decide ns/<svc> (or release it, with release)
		req request
		rel bool
		// The outcome: reason, addresses, what the message contains.
		reason, ips, msg, warning string
		// Then IPReservation/web-ip's Bound condition reason, if set.
		bound string
	}
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "automatic assignment skips the reserved address; the Service it is for gets it unasked",
		steps: []step{
			{cfg: &withRes, svc: "other", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.1", bound: v1alpha1.ReasonWaitingForService},
			{svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0", msg: "(reserved by IPReservation/web-ip)", bound: v1alpha1.ReasonBound},
		},
	}, {
		name: "a Service deleted and re-created gets it back, whoever asked in between",
		steps: []step{
			{cfg: &withRes, svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
			{svc: "web", rel: true, bound: v1alpha1.ReasonWaitingForService},
			{svc: "other", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.1"},
			{svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0", bound: v1alpha1.ReasonBound},
		},
	}, {
		name: "an explicit request for it is refused, naming the reservation and whom it is for",
		steps: []step{
			{cfg: &withRes, svc: "other", req: parse(requestIP("198.51.100.0")), reason: v1alpha1.ReasonReserved,
				msg: "198.51.100.0 is reserved for Service ns/web by IPReservation/web-ip; request another address; free in pool default: 198.51.100.1-198.51.100.7, or, if this Service is meant to have it, change the reservation's spec.service to name it (or delete IPReservation/web-ip)"},
			{svc: "other", req: parse(ipsAnn("198.51.100.0")), reason: v1alpha1.ReasonReserved, msg: "by IPReservation/web-ip"},
		},
	}, {
		name: "a holder from before the reservation keeps it; the Service it is for waits, then gets it",
		steps: []step{
			{cfg: &without, svc: "other", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
			{cfg: &withRes, svc: "other", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0", bound: v1alpha1.ReasonHeldByOther},
			{svc: "web", req: auto, reason: v1alpha1.ReasonIPInUse,
				msg: "IPReservation/web-ip reserves 198.51.100.0 for this Service, which waits for it: 198.51.100.0 is already used by ns/other (no sharing key)", bound: v1alpha1.ReasonHeldByOther},
			{svc: "other", rel: true},
			{svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0", bound: v1alpha1.ReasonBound},
		},
	}, {
		name: "the Service it is for keeps what it held before; the message says how to move it",
		steps: []step{
			{cfg: &without, svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
			{svc: "web", rel: true},
			{svc: "early", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
			{svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.1"},
			{svc: "early", rel: true},
			{cfg: &withRes, svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.1", warning: eventReservationUnused,
				msg: "reserved for this Service but not given to it: 198.51.100.0 (IPReservation/web-ip)", bound: v1alpha1.ReasonWaitingForService},
		},
	}, {
		name: "its own explicit request wins, and says the reservation goes unused",
		steps: []step{
			{cfg: &withRes, svc: "web", req: parse(requestIP("198.51.100.4")), reason: v1alpha1.ReasonAllocated, ips: "198.51.100.4", warning: eventReservationUnused,
				msg: "the Service requests 198.51.100.4 itself, so the addresses reserved for it stay unused", bound: v1alpha1.ReasonWaitingForService},
		},
	}, {
		name: "a reservation gives its address also from a pool that does not serve the Service",
		steps: []step{
			{cfg: &restricted, svc: "other", req: auto, reason: v1alpha1.ReasonNoPool},
			{svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0", msg: "assigned 198.51.100.0 from pool default (reserved by IPReservation/web-ip)"},
		},
	}, {
		name: "PreferDualStack takes the reserved family only, as for a requested address",
		steps: []step{
			{cfg: &withRes, svc: "web", req: parse(preferDual), reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
		},
	}, {
		name: "the reservation deleted, the Service keeps its address",
		steps: []step{
			{cfg: &withRes, svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
			{cfg: &without, svc: "web", req: auto, reason: v1alpha1.ReasonAllocated, ips: "198.51.100.0"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			for i, s := range tt.steps {
				if s.cfg != nil {
					if problems := l.setConfig(*s.cfg); len(problems) > 0 {
						t.Fatalf("step %d: config problems: %v", i, problems)
					}
				}
				if s.rel {
					l.release("ns/" + s.svc)
				} else {
					out := decideIn(l, s.svc, s.req, nil)
					if out.reason != s.reason || joinAddrs(out.ips) != s.ips || !strings.Contains(out.message, s.msg) || out.warning != s.warning {
						t.Fatalf("step %d, ns/%s: got %s %q (warning %q): %s\nwant %s %q (warning %q), message containing %q",
							i, s.svc, out.reason, joinAddrs(out.ips), out.warning, out.message, s.reason, s.ips, s.warning, s.msg)
					}
				}
				if s.bound != "" {
					if c := l.reservationStates()["web-ip"]; c.Reason != s.bound {
						t.Errorf("step %d: Bound = %s (%s), want %s", i, c.Reason, c.Message, s.bound)
					}
				}
			}
		})
	}
}
