package controller

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// annotation returns the value of the ironlb annotation name (without prefix)
// or of its first MetalLB alias that is set, and the full name it came from.
func annotation(svc *corev1.Service, name string) (value, from string) {
	for _, p := range v1alpha1.AnnotationAliasPrefixes {
		if v, ok := svc.Annotations[p+name]; ok {
			return strings.TrimSpace(v), p + name
		}
	}
	return "", ""
}

// request is what one Service asks of the allocator, parsed once from its spec
// and annotations.
type request struct {
	families []ipam.Family // in the Service's order, primary first
	// requireAll is false only for PreferDualStack: one family is enough.
	requireAll bool
	// ips are the requested addresses, at most one per family; empty
	// means "any". A family of families with no requested address (only
	// RequireDualStack leaves one out) is allocated automatically.
	ips     []netip.Addr
	pool    string // requested pool; "" means any allowed pool
	sharing ipam.Sharing
	// entitled names the IPReservations the Service is for. It is not
	// parsed from the Service: the ledger sets it from the Config in force
	// (reservedFor), and it tells the allocator which reserved addresses
	// the Service may take.
	entitled []string
}

// requestError is a mistake in the Service's own spec or annotations. Its text
// is shown to the operator as is.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// parseRequest reads svc's spec and annotations. ipFamilies is filled by the
// API server from ipFamilyPolicy and the cluster's service CIDRs, so it is
// the authority on which families the Service wants.
func parseRequest(svc *corev1.Service) (request, error) {
	var r request
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			r.families = append(r.families, ipam.IPv4)
		case corev1.IPv6Protocol:
			r.families = append(r.families, ipam.IPv6)
		}
	}
	if len(r.families) == 0 {
		r.families = []ipam.Family{ipam.IPv4}
	}
	r.requireAll = svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack

	// src names where the requested addresses come from, for messages.
	var src string
	if v, from := annotation(svc, "loadBalancerIPs"); v != "" {
		src = "annotation " + from
		for i, s := range strings.Split(v, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || a.Zone() != "" || a.Is4In6() {
				return r, badRequest("annotation %s: entry %d %q is not an IP address", from, i+1, strings.TrimSpace(s))
			}
			r.ips = append(r.ips, a)
		}
	} else if s := strings.TrimSpace(svc.Spec.LoadBalancerIP); s != "" {
		src = "spec.loadBalancerIP"
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return r, badRequest("spec.loadBalancerIP %q is not an IP address", s)
		}
		r.ips = []netip.Addr{a}
	}
	if len(r.ips) > 0 {
		seen := map[ipam.Family]bool{}
		for _, a := range r.ips {
			f := ipam.FamilyOf(a)
			if seen[f] {
				return r, badRequest("%s: more than one %s address requested; request at most one per family", src, f)
			}
			seen[f] = true
			if !slices.Contains(r.families, f) {
				return r, badRequest("requested %s is %s but the Service's ipFamilies are %v; set ipFamilies/ipFamilyPolicy to include %s", a, f, r.families, f)
			}
		}
		// The requested addresses decide the families, but for
		// RequireDualStack: its promise is both families or none, so a
		// family the request leaves out is allocated automatically
		// (spec.loadBalancerIP holds one address, and a manifest written
		// for single-stack often carries it).
		requireDual := svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack
		if !requireDual || len(r.families) < 2 {
			r.families = r.families[:0]
			for _, a := range r.ips {
				r.families = append(r.families, ipam.FamilyOf(a))
			}
		}
		r.requireAll = true
	}
	r.pool, _ = annotation(svc, "address-pool")

	key, _ := annotation(svc, "allow-shared-ip")
	r.sharing = ipam.Sharing{
		Key:       key,
		Namespace: svc.Namespace,
		Local:     svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		Selector:  labels.SelectorFromSet(svc.Spec.Selector).String(),
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		r.sharing.Ports = append(r.sharing.Ports, ipam.Port{Protocol: string(proto), Port: p.Port})
	}
	return r, nil
}

// sharingHash identifies r's sharing constraints, what decides whom a
// Service may share an address with: its sharing key, its ports (in any
// order), externalTrafficPolicy Local and, with Local, its selector. It
// is 0 for a Service that shares with no one (no key), and never 0
// otherwise. See annotationStatusSharing for its use. It is written to
// Services and compared across versions: its input must not change.
func (r request) sharingHash() uint64 {
	s := r.sharing
	if s.Key == "" {
		return 0
	}
	ports := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = strings.ToUpper(p.Protocol) + "/" + strconv.Itoa(int(p.Port))
	}
	slices.Sort(ports)
	h := fnv.New64a()
	fmt.Fprintf(h, "key=%q ports=%q", s.Key, ports)
	if s.Local {
		fmt.Fprintf(h, " local selector=%q", s.Selector)
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

// admitsRequested reports whether ips answer r's requested addresses: each
// of them, and for each family r allocates automatically (see
// request.ips), at most one more address, of that family. The pool of an
// automatic address is left to the caller.
func (r request) admitsRequested(ips []netip.Addr) bool {
	auto := missingFamilies(r.ips, r.families)
	for _, a := range r.ips {
		if !slices.Contains(ips, a) {
			return false
		}
	}
	seen := map[ipam.Family]bool{}
	for _, a := range ips {
		if slices.Contains(r.ips, a) {
			continue
		}
		f := ipam.FamilyOf(a)
		if seen[f] || !slices.Contains(auto, f) {
			return false
		}
		seen[f] = true
	}
	return true
}

// addressKey identifies what of the request decides which addresses fit:
// requested addresses, pool and families. Sharing is checked separately.
// Interned: most Services share one, and the controller keeps one per
// Service that holds addresses.
func (r request) addressKey() string {
	return intern(fmt.Sprint(r.ips, "|", r.pool, "|", r.families, "|", r.requireAll))
}
