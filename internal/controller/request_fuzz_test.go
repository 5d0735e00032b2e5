package controller

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// fuzzFamilies are the spec.ipFamilies the API server accepts: none (an
// old object), one family, or both in either order.
var fuzzFamilies = [][]corev1.IPFamily{
	nil,
	{corev1.IPv4Protocol},
	{corev1.IPv6Protocol},
	{corev1.IPv4Protocol, corev1.IPv6Protocol},
	{corev1.IPv6Protocol, corev1.IPv4Protocol},
}

var fuzzPolicies = []*corev1.IPFamilyPolicy{
	nil,
	new(corev1.IPFamilyPolicySingleStack),
	new(corev1.IPFamilyPolicyPreferDualStack),
	new(corev1.IPFamilyPolicyRequireDualStack),
}

// fuzzService builds a LoadBalancer Service from fuzzed parts. prefixes
// picks, two bits per annotation (loadBalancerIPs, address-pool,
// allow-shared-ip), which of v1alpha1.AnnotationAliasPrefixes it is
// written under, or none (3). A value for loadBalancerIPs is also
// written, changed, under every later prefix, which must not be read.
func fuzzService(ips, pool, key string, prefixes uint8, lbIP string, fam, pol uint8, proto string, port1, port2 int32, local bool, selKey, selVal string) *corev1.Service {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		Type:           corev1.ServiceTypeLoadBalancer,
		LoadBalancerIP: lbIP,
		IPFamilies:     slices.Clone(fuzzFamilies[int(fam)%len(fuzzFamilies)]),
		IPFamilyPolicy: fuzzPolicies[int(pol)%len(fuzzPolicies)],
		Ports: []corev1.ServicePort{
			{Name: "a", Protocol: corev1.Protocol(proto), Port: port1},
			{Name: "b", Port: port2},
		},
	}}
	if selKey != "" {
		svc.Spec.Selector = map[string]string{selKey: selVal}
	}
	if local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	svc.Annotations = map[string]string{}
	for i, a := range []struct{ name, value string }{{"loadBalancerIPs", ips}, {"address-pool", pool}, {"allow-shared-ip", key}} {
		p := int(prefixes>>(2*i)) & 3
		if p >= len(v1alpha1.AnnotationAliasPrefixes) {
			continue
		}
		svc.Annotations[v1alpha1.AnnotationAliasPrefixes[p]+a.name] = a.value
		if i == 0 {
			for _, later := range v1alpha1.AnnotationAliasPrefixes[p+1:] {
				svc.Annotations[later+a.name] = "203.0.113.254"
			}
		}
	}
	return svc
}

// FuzzParseRequest feeds fuzzed annotations, spec.loadBalancerIP,
// ipFamilies/ipFamilyPolicy, ports and selector to parseRequest. Beyond
// not panicking: an accepted request asks for valid, unmapped addresses
// without zones, at most one per family, each of a family the request
// has, and the request is what the first alias of each annotation says; a
// Service parsed twice (or with its ports in another order) gives the same
// addressKey and sharingHash; parseRequest does not change the Service;
// and a refusal is a requestError whose text names the annotation or the
// field at fault.
func FuzzParseRequest(f *testing.F) {
	type seed struct {
		ips, pool, key string
		prefixes       uint8
		lbIP           string
		fam, pol       uint8
		proto          string
		port1, port2   int32
		local          bool
		selKey, selVal string
	}
	const none = 0b111111 // no annotation at all
	for _, s := range []seed{
		// The user's scenario: spec.loadBalancerIP in a range of the pool.
		{prefixes: none, lbIP: "192.168.1.88", fam: 1, proto: "TCP", port1: 80, port2: 443},
		{ips: "192.168.1.88", prefixes: 0b111101, fam: 1, port1: 80, port2: 443}, // metallb.universe.tf/
		{ips: "192.168.1.88, 2001:db8::88", pool: "default", key: "web", prefixes: 0b100110, fam: 3, pol: 3, proto: "UDP", port1: 53, port2: 53, local: true, selKey: "app", selVal: "dns"},
		{ips: "2001:db8::88,192.168.1.88", prefixes: 0, fam: 4, pol: 2, port1: 80, port2: 443},
		{ips: "192.168.1.88", prefixes: 0, fam: 2, port1: 80, port2: 80},                    // family mismatch
		{ips: "192.168.1.88,192.168.1.89", prefixes: 0, fam: 3, pol: 3, port1: 1, port2: 2}, // two IPv4
		{ips: "::ffff:192.168.1.88", prefixes: 0, fam: 2, port1: 1, port2: 2},
		{ips: "fe80::1%eth0", prefixes: 0, fam: 2, port1: 1, port2: 2},
		{ips: "192.168.1.88,", prefixes: 0, fam: 1, port1: 1, port2: 2},
		{ips: " ", prefixes: 0, lbIP: "garbage", fam: 1, port1: 1, port2: 2},
		{prefixes: none, lbIP: "192.168.1.300", fam: 0, port1: -1, port2: 70000},
		{pool: " lan ", key: "k", prefixes: 0b011011, proto: "sctp", port1: 9, port2: 9, local: true, selKey: "a", selVal: "b"},
	} {
		f.Add(s.ips, s.pool, s.key, s.prefixes, s.lbIP, s.fam, s.pol, s.proto, s.port1, s.port2, s.local, s.selKey, s.selVal)
	}
	f.Fuzz(func(t *testing.T, ips, pool, key string, prefixes uint8, lbIP string, fam, pol uint8, proto string, port1, port2 int32, local bool, selKey, selVal string) {
		svc := fuzzService(ips, pool, key, prefixes, lbIP, fam, pol, proto, port1, port2, local, selKey, selVal)
		orig := svc.DeepCopy()
		r, err := parseRequest(svc)
		if diff := cmp.Diff(orig, svc); diff != "" {
			t.Fatalf("parseRequest changed the Service (-before +after):\n%s", diff)
		}
		if err != nil {
			checkRequestError(t, svc, err)
			return
		}

		ipsAnn, _ := annotation(svc, "loadBalancerIPs")
		poolAnn, _ := annotation(svc, "address-pool")
		keyAnn, _ := annotation(svc, "allow-shared-ip")
		if r.pool != poolAnn || r.sharing.Key != keyAnn {
			t.Fatalf("pool %q and sharing key %q, want %q and %q from %v", r.pool, r.sharing.Key, poolAnn, keyAnn, svc.Annotations)
		}
		if len(r.families) == 0 {
			t.Fatalf("request without a family: %+v", r)
		}
		seen := map[ipam.Family]bool{}
		for _, a := range r.ips {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("accepted address %v (from %q, spec.loadBalancerIP %q)", a, ipsAnn, lbIP)
			}
			fa := ipam.FamilyOf(a)
			if seen[fa] {
				t.Fatalf("accepted two %s addresses: %v", fa, r.ips)
			}
			seen[fa] = true
			if !slices.Contains(r.families, fa) {
				t.Fatalf("requested %v but families are %v", a, r.families)
			}
		}
		switch want := wantRequested(ipsAnn, lbIP); {
		case len(r.ips) > 0:
			got := slices.Clone(r.ips)
			slices.SortFunc(got, netip.Addr.Compare)
			slices.SortFunc(want, netip.Addr.Compare)
			if !slices.Equal(got, want) {
				t.Fatalf("requests %v, want %v (annotation %q, spec.loadBalancerIP %q)", r.ips, want, ipsAnn, lbIP)
			}
			// One family per address, all required; RequireDualStack
			// keeps both, the one not requested being automatic.
			requireDual := svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack && len(svc.Spec.IPFamilies) == 2
			if wantFams := len(r.ips); !r.requireAll || len(r.families) != wantFams && !(requireDual && len(r.families) == 2) {
				t.Fatalf("requested %v: families %v, requireAll %v; want one family per address (both for RequireDualStack), all required", r.ips, r.families, r.requireAll)
			}
		case len(want) > 0:
			t.Fatalf("requests no address, want %v", want)
		default:
			for _, fa := range r.families {
				if fa != ipam.IPv4 && fa != ipam.IPv6 {
					t.Fatalf("family %v in %v", fa, r.families)
				}
			}
			if len(svc.Spec.IPFamilies) > 0 && len(r.families) != len(svc.Spec.IPFamilies) {
				t.Fatalf("families %v from ipFamilies %v", r.families, svc.Spec.IPFamilies)
			}
		}
		if len(r.sharing.Ports) != len(svc.Spec.Ports) {
			t.Fatalf("sharing ports %v from %v", r.sharing.Ports, svc.Spec.Ports)
		}

		// Deterministic: again, and with the ports the other way round.
		r2, err := parseRequest(svc)
		if err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		if r.addressKey() != r2.addressKey() || r.sharingHash() != r2.sharingHash() {
			t.Fatalf("parsed twice: addressKey %q/%q, sharingHash %d/%d", r.addressKey(), r2.addressKey(), r.sharingHash(), r2.sharingHash())
		}
		rev := svc.DeepCopy()
		slices.Reverse(rev.Spec.Ports)
		r3, err := parseRequest(rev)
		if err != nil {
			t.Fatalf("ports reversed: %v", err)
		}
		if r.addressKey() != r3.addressKey() || r.sharingHash() != r3.sharingHash() {
			t.Fatalf("ports reversed: addressKey %q/%q, sharingHash %d/%d", r.addressKey(), r3.addressKey(), r.sharingHash(), r3.sharingHash())
		}
		if (r.sharingHash() == 0) != (r.sharing.Key == "") {
			t.Fatalf("sharingHash %d with key %q", r.sharingHash(), r.sharing.Key)
		}
	})
}

// wantRequested is what a reference reading of the annotation (or, if it
// is empty, spec.loadBalancerIP) requests, for a request parseRequest
// accepted.
func wantRequested(ann, lbIP string) []netip.Addr {
	var out []netip.Addr
	if ann == "" {
		ann = strings.TrimSpace(lbIP)
	}
	if ann == "" {
		return nil
	}
	for _, s := range strings.Split(ann, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil
		}
		out = append(out, a)
	}
	return out
}

// checkRequestError checks that a refusal says what is wrong and where:
// the operator reads it in the Service's IPAllocated condition.
func checkRequestError(t *testing.T, svc *corev1.Service, err error) {
	t.Helper()
	var re *requestError
	if !errors.As(err, &re) || re.msg == "" {
		t.Fatalf("error %#v: want a requestError with a message", err)
	}
	names := []string{"spec.loadBalancerIP", "ipFamilies"}
	for name := range svc.Annotations {
		names = append(names, name)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(re.msg, n) }) {
		t.Fatalf("error %q names neither an annotation (%v) nor a field", re.msg, svc.Annotations)
	}
}
