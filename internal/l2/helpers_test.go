package l2

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// The frames in tests are built with the mdlayher packages, independently
// of the hand-written code under test.

// equateAddrs lets cmp compare netip.Addr values.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{})

// solicitedNode is a's solicited-node multicast address.
func solicitedNode(a netip.Addr) netip.Addr {
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		panic(err)
	}
	return g
}

// nsFrame is an Ethernet frame carrying a Neighbor Solicitation for target
// from src to dst, with a Source Link-Layer Address option of sll unless
// sll is nil.
func nsFrame(srcMAC, dstMAC [macLen]byte, src, dst, target netip.Addr, sll []byte) []byte {
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if sll != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr(sll)}}
	}
	icmp, err := ndp.MarshalMessageChecksum(ns, src, dst)
	if err != nil {
		panic(err)
	}
	return ipv6Frame(srcMAC, dstMAC, src, dst, ndpHopLimit, icmp)
}

// ipv6Frame wraps an ICMPv6 message in IPv6 and Ethernet headers.
func ipv6Frame(srcMAC, dstMAC [macLen]byte, src, dst netip.Addr, hops byte, icmp []byte) []byte {
	b := make([]byte, icmpOff, icmpOff+len(icmp))
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[etherHdrLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6], ip[7] = protoICMPv6, hops
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return append(b, icmp...)
}

// arpFrame is an Ethernet frame carrying an ARP packet.
func arpFrame(dstMAC [macLen]byte, op arp.Operation, sha [macLen]byte, spa netip.Addr, tha [macLen]byte, tpa netip.Addr) []byte {
	p, err := arp.NewPacket(op, sha[:], spa, tha[:], tpa)
	if err != nil {
		panic(err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		panic(err)
	}
	b := make([]byte, etherHdrLen, etherHdrLen+len(body))
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], sha[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	return append(b, body...)
}
