package labnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

const (
	etherTypeIPv6 = 0x86dd
	etherHdrLen   = 14
	ipv6HdrLen    = 40
	protoICMPv6   = 58
)

// NDPSolicit sends one Neighbor Solicitation for target to its
// solicited-node multicast group (RFC 4861, section 7.2.2) from the host's
// interface ifname ("" means its LAN interface), and returns the link-layer
// address of every host whose solicited Neighbor Advertisement reaches this
// host within timeout, each once, in arrival order; as ARPRequest does for
// IPv4. Unsolicited advertisements (announcements) are not counted.
//
// It works on Ethernet frames through a packet socket rather than an
// ICMPv6 socket: Go resolves IPv6 zones ("%eth0") to interface indexes
// through a process-wide cache that does not know about namespaces, so
// link-local IPv6 sockets cannot be trusted inside a lab host.
func (h *Host) NDPSolicit(ctx context.Context, ifname string, target netip.Addr, timeout time.Duration) ([]net.HardwareAddr, error) {
	if !target.Is6() || target.Is4In6() {
		return nil, fmt.Errorf("%s: neighbor solicitation for %s: not an IPv6 address", h.Name, target)
	}
	if ifname == "" {
		ifname = h.IfName
	}
	var (
		ifi  *net.Interface
		src  netip.Addr
		conn *packet.Conn
	)
	err := h.Do(func() (err error) {
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		if src, err = linkLocal(ifi); err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, etherTypeIPv6, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("neighbor solicitation for %s: %w", target, err)
	}
	defer conn.Close()

	frame, dstMAC, err := solicitation(ifi.HardwareAddr, src, target)
	if err != nil {
		return nil, fmt.Errorf("%s: neighbor solicitation for %s: %w", h.Name, target, err)
	}
	if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: dstMAC}); err != nil {
		return nil, fmt.Errorf("%s: neighbor solicitation for %s: %w", h.Name, target, err)
	}
	buf := make([]byte, 2048)
	macs, err := collect(ctx, conn, timeout, func() (net.HardwareAddr, error) {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		return advertiser(buf[:n], ifi.HardwareAddr, target), nil
	})
	if err != nil {
		return macs, fmt.Errorf("%s: neighbor solicitation for %s: %w", h.Name, target, err)
	}
	return macs, nil
}

// linkLocal returns ifi's IPv6 link-local address, the usual source of a
// Neighbor Solicitation. It must run inside the interface's namespace.
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv6 link-local address", ifi.Name)
}

// solicitation builds the Ethernet frame of a Neighbor Solicitation for
// target from (srcMAC, src), and returns it with its destination MAC.
func solicitation(srcMAC net.HardwareAddr, src, target netip.Addr) ([]byte, net.HardwareAddr, error) {
	group, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return nil, nil, err
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: srcMAC}},
	}
	icmp, err := ndp.MarshalMessageChecksum(ns, src, group)
	if err != nil {
		return nil, nil, err
	}
	g := group.As16()
	// RFC 2464, section 7: 33:33 and the group's last four bytes.
	dstMAC := net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}

	b := make([]byte, etherHdrLen+ipv6HdrLen, etherHdrLen+ipv6HdrLen+len(icmp))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[etherHdrLen:]
	ip[0] = 6 << 4 // version; traffic class and flow label 0
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = protoICMPv6
	ip[7] = ndp.HopLimit // 255, or receivers must drop it (RFC 4861, 7.1.1)
	s := src.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], g[:])
	return append(b, icmp...), dstMAC, nil
}

// advertiser returns the link-layer address claimed by frame if it is a
// solicited Neighbor Advertisement for target sent to self, and nil
// otherwise. The address is the advertisement's target link-layer option,
// or the frame's source if the option is missing.
func advertiser(frame []byte, self net.HardwareAddr, target netip.Addr) net.HardwareAddr {
	if len(frame) < etherHdrLen+ipv6HdrLen ||
		!bytes.Equal(frame[0:6], self) ||
		binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 ||
		frame[etherHdrLen+6] != protoICMPv6 {
		return nil
	}
	m, err := ndp.ParseMessage(frame[etherHdrLen+ipv6HdrLen:])
	if err != nil {
		return nil
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.Solicited || na.TargetAddress != target {
		return nil
	}
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			return lla.Addr
		}
	}
	return net.HardwareAddr(bytes.Clone(frame[6:12]))
}
