package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labnet"
)

// TestInterfaceAppears: an L2Announcement names an interface that no node
// has when the speakers start, so nobody answers for its address. Then
// node-2 gains that interface, a second link into the LAN as a bond or a
// VLAN added later would be: within seconds node-2 answers ARP for the
// address with that interface's MAC, and the ServiceAnnouncement (which
// node-1, reading node-2's interfaces from the membership, must agree
// with) names it. When the link goes down, the address has no owner
// again; when it comes back, it is answered again.
func TestInterfaceAppears(t *testing.T) {
	const ifname = "lan1"
	c := newCluster(t, 2)
	c.namespace("lab")
	c.apply(&v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.120/30"}, AutoAssign: new(bool)},
	})
	c.apply(&v1alpha1.L2Announcement{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec:       v1alpha1.L2AnnouncementSpec{IPPools: []string{"late"}, Interfaces: []string{ifname}},
	})
	svc := service("lab", "late", 80)
	svc.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "late"}
	c.apply(svc)
	ip := netip.MustParseAddr("198.51.100.120")
	c.waitIPs("lab", "late", ip.String())

	c.waitNoOwner("lab", "late", ip)
	for range 5 { // a second's worth of asking
		if got := c.resolve(ip); len(got) != 0 {
			t.Fatalf("%s answered by %v while no node has %s", ip, got, ifname)
		}
	}

	node := c.host("node-2")
	link := addLANLink(t, c.Lab, node, ifname, "n2-"+ifname, netip.MustParsePrefix("198.51.100.201/32"))
	mac := link.Attrs().HardwareAddr.String()
	start := time.Now()
	c.eventually(5*time.Second, "an answer from node-2's "+ifname, func() error {
		if got := c.resolve(ip); !slices.Equal(got, []string{mac}) {
			return fmt.Errorf("answers from %v, want exactly %s (node-2's %s)", got, mac, ifname)
		}
		return nil
	})
	t.Logf("%s answered %s after %s was added", ip, time.Since(start).Round(time.Millisecond), ifname)
	c.eventually(10*time.Second, "the announcement of node-2's "+ifname, func() error {
		a, err := c.announcer("lab", "late", ip)
		if err == nil && (a.Node != "node-2" || a.Interface != ifname || a.MAC != mac) {
			err = fmt.Errorf("announcement says %+v, want node-2 on %s (%s)", a, ifname, mac)
		}
		return err
	})

	setLink(t, node, ifname, false)
	c.waitNoOwner("lab", "late", ip)
	setLink(t, node, ifname, true)
	c.eventually(5*time.Second, "an answer from node-2's "+ifname+" once up again", func() error {
		if got := c.resolve(ip); !slices.Equal(got, []string{mac}) {
			return fmt.Errorf("answers from %v, want exactly %s (node-2's %s)", got, mac, ifname)
		}
		return nil
	})
}

// waitNoOwner waits until the ServiceAnnouncement of ns/name says that no
// node announces ip.
func (c *cluster) waitNoOwner(ns, name string, ip netip.Addr) {
	c.t.Helper()
	c.eventually(20*time.Second, "no owner for "+ip.String(), func() error {
		a, err := c.announcer(ns, name, ip)
		if err == nil && (a.Node != "" || a.Reason == "") {
			err = fmt.Errorf("announcement says %+v, want no node and a reason", a)
		}
		return err
	})
}

// addLANLink gives host h a second link into the LAN: a veth whose end
// in h is called name, up, with addr, and whose other end is port, a port
// of the LAN bridge in the lab's switch. The lab deletes it with its
// namespaces.
func addLANLink(t *testing.T, l *labnet.Lab, h *labnet.Host, name, port string, addr netip.Prefix) netlink.Link {
	t.Helper()
	sw, err := netns.GetFromName(l.SwitchNS())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	swNL, err := netlink.NewHandleAt(sw)
	if err != nil {
		t.Fatal(err)
	}
	defer swNL.Close()
	ns, err := netns.GetFromPath(h.NSPath())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	hNL, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hNL.Close()

	br, err := swNL.LinkByName("lan")
	if err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index},
		PeerName:      name,
		PeerNamespace: netlink.NsFd(ns),
	}
	if err := swNL.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s-%s: %v", port, name, err)
	}
	p, err := swNL.LinkByName(port)
	if err != nil {
		t.Fatal(err)
	}
	if err := swNL.LinkSetUp(p); err != nil {
		t.Fatal(err)
	}
	link, err := hNL.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())},
		Flags: syscall.IFA_F_NODAD,
	}
	if err := hNL.AddrAdd(link, a); err != nil {
		t.Fatal(err)
	}
	if err := hNL.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	return link
}

// setLink brings link name of host h up or down.
func setLink(t *testing.T, h *labnet.Host, name string, up bool) {
	t.Helper()
	err := h.Do(func() error {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(link)
		}
		return netlink.LinkSetDown(link)
	})
	if err != nil {
		t.Fatal(err)
	}
}
