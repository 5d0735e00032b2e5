package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestRestartKeepsAddresses: a new controller rebuilds every allocation
// from Service status before assigning anything, so a restart moves
// nothing; of two Services found claiming one address, the older keeps it.
func TestRestartKeepsAddresses(t *testing.T) {
	ns := "restart"
	stop := startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("restart", "198.51.100.64/27"))
	// Addresses handed out out of order: a restart that re-ran allocation
	// in name order would reshuffle them.
	want := map[string]string{}
	for i := 9; i >= 0; i-- {
		name := fmt.Sprintf("svc-%d", i)
		create(t, lbService(ns, name))
		want[name] = waitIPs(t, ns, name, fmt.Sprintf("198.51.100.%d", 64+9-i)).IPs[0]
	}
	stop()

	// While no controller runs, someone restores a backup that makes a
	// newer Service claim svc-3's address.
	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp than every svc-N
	create(t, lbService(ns, "restored"))
	var restored corev1.Service
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "restored"}, &restored); err != nil {
		t.Fatal(err)
	}
	restored.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: want["svc-3"]}}
	if err := env.Client.Status().Update(context.Background(), &restored); err != nil {
		t.Fatal(err)
	}
	// And a Service with no status yet, created while down.
	create(t, lbService(ns, "newcomer"))

	startController(t, ns)
	for name, ip := range want {
		waitIPs(t, ns, name, ip)
	}
	// restored and newcomer share the two next addresses, in either order.
	var v svcView
	eventually(t, 20*time.Second, func() string {
		v = view(t, ns, "restored")
		n := view(t, ns, "newcomer")
		got := strings.Join(append(v.IPs, n.IPs...), ",")
		if got == "198.51.100.74,198.51.100.75" || got == "198.51.100.75,198.51.100.74" {
			return ""
		}
		return fmt.Sprintf("restored %+v, newcomer %+v", v, n)
	})
	if !strings.Contains(v.Message, want["svc-3"]) || !strings.Contains(v.Message, "older Service keeps") {
		t.Errorf("the displaced Service's message %q should say why its address changed", v.Message)
	}
	for name, ip := range want {
		if got := view(t, ns, name).IPs; len(got) != 1 || got[0] != ip {
			t.Errorf("%s moved from %s to %v", name, ip, got)
		}
	}
}

// TestPoolDeletionWaits: deleting a pool that still has allocations waits
// (finalizer) and its status names the Services; they keep their address.
func TestPoolDeletionWaits(t *testing.T) {
	ns := "pooldelete"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("doomed", "198.51.100.96/30"))
	create(t, lbService(ns, "holder"))
	waitIPs(t, ns, "holder", "198.51.100.96")
	eventually(t, 10*time.Second, func() string {
		p := getPool(t, "doomed")
		if len(p.Finalizers) == 0 || p.Status.IPv4 == nil || p.Status.IPv4.Used != 1 {
			return fmt.Sprintf("pool has no finalizer or counts yet: %+v %+v", p.Finalizers, p.Status)
		}
		if p.Status.IPv4.Total != "4" || p.Status.IPv4.Free != "3" {
			return fmt.Sprintf("counts = %+v, want total 4 free 3", p.Status.IPv4)
		}
		return ""
	})
	if err := env.Client.Delete(context.Background(), ipPool("doomed")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		c := meta.FindStatusCondition(getPool(t, "doomed").Status.Conditions, PoolConditionDeleting)
		if c == nil || !strings.Contains(c.Message, "pooldelete/holder") {
			return fmt.Sprintf("Deleting condition = %+v", c)
		}
		return ""
	})
	// A new Service gets nothing from a pool being deleted.
	create(t, lbService(ns, "late"))
	waitPending(t, ns, "late", v1alpha1.ReasonNoPool)
	waitIPs(t, ns, "holder", "198.51.100.96")

	if err := env.Client.Delete(context.Background(), lbService(ns, "holder")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		err := env.Client.Get(context.Background(), client.ObjectKey{Name: "doomed"}, &v1alpha1.IPPool{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("pool still there (err %v)", err)
	})
}

// TestShrunkPoolKeepsAddress: an address left outside a shrunk pool keeps
// working and is flagged on its Service; it is never renumbered.
func TestShrunkPoolKeepsAddress(t *testing.T) {
	ns := "shrink"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("shrinking", "198.51.100.100-198.51.100.103"))
	create(t, lbService(ns, "first"))
	waitIPs(t, ns, "first", "198.51.100.100")
	create(t, lbService(ns, "second"))
	waitIPs(t, ns, "second", "198.51.100.101")
	p := getPool(t, "shrinking")
	p.Spec.Addresses = []string{"198.51.100.101-198.51.100.103"}
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		v := view(t, ns, "first")
		if strings.Contains(v.Message, "outside every pool") {
			return ""
		}
		return fmt.Sprintf("first: %+v", v)
	})
	waitIPs(t, ns, "first", "198.51.100.100")
	waitEvent(t, ns, "first", "AddressOutsidePool")
	// The orphaned address is not handed to anyone else either.
	create(t, lbService(ns, "third"))
	waitIPs(t, ns, "third", "198.51.100.102")
}

// TestBadConfigKeepsLastGood: an invalid edit is refused with the object and
// field named; the last good version stays in force and nothing moves.
func TestBadConfigKeepsLastGood(t *testing.T) {
	ns := "badconfig"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("good", "198.51.100.112/30"))
	create(t, lbService(ns, "a"))
	waitIPs(t, ns, "a", "198.51.100.112")
	waitValid(t, "good", metav1.ConditionTrue, "")

	// A newer pool overlapping the good one is the one refused.
	create(t, ipPool("overlap", "198.51.100.114/31"))
	waitValid(t, "overlap", metav1.ConditionFalse, "IPPool/good")
	waitValid(t, "good", metav1.ConditionTrue, "")

	// The legacy ConfigMap with a typo is refused whole and says where.
	create(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: typo\n  protocol: layer2\n  adresses: [198.51.100.120/30]\n"},
	})
	waitEvent(t, ns, "config", "adresses")

	// An update that turns the good pool invalid keeps the last good
	// version in force: a is untouched, and b still gets an address from it.
	p := getPool(t, "good")
	p.Spec.Addresses = []string{"198.51.100.112/30", "198.51.100.300"}
	if err := env.Client.Update(context.Background(), p); err != nil {
		// The CRD's own validation may refuse it before we see it; that is
		// just as good: nothing changed.
		t.Logf("the API server refused the bad edit: %v", err)
	} else {
		waitValid(t, "good", metav1.ConditionFalse, "spec.addresses[1]")
	}
	create(t, lbService(ns, "b"))
	waitIPs(t, ns, "b", "198.51.100.113")
	waitIPs(t, ns, "a", "198.51.100.112")
}

func getPool(t *testing.T, name string) *v1alpha1.IPPool {
	t.Helper()
	var p v1alpha1.IPPool
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatalf("get IPPool/%s: %v", name, err)
	}
	return &p
}

func waitValid(t *testing.T, pool string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		c := meta.FindStatusCondition(getPool(t, pool).Status.Conditions, v1alpha1.ConditionValid)
		if c != nil && c.Status == status && strings.Contains(c.Message, msg) {
			return ""
		}
		return fmt.Sprintf("IPPool/%s Valid = %+v, want %s containing %q", pool, c, status, msg)
	})
}

// TestLeaderElection: with leader election on, one replica assigns; when it
// stops cleanly it hands the Lease over at once and the standby takes over.
func TestLeaderElection(t *testing.T) {
	ns := "leader"
	opts := Options{Namespace: ns, LeaderElection: true}
	stopA := startControllerWith(t, opts)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("leader", "198.51.100.120/30"))
	create(t, lbService(ns, "a"))
	waitIPs(t, ns, "a", "198.51.100.120")
	startControllerWith(t, opts) // standby
	stopA()
	create(t, lbService(ns, "b"))
	waitIPs(t, ns, "b", "198.51.100.121")
	waitIPs(t, ns, "a", "198.51.100.120")
}

// TestConfigMapAndCRDsTogether: the legacy ConfigMap and IPPools work side by
// side; a clash between them (same pool name) is reported on the newer
// object and the older keeps working.
func TestConfigMapAndCRDsTogether(t *testing.T) {
	ns := "mixed"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses:\n  - 198.51.100.128/29\n"},
	})
	create(t, ipPool("crd", "198.51.100.136/29"))
	a := lbService(ns, "from-legacy")
	a.Annotations = map[string]string{"metallb.universe.tf/address-pool": "legacy"}
	b := lbService(ns, "from-crd")
	b.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "crd"}
	create(t, a, b)
	waitIPs(t, ns, "from-legacy", "198.51.100.128")
	waitIPs(t, ns, "from-crd", "198.51.100.136")

	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp than the ConfigMap
	create(t, ipPool("legacy", "198.51.100.144/29"))
	waitValid(t, "legacy", metav1.ConditionFalse, "legacy")
	c := lbService(ns, "still-legacy")
	c.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "legacy"}
	create(t, c)
	waitIPs(t, ns, "still-legacy", "198.51.100.129")
}

// TestLastGoodSurvivesRestart (issue 14, point 6): objects that turn
// invalid while the controller is down keep, after it starts, the last
// good version the previous controller saved in the cluster: the
// addresses already served stay, and their pools still hand out more.
func TestLastGoodSurvivesRestart(t *testing.T) {
	ns := "lastgood"
	stop := startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	legacy := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses: [198.51.100.204/30]\n"},
	}
	create(t, ipPool("older", "198.51.100.212/30"))
	time.Sleep(1100 * time.Millisecond) // a later creationTimestamp: "edited" is the newer pool
	create(t, ipPool("edited", "198.51.100.208/30"), legacy)
	withIP := func(name, ip string) *corev1.Service {
		s := lbService(ns, name)
		s.Spec.LoadBalancerIP = ip
		return s
	}
	create(t, withIP("a", "198.51.100.204"), withIP("b", "198.51.100.208"))
	waitIPs(t, ns, "a", "198.51.100.204")
	waitIPs(t, ns, "b", "198.51.100.208")
	eventually(t, 10*time.Second, func() string {
		var cm corev1.ConfigMap
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ironlb-last-good"}, &cm); err != nil {
			return err.Error()
		}
		if !strings.Contains(cm.Data["IPPool.edited"], "198.51.100.208/30") || !strings.Contains(cm.Data["ConfigMap.config"], "198.51.100.204/30") {
			return fmt.Sprintf("saved %v", cm.Data)
		}
		return ""
	})
	stop()

	// While no controller runs, a typo in the ConfigMap and an edit that
	// makes the pool overlap an older one.
	legacy.Data["config"] = strings.Replace(legacy.Data["config"], "addresses", "adresses", 1)
	if err := env.Client.Update(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	p := getPool(t, "edited")
	p.Spec.Addresses = []string{"198.51.100.208/29"}
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}

	startController(t, ns)
	waitValid(t, "edited", metav1.ConditionFalse, "the last valid version stays in force")
	waitEvent(t, ns, "config", "adresses")
	// Both pools still hand out addresses, the ones they had.
	create(t, withIP("c", "198.51.100.209"), withIP("d", "198.51.100.205"))
	waitIPs(t, ns, "c", "198.51.100.209")
	waitIPs(t, ns, "d", "198.51.100.205")
	waitIPs(t, ns, "a", "198.51.100.204")
	waitIPs(t, ns, "b", "198.51.100.208")
	var cm corev1.ConfigMap
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ironlb-last-good"}, &cm); err != nil {
		t.Fatal(err)
	}
	if s := cm.Data["IPPool.edited"]; !strings.Contains(s, "198.51.100.208/30") {
		t.Errorf("saved IPPool/edited is %s, want the last good version (198.51.100.208/30)", s)
	}
}
