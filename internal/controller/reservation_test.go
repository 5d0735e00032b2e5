package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func ipReservation(name, ns, svc string, addrs ...string) *v1alpha1.IPReservation {
	return &v1alpha1.IPReservation{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.IPReservationSpec{Addresses: addrs, Service: &v1alpha1.ReservedService{Namespace: ns, Name: svc}},
	}
}

func getReservation(t *testing.T, name string) *v1alpha1.IPReservation {
	t.Helper()
	var r v1alpha1.IPReservation
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &r); err != nil {
		t.Fatalf("get IPReservation/%s: %v", name, err)
	}
	return &r
}

// waitReservationCondition waits until the reservation's condition typ
// has status and a message containing msg.
func waitReservationCondition(t *testing.T, name, typ string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	eventually(t, 15*time.Second, func() string {
		c := meta.FindStatusCondition(getReservation(t, name).Status.Conditions, typ)
		if c == nil || c.Status != status || !strings.Contains(c.Message, msg) {
			return fmt.Sprintf("IPReservation/%s %s = %+v, want %s with %q", name, typ, c, status, msg)
		}
		return ""
	})
}

func deleteService(t *testing.T, ns, name string) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), lbService(ns, name)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, lbService(ns, name)); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("%s/%s not gone yet (%v)", ns, name, err)
		}
		return ""
	})
}

// TestReservationKeepsAddressAcrossRecreate is the Helm re-install: the
// Service a reservation is for, deleted and re-created, gets its address
// back although other Services asked in between, one of them for that
// very address (refused, naming the reservation and the Service); the
// pool counts the reserved address in its status and metrics.
func TestReservationKeepsAddressAcrossRecreate(t *testing.T) {
	ns := "reserve"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("reserve", "198.51.100.200/29"))
	create(t, lbService(ns, "web"))
	waitIPs(t, ns, "web", "198.51.100.200")
	create(t, ipReservation("web-ip", ns, "web", "198.51.100.200"))
	waitReservationCondition(t, "web-ip", v1alpha1.ConditionValid, metav1.ConditionTrue, "In force")
	waitReservationCondition(t, "web-ip", v1alpha1.ConditionBound, metav1.ConditionTrue, "198.51.100.200 by reserve/web")

	deleteService(t, ns, "web")
	waitReservationCondition(t, "web-ip", v1alpha1.ConditionBound, metav1.ConditionFalse, "198.51.100.200 is kept for Service reserve/web")
	create(t, lbService(ns, "other"))
	waitIPs(t, ns, "other", "198.51.100.201")
	thief := lbService(ns, "thief")
	thief.Spec.LoadBalancerIP = "198.51.100.200"
	create(t, thief)
	v := waitPending(t, ns, "thief", v1alpha1.ReasonReserved)
	for _, s := range []string{"198.51.100.200 is reserved for Service reserve/web by IPReservation/web-ip", "request another address", "free in pool reserve: 198.51.100.202-198.51.100.207"} {
		if !strings.Contains(v.Message, s) {
			t.Errorf("thief's message %q lacks %q", v.Message, s)
		}
	}
	waitEvent(t, ns, "thief", "reserved for Service reserve/web by IPReservation/web-ip")

	eventually(t, 15*time.Second, func() string {
		p := getPool(t, "reserve")
		if c := p.Status.IPv4; c == nil || c.Used != 1 || c.Reserved != 1 || c.Free != "6" || c.Total != "8" {
			return fmt.Sprintf("pool counts = %+v, want total 8, used 1, reserved 1, free 6", c)
		}
		fams, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err.Error()
		}
		if got, ok := metricValue(fams, "ironlb_pool_addresses", map[string]string{"pool": "reserve", "family": "IPv4", "state": "reserved"}); !ok || got != 1 {
			return fmt.Sprintf("reserved metric = %v (found %v), want 1", got, ok)
		}
		return ""
	})

	create(t, lbService(ns, "web"))
	waitIPs(t, ns, "web", "198.51.100.200")
	waitReservationCondition(t, "web-ip", v1alpha1.ConditionBound, metav1.ConditionTrue, "198.51.100.200 by reserve/web")
	waitPending(t, ns, "thief", v1alpha1.ReasonReserved)

	// Deleting the reservation moves nothing.
	if err := env.Client.Delete(context.Background(), ipReservation("web-ip", "", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if c := getPool(t, "reserve").Status.IPv4; c == nil || c.Reserved != 0 || c.Used != 2 {
			return fmt.Sprintf("pool counts = %+v, want used 2, reserved 0", c)
		}
		return ""
	})
	waitIPs(t, ns, "web", "198.51.100.200")
	waitIPs(t, ns, "other", "198.51.100.201")
}

// TestReservationOfHeldAddress: a reservation of an address another
// Service holds leaves it there and says it waits; the Service it is
// for waits too, told why, and gets the address once the holder lets it
// go.
func TestReservationOfHeldAddress(t *testing.T) {
	ns := "reserveheld"
	startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("reserveheld", "198.51.100.216/29"))
	create(t, lbService(ns, "holder"))
	waitIPs(t, ns, "holder", "198.51.100.216")
	create(t, ipReservation("db-ip", ns, "db", "198.51.100.216"))
	waitReservationCondition(t, "db-ip", v1alpha1.ConditionBound, metav1.ConditionFalse,
		"Held 198.51.100.216 by reserveheld/holder, which had it before this reservation and keeps it until it lets it go")
	create(t, lbService(ns, "db"))
	v := waitPending(t, ns, "db", v1alpha1.ReasonIPInUse)
	if !strings.Contains(v.Message, "IPReservation/db-ip reserves 198.51.100.216 for this Service, which waits for it") {
		t.Errorf("db's message %q should name the reservation it waits for", v.Message)
	}
	waitIPs(t, ns, "holder", "198.51.100.216")
	deleteService(t, ns, "holder")
	waitIPs(t, ns, "db", "198.51.100.216")
	waitReservationCondition(t, "db-ip", v1alpha1.ConditionBound, metav1.ConditionTrue, "198.51.100.216 by reserveheld/db")
}

// TestInvalidReservationKeepsLastGood: a reservation edited to an address
// in no pool is Valid=False naming the field; its last good version stays
// in force, also for a controller started while it is invalid, so the
// Service re-created then still gets the reserved address.
func TestInvalidReservationKeepsLastGood(t *testing.T) {
	ns := "reservebad"
	stop := startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	create(t, ipPool("reservebad", "198.51.100.232/29"))
	create(t, ipReservation("api-ip", ns, "api", "198.51.100.232"))
	create(t, lbService(ns, "api"))
	waitIPs(t, ns, "api", "198.51.100.232")

	// The controller writes the reservation's status meanwhile: read it
	// again on a conflict, as kubectl edit would.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r := getReservation(t, "api-ip")
		r.Spec.Addresses = []string{"203.0.113.9"}
		return env.Client.Update(context.Background(), r)
	})
	if err != nil {
		t.Fatal(err)
	}
	const bad = "IPReservation/api-ip: spec.addresses[0]: 203.0.113.9 is in no pool; a reserved address must lie in an IPPool (or a pool of the legacy ConfigMap) (the last valid version stays in force)"
	waitReservationCondition(t, "api-ip", v1alpha1.ConditionValid, metav1.ConditionFalse, bad)
	deleteService(t, ns, "api")
	stop()

	startController(t, ns)
	create(t, lbService(ns, "squatter")) // would take .232, the pool's first address, without the reservation
	waitIPs(t, ns, "squatter", "198.51.100.233")
	create(t, lbService(ns, "api"))
	waitIPs(t, ns, "api", "198.51.100.232")
	waitReservationCondition(t, "api-ip", v1alpha1.ConditionValid, metav1.ConditionFalse, bad)
	waitReservationCondition(t, "api-ip", v1alpha1.ConditionBound, metav1.ConditionTrue, "198.51.100.232 by reservebad/api")
}
