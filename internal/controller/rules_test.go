package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The allocation rules where ironlb differs from MetalLB, on the real API
// server: what the Service shows, in its condition and events.

// TestSharingAcrossNamespaces: a Service may not join an address that a
// Service of another namespace holds, whatever its sharing key, until the
// pool allows it; the refusal names the field to set. Turning the
// permission off again, and restarting the controller, moves neither
// sharer.
func TestSharingAcrossNamespaces(t *testing.T) {
	nsA, nsB := "share-ns-a", "share-ns-b"
	stop := startController(t, nsA)
	cleanupConfig(t)
	ensureNamespace(t, nsB)
	cleanupServices(t, nsA, nsB)
	create(t, ipPool("teams", "198.51.100.160/30"))

	keyed := func(ns, name string, port int32) *corev1.Service {
		s := lbService(ns, name, port)
		s.Spec.LoadBalancerIP = "198.51.100.161"
		s.Annotations = map[string]string{v1alpha1.AnnotationAllowSharedIP: "shared"}
		return s
	}
	create(t, keyed(nsA, "web", 80))
	waitIPs(t, nsA, "web", "198.51.100.161")
	create(t, keyed(nsB, "tls", 443))
	v := waitPending(t, nsB, "tls", v1alpha1.ReasonIPInUse)
	for _, want := range []string{"share-ns-a/web (in another namespace, and pool teams does not allow sharing across namespaces)",
		"set spec.allowSharingAcrossNamespaces: true on IPPool/teams"} {
		if !strings.Contains(v.Message, want) {
			t.Errorf("message %q does not contain %q", v.Message, want)
		}
	}
	waitEvent(t, nsB, "tls", "AllocationFailed: 198.51.100.161 is already used by share-ns-a/web (in another namespace")

	setSharing := func(allow bool) {
		t.Helper()
		for range 20 {
			var p v1alpha1.IPPool
			if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "teams"}, &p); err != nil {
				t.Fatal(err)
			}
			p.Spec.AllowSharingAcrossNamespaces = allow
			err := env.Client.Update(context.Background(), &p)
			if err == nil {
				return
			}
			if !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
		t.Fatal("update IPPool/teams: too many conflicts")
	}
	setSharing(true)
	waitIPs(t, nsB, "tls", "198.51.100.161")

	// Off again, and a restart: both keep the address they share; only a
	// newcomer from the other namespace is refused.
	setSharing(false)
	stop()
	startController(t, nsA)
	create(t, keyed(nsB, "dns", 53))
	waitPending(t, nsB, "dns", v1alpha1.ReasonIPInUse)
	for _, s := range []struct{ ns, name string }{{nsA, "web"}, {nsB, "tls"}} {
		if v := view(t, s.ns, s.name); len(v.IPs) != 1 || v.IPs[0] != "198.51.100.161" || v.Allocated != metav1.ConditionTrue {
			t.Errorf("%s/%s lost the address it shares: %+v", s.ns, s.name, v)
		}
	}
}

// TestRequireDualStackOneRequested: a RequireDualStack Service that asks
// for one address gets it and one of the other family, or waits for both
// and says why; it gets both once the other family has a free address.
func TestRequireDualStackOneRequested(t *testing.T) {
	ns := "dual-one"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("dual-one", "198.51.100.176/30", "2001:db8:5::/127"))

	dual := func(name, ip string) *corev1.Service {
		s := lbService(ns, name)
		requireDual(s)
		s.Spec.LoadBalancerIP = ip
		return s
	}
	create(t, dual("web", "198.51.100.177"))
	waitIPs(t, ns, "web", "198.51.100.177", "2001:db8:5::")

	v6 := lbService(ns, "v6")
	singleV6(v6)
	create(t, v6)
	waitIPs(t, ns, "v6", "2001:db8:5::1")

	create(t, dual("late", "198.51.100.178"))
	v := waitPending(t, ns, "late", v1alpha1.ReasonPoolExhausted)
	if want := "RequireDualStack needs an IPv6 address besides the requested 198.51.100.178"; !strings.Contains(v.Message, want) {
		t.Errorf("message %q does not contain %q", v.Message, want)
	}
	waitEvent(t, ns, "late", "AllocationFailed: ipFamilyPolicy RequireDualStack needs an IPv6 address")

	if err := env.Client.Delete(context.Background(), lbService(ns, "v6")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "late", "198.51.100.178", "2001:db8:5::1")
}

// TestRelabelledServiceKeepsAddress: a Service whose pool no longer
// selects it (here, its labels changed) keeps its address, and its
// condition and a Warning event say so; selected again, the note goes.
func TestRelabelledServiceKeepsAddress(t *testing.T) {
	ns := "relabel"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	lan := ipPool("lan-only", "198.51.100.184/30")
	lan.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
		ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"expose": "lan"}}},
	}
	create(t, lan, ipPool("rest", "198.51.100.188/30"))

	s := lbService(ns, "web")
	s.Labels = map[string]string{"expose": "lan"}
	create(t, s)
	waitIPs(t, ns, "web", "198.51.100.184")

	relabel := func(v string) {
		update(t, ns, "web", func(s *corev1.Service) { s.Labels["expose"] = v })
	}
	relabel("none")
	eventually(t, 20*time.Second, func() string {
		v := view(t, ns, "web")
		if len(v.IPs) == 1 && v.IPs[0] == "198.51.100.184" && v.Allocated == metav1.ConditionTrue &&
			strings.Contains(v.Message, "the pool's spec.serviceAllocation no longer selects this Service") {
			return ""
		}
		return fmt.Sprintf("got %+v, want 198.51.100.184 kept with a note", view(t, ns, "web"))
	})
	waitEvent(t, ns, "web", "PoolNoLongerSelects: Assigned 198.51.100.184 from pool lan-only (the pool's spec.serviceAllocation no longer selects")

	relabel("lan")
	eventually(t, 20*time.Second, func() string {
		if v := view(t, ns, "web"); v.Message != "Assigned 198.51.100.184 from pool lan-only" {
			return fmt.Sprintf("got %+v, want the note gone", v)
		}
		return ""
	})
}
