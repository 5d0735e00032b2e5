package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// This file is what IPReservations mean to the controller: the request a
// Service they are for is decided on (reservedFor), what a Service refused
// a reserved address reads (reservedFailure), and each reservation's Bound
// condition (reservationStates, writeReservationStatus). The rules about
// the reservations themselves (valid, in a pool, one per address) are
// config.Build's; the allocator keeps reserved addresses from everyone
// else (ipam.SetReservations).

// readReservations lists the IPReservations for config.Input. They are
// not in kube.ReadInput, which the speakers share: a speaker has no use
// for them, and no RBAC to read them.
func readReservations(ctx context.Context, c client.Reader) ([]v1alpha1.IPReservation, error) {
	var list v1alpha1.IPReservationList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list IP reservations: %w", err)
	}
	return list.Items, nil
}

// reservationsVersion extends kube.InputVersion to the reservations: equal
// values mean nothing Build reads of them has changed.
func reservationsVersion(rs []v1alpha1.IPReservation) string {
	var b strings.Builder
	for i := range rs {
		b.WriteString("|IPReservation/" + rs[i].Name + "@" + strconv.FormatInt(rs[i].Generation, 10))
		if rs[i].DeletionTimestamp != nil {
			b.WriteString("-")
		}
	}
	return b.String()
}

// reservedReq is the request a Service is decided on, given the
// reservations in force.
//
// A Service that asks for no address gets its reserved ones: req is its
// own request with the reserved addresses as requested ones (fromRes),
// one per family of the Service, as if it had written them in the
// loadBalancerIPs annotation. A Service that requests addresses itself
// gets what it requests: its spec is the more specific word, and the
// outcome says which reservation goes unused. Either way the Service may
// take the addresses of every reservation it is for (req.entitled), and
// nobody else may.
//
// A Service that held other addresses before a reservation for it
// applied keeps them while its own request admits them: ironlb moves no
// Service for a config change. The outcome says how to move it.
type reservedReq struct {
	req, own request
	fromRes  bool
	// by[i] is the reservation of req.ips[i] when fromRes; for a Service
	// requesting addresses itself, the reservations it leaves unused.
	by []*config.Reservation
	// unusedFamily: the reservations hold no address of the Service's
	// families.
	unusedFamily bool
}

// reservedFor works out si's reservedReq from its own request. Callers
// hold l.mu.
func (l *ledger) reservedFor(si serviceInfo, own request) reservedReq {
	rr := reservedReq{req: own, own: own}
	ns, name, _ := cutKey(si.key)
	rs := l.cfg.ReservationsFor(ns, name, si.labels)
	if len(rs) == 0 {
		return rr
	}
	rr.req.entitled = make([]string, len(rs))
	for i, r := range rs {
		rr.req.entitled[i] = r.Name
	}
	// The first reserved address of each of the Service's families.
	var ips []netip.Addr
	var by []*config.Reservation
	for _, f := range own.families {
		found := false
		for _, r := range rs {
			for _, a := range r.Addrs {
				if !found && ipam.FamilyOf(a) == f {
					ips, by, found = append(ips, a), append(by, r), true
				}
			}
		}
	}
	switch {
	case len(own.ips) > 0:
		for i, a := range ips {
			if !slices.Contains(own.ips, a) {
				rr.by = append(rr.by, by[i])
			}
		}
	case len(ips) == 0:
		rr.by, rr.unusedFamily = rs, true
	default:
		rr.req.ips, rr.by, rr.fromRes = ips, by, true
		if !own.requireAll {
			// PreferDualStack: the reserved families, as for requested
			// addresses (parseRequest).
			rr.req.families = rr.req.families[:0:0]
			for _, a := range ips {
				rr.req.families = append(rr.req.families, ipam.FamilyOf(a))
			}
		}
		rr.req.requireAll = true
	}
	return rr
}

// explain adds to out what the reservations did to the Service, which
// holds held after the decision.
func (rr reservedReq) explain(out outcome, held []netip.Addr) outcome {
	if len(rr.by) == 0 {
		return out
	}
	switch {
	case rr.unusedFamily:
		out.message += fmt.Sprintf("; %s hold no address of the Service's IP families (%v) and have no effect on it",
			reservationList(rr.by), rr.own.families)
	case !rr.fromRes:
		var addrs []string
		for _, r := range rr.by {
			addrs = append(addrs, fmt.Sprintf("%s (%s)", joinAddrs(r.Addrs), r.Source))
		}
		out.message += fmt.Sprintf("; the Service requests %s itself, so the addresses reserved for it stay unused and kept from every other Service: %s; to use them, remove the request, or change the reservation",
			joinAddrs(rr.own.ips), strings.Join(addrs, ", "))
		if out.reason == v1alpha1.ReasonAllocated {
			out.warning = eventReservationUnused
		}
	case out.reason == v1alpha1.ReasonAllocated:
		var missing []string
		for i, a := range rr.req.ips {
			if !slices.Contains(held, a) {
				missing = append(missing, fmt.Sprintf("%s (%s)", a, rr.by[i].Source))
			}
		}
		if len(missing) > 0 {
			out.message += fmt.Sprintf("; reserved for this Service but not given to it: %s, since it keeps what it held before the reservation applied (ironlb moves no Service for a config change); to move it, request the reserved address in %s, or delete and re-create the Service",
				strings.Join(missing, ", "), v1alpha1.AnnotationLoadBalancerIPs)
			out.warning = eventReservationUnused
		} else {
			out.message += fmt.Sprintf(" (reserved by %s)", reservationList(rr.by))
		}
	default:
		out.message = fmt.Sprintf("%s reserves %s for this Service, which waits for it: %s", reservationList(rr.by), joinAddrs(rr.req.ips), out.message)
		if out.reason == v1alpha1.ReasonIPInUse {
			out.message += "; the holder had it before the reservation and keeps it until it lets it go (ironlb takes no address away); this Service gets it then"
		}
	}
	return out
}

// eventReservationUnused: a Service an IPReservation is for holds other
// addresses than the reserved ones.
const eventReservationUnused = "ReservationUnused"

// reservationList names reservations: "IPReservation/a and IPReservation/b".
func reservationList(rs []*config.Reservation) string {
	var names []string
	for _, r := range rs {
		if s := r.Source.String(); !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	return strings.Join(names, " and ")
}

// reservedTo reports whether a is reserved by an IPReservation that is
// for the Service key (as of its decide in progress or its last one):
// such an address is the Service's wherever its pool's serviceAllocation
// points. Callers hold l.mu.
func (l *ledger) reservedTo(key string, a netip.Addr) bool {
	name, ok := l.alloc.Reservation(a)
	return ok && slices.Contains(l.entitled[key], name)
}

// reservedFailure is the outcome of a Service refused an address an
// IPReservation holds for another. Callers hold l.mu.
func (l *ledger) reservedFailure(e *ipam.ReservedError) outcome {
	whom, src := "another Service", "IPReservation/"+e.Reservation
	if r := l.cfg.ReservationOf(e.Addr); r != nil {
		whom, src = r.Whom(), r.Source.String()
	}
	msg := fmt.Sprintf("%s is reserved for %s by %s; request another address", e.Addr, whom, src)
	if p, ok := l.alloc.PoolOf(e.Addr); ok {
		msg += l.freeHint(p, ipam.FamilyOf(e.Addr))
	}
	msg += fmt.Sprintf(", or, if this Service is meant to have it, change the reservation's spec.service to name it (or delete %s)", src)
	return outcome{reason: v1alpha1.ReasonReserved, message: msg}
}

// reservationStates returns the Bound condition of each reservation in
// force, by name, from who holds its addresses. Callers need not hold
// l.mu.
func (l *ledger) reservationStates() map[string]metav1.Condition {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]metav1.Condition{}
	for _, r := range l.cfg.Reservations {
		out[r.Name] = l.boundCondition(r)
	}
	return out
}

// boundCondition says whether the Services r is for hold its addresses.
// Callers hold l.mu.
func (l *ledger) boundCondition(r *config.Reservation) metav1.Condition {
	isFor := func(key string) bool {
		return key == r.Service.String() || slices.Contains(l.entitled[key], r.Name)
	}
	var mine, others, idle []string
	for _, a := range r.Addrs {
		hs := l.alloc.Holders(a)
		if len(hs) == 0 {
			idle = append(idle, a.String())
		}
		for _, h := range hs {
			if isFor(h) {
				mine = append(mine, fmt.Sprintf("%s by %s", a, h))
			} else {
				others = append(others, fmt.Sprintf("%s by %s", a, h))
			}
		}
	}
	c := metav1.Condition{Type: v1alpha1.ConditionBound}
	switch {
	case len(others) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonHeldByOther
		c.Message = fmt.Sprintf("Held %s, which had it before this reservation and keeps it until it lets it go (ironlb takes no address away); then it goes to %s, and to no one else meanwhile",
			strings.Join(others, ", "), r.Whom())
	case len(idle) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonWaitingForService
		c.Message = fmt.Sprintf("%s is kept for %s, which does not hold it", strings.Join(idle, ", "), r.Whom())
		if r.Service.Name != "" {
			if held := l.alloc.IPs(r.Service.String()); len(held) > 0 {
				c.Message += fmt.Sprintf(" (it holds %s, which it had before the reservation; see its %s condition)", joinAddrs(held), v1alpha1.ServiceConditionIPAllocated)
			} else {
				c.Message += " (it does not exist, or is not of type LoadBalancer)"
			}
		}
		c.Message += "; no other Service gets it"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonBound
		c.Message = "Held " + strings.Join(mine, ", ")
	}
	return c
}

// writeReservationStatus writes each IPReservation's Bound condition: from
// states (reservationStates) for those in force, NotInForce for the
// others.
func (r *configReconciler) writeReservationStatus(ctx context.Context, rs []v1alpha1.IPReservation, states map[string]metav1.Condition) error {
	for i := range rs {
		o := &rs[i]
		c, ok := states[o.Name]
		if !ok {
			c = metav1.Condition{Type: v1alpha1.ConditionBound, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotInForce,
				Message: "The reservation is not in force: see its Valid condition"}
		}
		c.ObservedGeneration = o.Generation
		var oldReason string
		if old := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionBound); old != nil {
			oldReason = old.Reason
		}
		if !meta.SetStatusCondition(&o.Status.Conditions, c) {
			continue
		}
		if c.Reason == v1alpha1.ReasonHeldByOther && oldReason != c.Reason {
			r.recorder.Eventf(o, nil, corev1.EventTypeWarning, c.Reason, "Reserve", "%s", c.Message)
		}
		if err := r.client.Status().Update(ctx, o); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("write status of IPReservation/%s: %w", o.Name, err)
		}
	}
	return nil
}
