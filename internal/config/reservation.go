package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// Reservation is an IPReservation: addresses held for one Service, or for
// the Services of one namespace a selector matches.
type Reservation struct {
	// Name is the IPReservation's name.
	Name   string
	Source ObjectRef
	// Addrs are the reserved addresses, at most one per family, sorted
	// (IPv4 first). Each lies in a pool of the Config; no other
	// reservation of the Config holds one of them.
	Addrs []netip.Addr
	// Service is the Service the addresses are for; zero when Selector is
	// set instead.
	Service types.NamespacedName
	// Namespace and Selector pick the Services the addresses are for when
	// Service is zero. Selector is never empty.
	Namespace string
	Selector  labels.Selector
}

// For reports whether the Service ns/name with labels lbls is one the
// reservation is for.
func (r *Reservation) For(ns, name string, lbls map[string]string) bool {
	if r.Service.Name != "" {
		return r.Service.Namespace == ns && r.Service.Name == name
	}
	return r.Namespace == ns && r.Selector.Matches(labels.Set(lbls))
}

// Whom describes, for messages, whom the reservation is for: "Service
// default/web" or "the Services of default matching app=web".
func (r *Reservation) Whom() string {
	if r.Service.Name != "" {
		return "Service " + r.Service.String()
	}
	return fmt.Sprintf("the Services of %s matching %s", r.Namespace, r.Selector)
}

// ReservationsFor returns the reservations the Service ns/name with labels
// lbls is entitled to: those naming it first, then those selecting it,
// each group by name.
func (c *Config) ReservationsFor(ns, name string, lbls map[string]string) []*Reservation {
	var out []*Reservation
	for _, r := range c.Reservations {
		if r.For(ns, name, lbls) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b *Reservation) int {
		ab, bb := a.Service.Name == "", b.Service.Name == ""
		switch {
		case ab == bb:
			return strings.Compare(a.Name, b.Name)
		case bb:
			return -1
		}
		return 1
	})
	return out
}

// ReservationOf returns the reservation holding a, or nil.
func (c *Config) ReservationOf(a netip.Addr) *Reservation {
	for _, r := range c.Reservations {
		if slices.Contains(r.Addrs, a) {
			return r
		}
	}
	return nil
}

// resItem is a parsed IPReservation and what messages about it need.
type resItem struct {
	res *Reservation
	at  fieldPath
	// index[i] is the position of res.Addrs[i] in spec.addresses.
	index map[netip.Addr]int
}

func (ri *resItem) addressAt(a netip.Addr) fieldPath {
	return ri.at.child("addresses").index(ri.index[a])
}

func parseReservation(name string, spec *v1alpha1.IPReservationSpec, at fieldPath, r *report) *resItem {
	ri := &resItem{res: &Reservation{Name: name, Source: r.ref}, at: at, index: map[netip.Addr]int{}}
	if len(spec.Addresses) == 0 {
		r.invalid(at.child("addresses"), "no addresses: list the address to reserve, or one of each IP family")
	}
	seen := map[ipam.Family]int{}
	for i, s := range spec.Addresses {
		a, err := parseAddr(strings.TrimSpace(s))
		if err != nil {
			r.invalid(at.child("addresses").index(i), "%v", err)
			continue
		}
		f := ipam.FamilyOf(a)
		if j, dup := seen[f]; dup {
			r.invalid(at.child("addresses").index(i), "a second %s address (the first is %s): a Service has at most one address per family", f, at.child("addresses").index(j))
			continue
		}
		seen[f] = i
		ri.res.Addrs = append(ri.res.Addrs, a)
		ri.index[a] = i
	}
	slices.SortFunc(ri.res.Addrs, netip.Addr.Compare)

	svc, sel := spec.Service, spec.ServiceSelector
	switch {
	case svc == nil && sel == nil:
		r.invalid(at, "names no Service: set service (namespace and name) or serviceSelector")
	case svc != nil && sel != nil:
		r.invalid(at.child("serviceSelector"), "set service or serviceSelector, not both")
	case svc != nil:
		sat := at.child("service")
		checkName(sat.child("namespace"), svc.Namespace, "a namespace name", validation.IsDNS1123Label, r)
		checkName(sat.child("name"), svc.Name, "a Service name", validation.IsDNS1035Label, r)
		ri.res.Service = types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	default:
		sat := at.child("serviceSelector")
		checkName(sat.child("namespace"), sel.Namespace, "a namespace name", validation.IsDNS1123Label, r)
		ri.res.Namespace = sel.Namespace
		s, err := metav1.LabelSelectorAsSelector(&sel.Selector)
		switch {
		case err != nil:
			r.invalid(sat.child("selector"), "invalid label selector: %v", err)
		case s.Empty():
			r.invalid(sat.child("selector"), "empty: it would reserve the addresses for every Service of namespace %s; name the labels of the Services they are for", sel.Namespace)
		default:
			ri.res.Selector = s
		}
	}
	return ri
}

func checkName(at fieldPath, s, what string, valid func(string) []string, r *report) {
	if s == "" {
		r.invalid(at, "missing: %s is required", what)
		return
	}
	if errs := valid(s); len(errs) > 0 {
		r.invalid(at, "%q is not %s: %s", s, what, strings.Join(errs, "; "))
	}
}

// reservationClashes returns the problems reservation ri would cause next
// to what is in force: each address must lie in a pool in force (and be
// one the pool hands out), and no older reservation may hold it.
func (b *builder) reservationClashes(u *unit, ri *resItem, out []Problem) []Problem {
	problem := func(at fieldPath, reason, format string, args ...any) {
		out = append(out, Problem{Object: u.ref, Field: at.String(), Message: fmt.Sprintf(format, args...), Reason: reason})
	}
	for _, a := range ri.res.Addrs {
		o, ok := b.overlapping(ipam.Range{From: a, To: a})
		switch {
		case !ok:
			problem(ri.addressAt(a), v1alpha1.ReasonInvalid, "%s is in no pool; a reserved address must lie in an IPPool (or a pool of the legacy ConfigMap)", a)
			continue
		case o.pool.pool.AvoidBuggyIPs && a.Is4() && (a.As4()[3] == 0 || a.As4()[3] == 255):
			problem(ri.addressAt(a), v1alpha1.ReasonInvalid, "%s ends in .0 or .255, which pool %q avoids (avoidBuggyIPs): no Service could have it", a, o.pool.pool.Name)
			continue
		}
		if other, ok := b.resOf[a]; ok {
			problem(ri.addressAt(a), v1alpha1.ReasonConflict, "%s is already reserved by %s (for %s), which takes precedence because %s; an address can have one reservation only",
				a, other.res.Source, other.res.Whom(), precedes(b.owner[other.res.Source], u))
		}
	}
	return out
}
