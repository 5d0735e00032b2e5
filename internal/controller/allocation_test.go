package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestRequests covers the ways a Service asks for an address and each way
// the request can be refused: every refusal is pending with a reason that
// names the problem.
func TestRequests(t *testing.T) {
	ns := "requests"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	ensureNamespace(t, "restricted")
	cleanupServices(t, "restricted")

	lan := ipPool("lan", "198.51.100.0/28")
	lan.Spec.AvoidBuggyIPs = true
	spare := ipPool("spare", "198.51.100.64/30")
	spare.Spec.AutoAssign = ptr(false)
	team := ipPool("team", "198.51.100.128/30")
	team.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{"restricted"}}
	create(t, lan, spare, team)

	tests := []struct {
		name    string
		mutate  func(*corev1.Service)
		wantIPs []string
		reason  string
		msg     []string
	}{
		{name: "annotation", mutate: annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.5"), wantIPs: []string{"198.51.100.5"}},
		{name: "metallb-universe-alias", mutate: annotate("metallb.universe.tf/loadBalancerIPs", "198.51.100.6"), wantIPs: []string{"198.51.100.6"}},
		{name: "metallb-io-pool-alias", mutate: annotate("metallb.io/address-pool", "spare"), wantIPs: []string{"198.51.100.64"}},
		{name: "pool-by-name", mutate: annotate(v1alpha1.AnnotationAddressPool, "spare"), wantIPs: []string{"198.51.100.65"}},
		{name: "annotation-wins-over-spec", mutate: func(s *corev1.Service) {
			s.Spec.LoadBalancerIP = "198.51.100.7"
			annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.8")(s)
		}, wantIPs: []string{"198.51.100.8"}},
		{name: "outside-every-pool", mutate: requestIP("203.0.113.9"), reason: v1alpha1.ReasonNotInPool,
			msg: []string{"203.0.113.9 is not in any address pool", "lan (198.51.100.0-198.51.100.15)"}},
		{name: "pool-of-another-namespace", mutate: requestIP("198.51.100.129"), reason: v1alpha1.ReasonPoolNotAllowed,
			msg: []string{"198.51.100.129", "team"}},
		{name: "unknown-pool", mutate: annotate(v1alpha1.AnnotationAddressPool, "nope"), reason: v1alpha1.ReasonUnknownPool,
			msg: []string{`"nope" does not exist`, "spare (198.51.100.64-198.51.100.67)"}},
		{name: "buggy-ip", mutate: requestIP("198.51.100.0"), reason: v1alpha1.ReasonBuggyIP,
			msg: []string{"avoidBuggyIPs", "free in pool lan"}},
		{name: "not-an-ip", mutate: annotate(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.300"), reason: v1alpha1.ReasonInvalidRequest,
			msg: []string{"ironlb.io/loadBalancerIPs", `"198.51.100.300" is not an IP address`}},
		{name: "wrong-family", mutate: requestIP("2001:db8::1"), reason: v1alpha1.ReasonInvalidRequest,
			msg: []string{"2001:db8::1 is IPv6", "ipFamilies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := lbService(ns, tt.name)
			tt.mutate(svc)
			create(t, svc)
			if tt.reason == "" {
				waitIPs(t, ns, tt.name, tt.wantIPs...)
				return
			}
			v := waitPending(t, ns, tt.name, tt.reason)
			for _, m := range tt.msg {
				if !strings.Contains(v.Message, m) {
					t.Errorf("message %q does not contain %q", v.Message, m)
				}
			}
			waitEvent(t, ns, tt.name, "AllocationFailed")
		})
	}

	// The restricted namespace may use "team" and takes it first (its
	// allocation rule ranks it above pools open to all).
	create(t, lbService("restricted", "teamsvc"))
	waitIPs(t, "restricted", "teamsvc", "198.51.100.128")
	create(t, lbService(ns, "auto"))
	v := waitIPs(t, ns, "auto", "198.51.100.1")
	if !strings.Contains(v.Message, "pool lan") {
		t.Errorf("message %q should name pool lan", v.Message)
	}
}

// TestExhaustedPool: when the pool is full the Service waits with the reason,
// and gets the address another Service frees.
func TestExhaustedPool(t *testing.T) {
	ns := "exhausted"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("tiny", "198.51.100.200-198.51.100.201"))
	// One at a time: Services created together are reconciled in any order.
	create(t, lbService(ns, "a"))
	waitIPs(t, ns, "a", "198.51.100.200")
	create(t, lbService(ns, "b"))
	waitIPs(t, ns, "b", "198.51.100.201")
	create(t, lbService(ns, "c"))
	v := waitPending(t, ns, "c", v1alpha1.ReasonPoolExhausted)
	if !strings.Contains(v.Message, "tiny") {
		t.Errorf("message %q should name the pool", v.Message)
	}
	// Switching a away from LoadBalancer frees its address for c.
	update(t, ns, "a", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.AllocateLoadBalancerNodePorts = nil
	})
	waitIPs(t, ns, "c", "198.51.100.200")
	waitIPs(t, ns, "a")
	if c := view(t, ns, "a"); c.Reason != "" {
		t.Errorf("a ClusterIP Service keeps ironlb's condition: %+v", c)
	}
	// Deleting b frees its address too.
	if err := env.Client.Delete(context.Background(), lbService(ns, "b")); err != nil {
		t.Fatal(err)
	}
	create(t, lbService(ns, "d"))
	waitIPs(t, ns, "d", "198.51.100.201")
	waitIPs(t, ns, "c", "198.51.100.200")
}

// TestLoadBalancerClass: Services of another class are left alone.
func TestLoadBalancerClass(t *testing.T) {
	ns := "classes"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("classes", "198.51.100.16/29"))
	other := lbService(ns, "other")
	other.Spec.LoadBalancerClass = ptr("example.com/other")
	mine := lbService(ns, "mine")
	mine.Spec.LoadBalancerClass = ptr(v1alpha1.DefaultLoadBalancerClass)
	create(t, other, mine)
	waitIPs(t, ns, "mine", "198.51.100.16")
	create(t, lbService(ns, "none"))
	waitIPs(t, ns, "none", "198.51.100.17")
	if v := view(t, ns, "other"); len(v.IPs) != 0 || v.Reason != "" {
		t.Errorf("a Service of another class was touched: %+v", v)
	}
}

// TestSharing: Services with one allow-shared-ip key share an address when
// their ports differ; a port clash, another key, or externalTrafficPolicy
// Local with other pods are refused with the reason.
func TestSharing(t *testing.T) {
	ns := "sharing"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("share", "198.51.100.32/29"))

	shared := func(name, key string, port int32, mutate ...func(*corev1.Service)) *corev1.Service {
		s := lbService(ns, name, port)
		s.Spec.LoadBalancerIP = "198.51.100.33"
		s.Annotations = map[string]string{v1alpha1.AnnotationAllowSharedIP: key}
		s.Spec.Selector = map[string]string{"app": "dns"}
		for _, m := range mutate {
			m(s)
		}
		return s
	}
	udp := func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }
	create(t, shared("dns-tcp", "dns", 53))
	waitIPs(t, ns, "dns-tcp", "198.51.100.33")
	create(t, shared("dns-udp", "dns", 53, udp))
	waitIPs(t, ns, "dns-udp", "198.51.100.33")

	create(t, shared("clash", "dns", 53))
	v := waitPending(t, ns, "clash", v1alpha1.ReasonIPInUse)
	for _, want := range []string{"53/TCP", "sharing/dns-tcp"} {
		if !strings.Contains(v.Message, want) {
			t.Errorf("message %q does not contain %q", v.Message, want)
		}
	}
	create(t, shared("otherkey", "web", 8080))
	v = waitPending(t, ns, "otherkey", v1alpha1.ReasonIPInUse)
	if !strings.Contains(v.Message, "sharing key") {
		t.Errorf("message %q should explain the key mismatch", v.Message)
	}
	create(t, shared("local-other-pods", "dns", 5353, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.Selector = map[string]string{"app": "other"}
	}))
	v = waitPending(t, ns, "local-other-pods", v1alpha1.ReasonIPInUse)
	if !strings.Contains(v.Message, "Local") {
		t.Errorf("message %q should explain the Local/selector rule", v.Message)
	}
	// Without a requested IP, a Service with the key joins the shared address.
	joiner := shared("joiner", "dns", 9153)
	joiner.Spec.LoadBalancerIP = ""
	create(t, joiner)
	waitIPs(t, ns, "joiner", "198.51.100.33")
}

// TestDualStack honours ipFamilyPolicy and ipFamilies.
func TestDualStack(t *testing.T) {
	ns := "dualstack"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("v4", "198.51.100.48/30"), ipPool("v6", "2001:db8:1::10-2001:db8:1::1f"))

	policy := func(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &p; s.Spec.IPFamilies = fams }
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		want   []string
	}{
		{"single-v4", policy(corev1.IPFamilyPolicySingleStack, corev1.IPv4Protocol), []string{"198.51.100.48"}},
		{"single-v6", policy(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol), []string{"2001:db8:1::10"}},
		{"require-dual", policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol), []string{"198.51.100.49", "2001:db8:1::11"}},
		{"require-dual-v6-first", policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol), []string{"2001:db8:1::12", "198.51.100.50"}},
		{"prefer-dual", policy(corev1.IPFamilyPolicyPreferDualStack), []string{"198.51.100.51", "2001:db8:1::13"}},
		{"requested-pair", func(s *corev1.Service) {
			policy(corev1.IPFamilyPolicyRequireDualStack)(s)
			s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "2001:db8:1::1f,198.51.100.48"}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := lbService(ns, tt.name)
			tt.mutate(svc)
			create(t, svc)
			if tt.want == nil {
				v := waitPending(t, ns, tt.name, v1alpha1.ReasonIPInUse)
				if !strings.Contains(v.Message, "dualstack/single-v4") {
					t.Errorf("message %q should name the holder of 198.51.100.48", v.Message)
				}
				return
			}
			waitIPs(t, ns, tt.name, tt.want...)
		})
	}
	// The v4 pool is now full: RequireDualStack waits, whole, for both.
	create(t, func() *corev1.Service {
		s := lbService(ns, "no-v4-left")
		policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol)(s)
		return s
	}())
	waitPending(t, ns, "no-v4-left", v1alpha1.ReasonPoolExhausted)
}

func annotate(k, v string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func requestIP(ip string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip }
}

var _ = metav1.ConditionTrue
