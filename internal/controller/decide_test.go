package controller

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// TestDecideRules checks the allocation rules where ironlb differs from
// MetalLB or where MetalLB's allocator tests pin a behaviour, one case per
// rule, against the ledger alone: each case builds the config, decides
// some Services in order and checks the last decision.
func TestDecideRules(t *testing.T) {
	pool := func(name string, addrs ...string) v1alpha1.IPPool {
		return v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{Addresses: addrs}}
	}
	open := pool("open", "198.51.100.64/30")
	open.Spec.AllowSharingAcrossNamespaces = true
	manual := pool("manual", "198.51.100.32/30", "2001:db8:2::/126")
	manual.Spec.AutoAssign = ptr(false)
	selective := pool("selective", "198.51.100.96/30")
	selective.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
		Priority:         1,
		ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"expose": "lan"}}},
	}
	legacy := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "config"},
		Data:       map[string]string{config.LegacyConfigKey: "address-pools:\n- {name: legacy, protocol: layer2, addresses: [198.51.100.128/30]}\n"},
	}
	in := config.Input{
		Pools: []v1alpha1.IPPool{
			pool("default", "198.51.100.0/30", "2001:db8::/126"),
			pool("v6", "2001:db8:1::/127"),
			open, manual, selective,
		},
		ConfigMap: legacy,
	}

	// svc is one Service's decision: its key (namespace/name), labels and
	// Service object, from which the request is parsed as the controller
	// parses it.
	type svc struct {
		key    string
		labels map[string]string
		spec   func(*corev1.Service)
	}
	tests := []struct {
		name   string
		before []svc // decided first, each must be allocated
		svc    svc   // the Service the case is about
		// afterLabels, if set, relabels svc and decides it again.
		afterLabels map[string]string
		wantIPs     []string
		wantReason  string
		wantMsg     []string // substrings of the message
		wantWarning string
		wantFree    []string // addresses no Service holds afterwards
	}{{
		// The README promises both families or a wait; MetalLB refuses
		// the request instead ("does not match the ipFamily").
		name:    "RequireDualStack asking for one address gets the other family from its pool",
		svc:     svc{key: "a/web", spec: all(requireDual, loadBalancerIP("198.51.100.1"))},
		wantIPs: []string{"198.51.100.1", "2001:db8::"},
	}, {
		name:    "RequireDualStack: the other family comes from the requested address's pool even with autoAssign off",
		svc:     svc{key: "a/web", spec: all(requireDual, loadBalancerIP("198.51.100.33"))},
		wantIPs: []string{"198.51.100.33", "2001:db8:2::"},
	}, {
		name: "RequireDualStack: no IPv6 left, the requested IPv4 address is not taken",
		before: []svc{
			{key: "a/v6-0", spec: all(singleV6, ipsAnn("2001:db8::"))},
			{key: "a/v6-1", spec: all(singleV6, ipsAnn("2001:db8::1"))},
			{key: "a/v6-2", spec: all(singleV6, ipsAnn("2001:db8::2"))},
			{key: "a/v6-3", spec: all(singleV6, ipsAnn("2001:db8::3"))},
			{key: "a/v6-4", spec: all(singleV6, ipsAnn("2001:db8:1::"))},
			{key: "a/v6-5", spec: all(singleV6, ipsAnn("2001:db8:1::1"))},
		},
		svc:        svc{key: "a/web", spec: all(requireDual, loadBalancerIP("198.51.100.2"))},
		wantReason: v1alpha1.ReasonPoolExhausted,
		wantMsg:    []string{"RequireDualStack needs an IPv6 address besides the requested 198.51.100.2", "waits for both", "no free IPv6 address left in pools default, v6"},
		wantFree:   []string{"198.51.100.2"},
	}, {
		name:    "PreferDualStack asking for one address gets that one",
		svc:     svc{key: "a/web", spec: all(preferDual, loadBalancerIP("198.51.100.1"))},
		wantIPs: []string{"198.51.100.1"},
	}, {
		// MetalLB refuses a Service that sets both.
		name:    "the annotation wins over spec.loadBalancerIP",
		svc:     svc{key: "a/web", spec: all(loadBalancerIP("198.51.100.1"), ipsAnn("198.51.100.2"))},
		wantIPs: []string{"198.51.100.2"},
	}, {
		// MetalLB takes both families from one pool.
		name:    "a dual-stack Service takes its addresses from two pools",
		svc:     svc{key: "a/web", spec: all(requireDual, ipsAnn("198.51.100.65,2001:db8:1::1"))},
		wantIPs: []string{"198.51.100.65", "2001:db8:1::1"},
	}, {
		name:    "sharing within a namespace",
		before:  []svc{{key: "a/web", spec: all(sharing("k", 80), loadBalancerIP("198.51.100.1"))}},
		svc:     svc{key: "a/tls", spec: all(sharing("k", 443), loadBalancerIP("198.51.100.1"))},
		wantIPs: []string{"198.51.100.1"},
	}, {
		name:       "sharing across namespaces refused, naming the IPPool field",
		before:     []svc{{key: "a/web", spec: all(sharing("k", 80), loadBalancerIP("198.51.100.1"))}},
		svc:        svc{key: "b/tls", spec: all(sharing("k", 443), loadBalancerIP("198.51.100.1"))},
		wantReason: v1alpha1.ReasonIPInUse,
		wantMsg: []string{
			"198.51.100.1 is already used by a/web (in another namespace, and pool default does not allow sharing across namespaces)",
			"set spec.allowSharingAcrossNamespaces: true on IPPool/default",
			"free in pool default",
		},
	}, {
		name:       "sharing across namespaces refused in a legacy pool, naming the way out",
		before:     []svc{{key: "a/web", spec: all(sharing("k", 80), loadBalancerIP("198.51.100.129"))}},
		svc:        svc{key: "b/tls", spec: all(sharing("k", 443), loadBalancerIP("198.51.100.129"))},
		wantReason: v1alpha1.ReasonIPInUse,
		wantMsg:    []string{"pool legacy comes from the legacy ConfigMap", "define the pool as an IPPool", "spec.allowSharingAcrossNamespaces: true"},
	}, {
		name:    "sharing across namespaces in a pool that allows it",
		before:  []svc{{key: "a/web", spec: all(sharing("k", 80), loadBalancerIP("198.51.100.65"))}},
		svc:     svc{key: "b/tls", spec: all(sharing("k", 443), loadBalancerIP("198.51.100.65"))},
		wantIPs: []string{"198.51.100.65"},
	}, {
		name:    "an automatic request with a sharing key does not join another namespace's address",
		before:  []svc{{key: "a/web", spec: all(sharing("k", 80), loadBalancerIP("198.51.100.0"))}},
		svc:     svc{key: "b/tls", spec: sharing("k", 443)},
		wantIPs: []string{"198.51.100.1"},
	}, {
		// MetalLB drops the address of a Service its pool no longer
		// selects, and the Service gets another.
		name:        "a relabelled Service keeps its address, and says so",
		svc:         svc{key: "a/web", labels: map[string]string{"expose": "lan"}},
		afterLabels: map[string]string{"expose": "none"},
		wantIPs:     []string{"198.51.100.96"},
		wantMsg:     []string{"198.51.100.96 from pool selective (the pool's spec.serviceAllocation no longer selects this Service in namespace a: kept, not renumbered"},
		wantWarning: eventPoolNoLongerSelects,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			if problems := l.setConfig(in); len(problems) > 0 {
				t.Fatalf("config problems: %v", problems)
			}
			decide := func(s svc) outcome {
				t.Helper()
				ns, name, _ := strings.Cut(s.key, "/")
				obj := lbService(ns, name)
				obj.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
				if s.spec != nil {
					s.spec(obj)
				}
				req, err := parseRequest(obj)
				out, _, _ := l.decide(serviceInfo{key: s.key, namespace: ns, labels: s.labels}, req, err, nil)
				return out
			}
			for _, b := range tt.before {
				if out := decide(b); out.reason != v1alpha1.ReasonAllocated {
					t.Fatalf("%s: %+v", b.key, out)
				}
			}
			out := decide(tt.svc)
			if tt.afterLabels != nil {
				if out.reason != v1alpha1.ReasonAllocated || out.warning != "" {
					t.Fatalf("before relabelling: %+v", out)
				}
				tt.svc.labels = tt.afterLabels
				out = decide(tt.svc)
			}
			var got []string
			for _, a := range out.ips {
				got = append(got, a.String())
			}
			wantReason := cmp.Or(tt.wantReason, v1alpha1.ReasonAllocated)
			if out.reason != wantReason || !slices.Equal(got, tt.wantIPs) {
				t.Fatalf("got %s %v (%s), want %s %v", out.reason, got, out.message, wantReason, tt.wantIPs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(out.message, m) {
					t.Errorf("message %q does not contain %q", out.message, m)
				}
			}
			if out.warning != tt.wantWarning {
				t.Errorf("warning %q, want %q", out.warning, tt.wantWarning)
			}
			for _, a := range tt.wantFree {
				if h := l.alloc.Holders(netip.MustParseAddr(a)); len(h) > 0 {
					t.Errorf("%s is held by %v, want free", a, h)
				}
			}
		})
	}
}

// TestRequireDualStackKeepsWhatItHas: a RequireDualStack Service found
// holding one family (its status shows only the requested address, or
// its other family ran out) keeps that address, says what it misses,
// waits for it, and takes it once one is free.
func TestRequireDualStackKeepsWhatItHas(t *testing.T) {
	l := newLedger()
	in := config.Input{Pools: []v1alpha1.IPPool{{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.0/30", "2001:db8::/128"}},
	}}}
	if problems := l.setConfig(in); len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	parse := func(name string, mutate func(*corev1.Service)) request {
		s := lbService("a", name)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		mutate(s)
		req, err := parseRequest(s)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	v6holder := parse("v6", singleV6)
	if out, _, _ := l.decide(serviceInfo{key: "a/v6", namespace: "a"}, v6holder, nil, nil); out.reason != v1alpha1.ReasonAllocated {
		t.Fatalf("a/v6: %+v", out)
	}
	// As restore does: the status shows only the requested address.
	web := parse("web", all(requireDual, loadBalancerIP("198.51.100.1")))
	if err := l.alloc.Assign("a/web", []netip.Addr{netip.MustParseAddr("198.51.100.1")}, web.sharing, ipam.AssignOptions{}); err != nil {
		t.Fatal(err)
	}
	l.requests["a/web"] = web.addressKey()

	si := serviceInfo{key: "a/web", namespace: "a"}
	out, _, _ := l.decide(si, web, nil, nil)
	if out.reason != v1alpha1.ReasonAllocated || len(out.ips) != 1 || out.ips[0].String() != "198.51.100.1" {
		t.Fatalf("got %+v, want 198.51.100.1 kept", out)
	}
	if !strings.Contains(out.message, "RequireDualStack also needs an address of each family") {
		t.Errorf("message %q should say the IPv6 address is missing", out.message)
	}
	w := l.release("a/v6")
	if !slices.Contains(w.services, "a/web") {
		t.Errorf("freeing the IPv6 address woke %v, want a/web among them", w.services)
	}
	out, _, _ = l.decide(si, web, nil, nil)
	if got := joinAddrs(out.ips); got != "198.51.100.1, 2001:db8::" || out.reason != v1alpha1.ReasonAllocated {
		t.Errorf("got %s %s (%s), want both families", out.reason, got, out.message)
	}
}

func all(fs ...func(*corev1.Service)) func(*corev1.Service) {
	return func(s *corev1.Service) {
		for _, f := range fs {
			f(s)
		}
	}
}

func requireDual(s *corev1.Service) {
	s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

func preferDual(s *corev1.Service) {
	s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
}

func singleV6(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }

func loadBalancerIP(a string) func(*corev1.Service) { return requestIP(a) }

func ipsAnn(v string) func(*corev1.Service) { return annotate(v1alpha1.AnnotationLoadBalancerIPs, v) }

func sharing(key string, port int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		annotate(v1alpha1.AnnotationAllowSharedIP, key)(s)
		s.Spec.Ports[0].Port = port
	}
}
