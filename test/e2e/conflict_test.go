package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labnet"
)

// testAddressConflict: a foreign host on the LAN (the lab's cp host, which
// is no ironlb node) holds a pool address. A Service given that address is
// not announced by any node while the host holds it, and says why (the
// AddressConflict condition and event, naming the host's MAC); once the
// host releases it, the Service is announced and the condition goes. Then
// the host takes a second Service's address while it is announced: the
// owner's periodic probe finds it, and the address comes back when
// released.
func (c *cluster) testAddressConflict(t *testing.T) {
	c.t = t
	foreign := c.Lab.CP()
	mac := foreign.MAC.String()

	// At the first announcement.
	ip := netip.MustParseAddr("198.51.100.93")
	release := c.takeAddr(foreign, ip)
	svc := service("lab", "conflicted", 80)
	svc.Spec.LoadBalancerIP = ip.String()
	start := time.Now()
	c.apply(svc)
	c.waitConflict("lab", "conflicted", ip, mac)
	t.Logf("conflict at the first announcement: condition %s after the Service was created", time.Since(start).Round(time.Millisecond))
	c.waitEvent("lab", "conflicted", fmt.Sprintf("%s is in use by another host, %s on eth0", ip, mac))
	for range 3 {
		if got := c.resolve(ip); !slices.Equal(got, []string{mac}) {
			t.Errorf("%s answered by %v, want the foreign host %s alone", ip, got, mac)
		}
		time.Sleep(300 * time.Millisecond)
	}
	a, err := c.announcer("lab", "conflicted", ip)
	if err != nil || a.Node != "" || !strings.HasPrefix(a.Reason, v1alpha1.ReasonAddressConflict+": ") {
		t.Errorf("announcer %+v (%v), want no node and the conflict", a, err)
	}
	release()
	freed := time.Now()
	c.waitResolved("lab", "conflicted", ip)
	t.Logf("released: announced and the condition gone %s later", time.Since(freed).Round(time.Millisecond))

	// While announced: the periodic probe.
	ip = netip.MustParseAddr("198.51.100.94")
	svc = service("lab", "taken-later", 80)
	svc.Spec.LoadBalancerIP = ip.String()
	c.apply(svc)
	owner := c.waitAnnouncer("lab", "taken-later", ip).Node
	c.eventually(10*time.Second, "one answer for "+ip.String(), func() error {
		if got := c.resolve(ip); !slices.Equal(got, []string{c.nodeMAC(owner)}) {
			return fmt.Errorf("answered by %v, want %s", got, c.nodeMAC(owner))
		}
		return nil
	})
	release = c.takeAddr(foreign, ip)
	taken := time.Now()
	c.waitConflictWithin(45*time.Second, "lab", "taken-later", ip, mac)
	t.Logf("conflict while announced by %s: condition %s after the foreign host took the address (periodic probe every 30 s)", owner, time.Since(taken).Round(time.Millisecond))
	c.eventually(5*time.Second, "only the foreign host answers", func() error {
		if got := c.resolve(ip); !slices.Equal(got, []string{mac}) {
			return fmt.Errorf("%s answered by %v, want %s alone", ip, got, mac)
		}
		return nil
	})
	release()
	freed = time.Now()
	c.waitResolved("lab", "taken-later", ip)
	t.Logf("released: announced and the condition gone %s later", time.Since(freed).Round(time.Millisecond))
}

// takeAddr puts ip on h's LAN interface, as a host configured by hand
// would hold it (its kernel then answers ARP or NDP for it), and returns
// the function that takes it off again (also at the test's end).
func (c *cluster) takeAddr(h *labnet.Host, ip netip.Addr) (release func()) {
	t := c.t
	t.Helper()
	prefix := netip.PrefixFrom(ip, 24).String()
	args := []string{"addr", "add", prefix, "dev", h.IfName}
	if ip.Is6() {
		prefix = netip.PrefixFrom(ip, 64).String()
		args = []string{"addr", "add", prefix, "dev", h.IfName, "nodad"}
	}
	if out, err := h.Run(c.ctx(), "ip", args...); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		if out, err := h.Run(c.ctx(), "ip", "addr", "del", prefix, "dev", h.IfName); err != nil {
			t.Errorf("ip addr del %s: %v: %s", prefix, err, out)
		}
	}
	t.Cleanup(release)
	return release
}

// conflictCondition returns the AddressConflict condition of ns/name, nil
// if it has none.
func (c *cluster) conflictCondition(ns, name string) (*metav1.Condition, error) {
	var svc corev1.Service
	if err := c.c.Get(c.ctx(), types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		return nil, err
	}
	for i, cond := range svc.Status.Conditions {
		if cond.Type == v1alpha1.ServiceConditionAddressConflict {
			return &svc.Status.Conditions[i], nil
		}
	}
	return nil, nil
}

// waitConflict waits for ns/name to carry the AddressConflict condition
// naming ip and mac.
func (c *cluster) waitConflict(ns, name string, ip netip.Addr, mac string) {
	c.t.Helper()
	c.waitConflictWithin(15*time.Second, ns, name, ip, mac)
}

func (c *cluster) waitConflictWithin(timeout time.Duration, ns, name string, ip netip.Addr, mac string) {
	c.t.Helper()
	c.eventually(timeout, "the AddressConflict condition of "+ns+"/"+name, func() error {
		cond, err := c.conflictCondition(ns, name)
		if err != nil {
			return err
		}
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonAddressConflict ||
			!strings.Contains(cond.Message, ip.String()) || !strings.Contains(cond.Message, mac) {
			return fmt.Errorf("condition %+v", cond)
		}
		return nil
	})
}

// waitResolved waits until ns/name's ip is announced by a node, answered
// by that node's MAC alone, and the Service's AddressConflict condition
// is gone.
func (c *cluster) waitResolved(ns, name string, ip netip.Addr) {
	c.t.Helper()
	c.eventually(15*time.Second, ip.String()+" announced again, the condition gone", func() error {
		a, err := c.announcer(ns, name, ip)
		if err != nil {
			return err
		}
		if a.Node == "" {
			return fmt.Errorf("not announced: %s", a.Reason)
		}
		if got := c.resolve(ip); !slices.Equal(got, []string{c.nodeMAC(a.Node)}) {
			return fmt.Errorf("answered by %v, want %s (%s) alone", got, c.nodeMAC(a.Node), a.Node)
		}
		cond, err := c.conflictCondition(ns, name)
		if err == nil && cond != nil {
			err = fmt.Errorf("condition still there: %+v", cond)
		}
		return err
	})
}
