package labnet

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// buildSwitch creates the switch namespace and the bridge "lan" in it. The
// switch has IPv6 disabled so that it never speaks on the LAN itself (no
// link-local address, no MLD or router solicitations), and multicast
// snooping off so that NDP's solicited-node multicast reaches every host
// whether or not the bridge has seen their MLD reports.
func (l *Lab) buildSwitch() error {
	l.swNS = nsName(l.suffix, switchHost)
	if err := l.addNamespace(l.swNS); err != nil {
		return fmt.Errorf("switch namespace: %w", err)
	}
	fd, err := netns.GetFromName(l.swNS)
	if err != nil {
		return fmt.Errorf("open switch namespace: %w", err)
	}
	l.swFd = fd
	if l.swNL, err = netlink.NewHandleAt(fd); err != nil {
		return fmt.Errorf("netlink in switch namespace: %w", err)
	}
	if err := doIn(fd, func() error {
		return writeSysctls(map[string]string{
			"net/ipv6/conf/all/disable_ipv6":     "1",
			"net/ipv6/conf/default/disable_ipv6": "1",
		})
	}); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}, MulticastSnooping: &off}
	if err := l.swNL.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge: %w", err)
	}
	if l.bridge, err = l.swNL.LinkByName(bridgeName); err != nil {
		return fmt.Errorf("find bridge: %w", err)
	}
	if err := l.swNL.LinkSetUp(l.bridge); err != nil {
		return fmt.Errorf("bridge up: %w", err)
	}
	return nil
}

// addHost creates a host namespace wired to the bridge: a veth whose switch
// end, named after the host, is a bridge port, and whose other end is the
// host's eth0 with host number num in both LAN prefixes.
func (l *Lab) addHost(name string, num int) (*Host, error) {
	if len(name) > maxIfNameLen {
		return nil, fmt.Errorf("host name %q is longer than an interface name may be", name)
	}
	v4, v6 := hostAddrs(num)
	h := &Host{Name: name, NS: nsName(l.suffix, name), IfName: hostIfName, IPv4: v4, IPv6: v6, lab: l, port: name}
	if err := l.addNamespace(h.NS); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	l.hosts = append(l.hosts, h) // from here on Close releases it
	fd, err := netns.GetFromName(h.NS)
	if err != nil {
		return nil, fmt.Errorf("host %s: open namespace: %w", name, err)
	}
	h.fd = fd
	if h.nl, err = netlink.NewHandleAt(fd); err != nil {
		return nil, fmt.Errorf("host %s: netlink: %w", name, err)
	}
	// Before eth0 exists, so that it inherits "default": addresses are
	// usable at once (no duplicate address detection), and no router
	// advertisement can install a route.
	if err := h.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv6/conf/all/accept_dad":     "0",
			"net/ipv6/conf/default/accept_dad": "0",
			"net/ipv6/conf/all/accept_ra":      "0",
			"net/ipv6/conf/default/accept_ra":  "0",
		})
	}); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.port, MasterIndex: l.bridge.Attrs().Index},
		PeerName:      hostIfName,
		PeerNamespace: netlink.NsFd(fd),
	}
	if err := l.swNL.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("host %s: create veth: %w", name, err)
	}
	port, err := l.swNL.LinkByName(h.port)
	if err != nil {
		return nil, fmt.Errorf("host %s: find switch port: %w", name, err)
	}
	if err := l.swNL.LinkSetUp(port); err != nil {
		return nil, fmt.Errorf("host %s: switch port up: %w", name, err)
	}

	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("host %s: find lo: %w", name, err)
	}
	if err := h.nl.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("host %s: lo up: %w", name, err)
	}
	eth, err := h.nl.LinkByName(hostIfName)
	if err != nil {
		return nil, fmt.Errorf("host %s: find %s: %w", name, hostIfName, err)
	}
	for _, p := range []netip.Prefix{netip.PrefixFrom(v4, lanV4.Bits()), netip.PrefixFrom(v6, lanV6.Bits())} {
		if err := h.nl.AddrAdd(eth, nlAddr(p)); err != nil {
			return nil, fmt.Errorf("host %s: add %s: %w", name, p, err)
		}
	}
	if err := h.nl.LinkSetUp(eth); err != nil {
		return nil, fmt.Errorf("host %s: %s up: %w", name, hostIfName, err)
	}
	h.MAC = eth.Attrs().HardwareAddr
	return h, nil
}

// nlAddr is p as a netlink address, without duplicate address detection.
func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: syscall.IFA_F_NODAD,
	}
}

// linkWait bounds how long the lab waits for the kernel to bring a link up.
const linkWait = 5 * time.Second

// waitOper waits until the operational state (RFC 2863) of the host's eth0
// and of its switch port satisfy ok.
func (h *Host) waitOper(ok func(netlink.LinkOperState) bool) error {
	l := h.lab
	deadline := time.Now().Add(linkWait)
	for {
		eth, err := h.nl.LinkByName(h.IfName)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		port, err := l.swNL.LinkByName(h.port)
		if err != nil {
			return fmt.Errorf("host %s: switch port: %w", h.Name, err)
		}
		es, ps := eth.Attrs().OperState, port.Attrs().OperState
		if ok(es) && ok(ps) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: link state %s, switch port %s after %v", h.Name, es, ps, linkWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitUp waits until the host's link passes traffic: both ends
// operationally up, and a frame from the host crossing the bridge.
func (h *Host) waitUp() error {
	if err := h.waitOper(operUp); err != nil {
		return err
	}
	return h.waitForwarding()
}

func operUp(s netlink.LinkOperState) bool { return s == netlink.OperUp }
