package l2

import (
	"encoding/binary"
	"net/netip"
)

// Ethernet (IEEE 802.3, RFC 894) and ARP (RFC 826) constants.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherHdrLen   = 14
	macLen        = 6

	arpHTypeEthernet = 1
	arpOpRequest     = 1
	arpOpReply       = 2
	arpLen           = 28                   // for Ethernet and IPv4
	arpFrameLen      = etherHdrLen + arpLen // 42; the driver pads it to 60
)

// verdict says what became of one received frame, for the counters.
type verdict uint8

const (
	// invalid: malformed, or failing the protocol's validation rules.
	invalid verdict = iota
	// ignored: well-formed but not a question for this host (a reply, an
	// announcement, our own frame, a frame for another MAC).
	ignored
	// unowned: a request for an address this Responder does not own.
	unowned
	// answered: a request for an owned address; the reply is in out.
	answered
)

// self is what a Responder says about itself on the wire.
type self struct {
	mac [macLen]byte
	// src6 is the IPv6 source of Neighbor Advertisements: the
	// interface's link-local address, or the zero Addr to send from the
	// target address itself.
	src6 netip.Addr
}

var broadcastMAC = [macLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// answerARP answers the Ethernet frame in if it is an ARP request (RFC 826)
// for an address in set: it writes the reply frame into out, which must
// hold arpFrameLen bytes, and returns its length and answered. Otherwise it
// returns 0 and why not. It only reads in, and never allocates.
//
// A request counts when its Ethernet destination is broadcast or our MAC
// (a unicast request from a host revalidating its cache), it does not come
// from our own MAC, and it is not an announcement (sender IP equal to target
// IP, RFC 5227 section 3), which asks nothing. An ARP Probe (sender IP
// 0.0.0.0, RFC 5227 section 2.1.1) for an owned address is answered, as the
// kernel does, which tells the prober the address is taken.
//
// The reply's sender hardware address is our MAC for an owned address and
// the other host's for a proxied one; its Ethernet source is ours either
// way, so that switches keep learning each MAC on the port it lives on.
//
// A request for a proxied address whose Ethernet source is the very MAC we
// would name comes from the host we answer for, asking about its own
// address (an ARP Probe, RFC 5227, or, for NDP, duplicate address
// detection, RFC 4862, while it sets the address up again). It gets no
// answer: one naming its own MAC would tell it the address is taken (and
// Linux gives up an IPv6 address it is still testing on such an answer).
// For an owned address the check can never match, frames from our own MAC
// being ignored already.
func answerARP(set *addrSet, me *self, in, out []byte) (int, verdict) {
	if len(in) < arpFrameLen || binary.BigEndian.Uint16(in[12:14]) != etherTypeARP {
		return 0, invalid
	}
	a := in[etherHdrLen:arpFrameLen]
	if binary.BigEndian.Uint16(a[0:2]) != arpHTypeEthernet ||
		binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != macLen || a[5] != 4 {
		return 0, ignored // ARP for another hardware or protocol type
	}
	if binary.BigEndian.Uint16(a[6:8]) != arpOpRequest {
		return 0, ignored
	}
	dst, src := [macLen]byte(in[0:6]), [macLen]byte(in[6:12])
	if (dst != broadcastMAC && dst != me.mac) || src == me.mac {
		return 0, ignored
	}
	sha, spa, tpa := [macLen]byte(a[8:14]), [4]byte(a[14:18]), [4]byte(a[24:28])
	if sha[0]&1 != 0 || sha == [macLen]byte{} {
		return 0, invalid // a group or zero sender cannot be answered
	}
	if spa == tpa {
		return 0, ignored
	}
	hw, ok := set.lookup(netip.AddrFrom4(tpa))
	if !ok {
		return 0, unowned
	}
	if src == hw {
		return 0, ignored // the host we answer for, asking about its own address
	}
	// Written out here rather than through buildARP, which the compiler
	// does not inline: this is the hot path, and the call showed in
	// BenchmarkAnswer.
	_ = out[arpFrameLen-1]
	copy(out[0:6], sha[:])
	copy(out[6:12], me.mac[:]) // from us, whatever MAC the reply names
	binary.BigEndian.PutUint16(out[12:14], etherTypeARP)
	r := out[etherHdrLen:arpFrameLen]
	binary.BigEndian.PutUint16(r[0:2], arpHTypeEthernet)
	binary.BigEndian.PutUint16(r[2:4], etherTypeIPv4)
	r[4], r[5] = macLen, 4
	binary.BigEndian.PutUint16(r[6:8], arpOpReply)
	copy(r[8:14], hw[:]) // sender: the target address's MAC, claiming it
	copy(r[14:18], tpa[:])
	copy(r[18:24], sha[:]) // target: the asker
	copy(r[24:28], spa[:])
	return arpFrameLen, answered
}

// announceARP writes into out (arpFrameLen bytes) an ARP Announcement of
// addr (RFC 5227 section 3): a broadcast ARP request whose sender and
// target IP are both addr and whose target MAC is zero. Receivers that hold
// addr in their cache update it to our MAC (RFC 826's merge step; Linux
// does so even within its locktime for such a gratuitous request).
func announceARP(me *self, addr netip.Addr, out []byte) int {
	ip := addr.As4()
	return buildARP(out, arpOpRequest, &broadcastMAC, &me.mac, &me.mac, &ip, &[macLen]byte{}, &ip)
}

// buildARP writes into out (arpFrameLen bytes) an Ethernet frame from
// ethSrc to ethDst carrying an ARP packet for Ethernet and IPv4 with the
// given operation, sender (sha, spa) and target (tha, tpa). The Ethernet
// source and the sender hardware address are separate for proxy answers,
// which name another host's MAC from ours.
func buildARP(out []byte, op uint16, ethDst, ethSrc, sha *[macLen]byte, spa *[4]byte, tha *[macLen]byte, tpa *[4]byte) int {
	_ = out[arpFrameLen-1]
	copy(out[0:6], ethDst[:])
	copy(out[6:12], ethSrc[:])
	binary.BigEndian.PutUint16(out[12:14], etherTypeARP)
	r := out[etherHdrLen:arpFrameLen]
	binary.BigEndian.PutUint16(r[0:2], arpHTypeEthernet)
	binary.BigEndian.PutUint16(r[2:4], etherTypeIPv4)
	r[4], r[5] = macLen, 4
	binary.BigEndian.PutUint16(r[6:8], op)
	copy(r[8:14], sha[:])
	copy(r[14:18], spa[:])
	copy(r[18:24], tha[:])
	copy(r[24:28], tpa[:])
	return arpFrameLen
}
