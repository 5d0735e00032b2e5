package l2

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 (RFC 8200), ICMPv6 (RFC 4443) and NDP (RFC 4861) constants.
const (
	ipv6HdrLen     = 40
	protoICMPv6    = 58
	ndpHopLimit    = 255 // RFC 4861 section 7.1: anything else came from off-link
	icmpOff        = etherHdrLen + ipv6HdrLen
	icmpTypeNS     = 135
	icmpTypeNA     = 136
	nsLen          = 24 // type, code, checksum, reserved, target
	optSourceLLA   = 1
	optTargetLLA   = 2
	naLen          = 32 // 24 plus a Target Link-Layer Address option for Ethernet
	naFrameLen     = icmpOff + naLen
	naFlagSolicit  = 0x40
	naFlagOverride = 0x20
)

// allNodes is ff02::1 and allNodesMAC its Ethernet group (RFC 2464 section 7).
var (
	allNodes    = [16]byte{0: 0xff, 1: 0x02, 15: 0x01}
	allNodesMAC = [macLen]byte{0x33, 0x33, 0, 0, 0, 1}
)

// answerNS answers the Ethernet frame in if it is a valid Neighbor
// Solicitation (RFC 4861 section 4.3) for an address in set: it writes a
// Neighbor Advertisement into out, which must hold naFrameLen bytes, and
// returns its length and answered. Otherwise it returns 0 and why not. It
// only reads in, and never allocates.
//
// The solicitation must pass the checks of RFC 4861 section 7.1.1 (hop
// limit 255, valid checksum, code 0, at least 24 bytes, non-multicast
// target, options of non-zero length, and from the unspecified address only
// to the solicited-node group and without a Source Link-Layer Address
// option), be sent to the target itself or the target's solicited-node
// multicast address, and, at the Ethernet layer, to a group or our MAC and
// not from our MAC. ICMPv6 after IPv6 extension headers is not parsed:
// solicitations carry none.
//
// The answer follows RFC 4861 section 7.2.4: to the solicitation's source,
// at the MAC of its Source Link-Layer Address option or else of its
// Ethernet source, with the Solicited flag; or, for a solicitation from the
// unspecified address (duplicate address detection), to all-nodes without
// it. The Override flag is always set: this host owns the address, and a
// failover must replace whatever MAC a client has cached. (Section 7.2.8
// asks proxies to clear it, but we answer as the owner, not as a proxy
// beside one.)
//
// For a proxied address the advertisement's Target Link-Layer Address
// option names the other host's MAC, and the frame is still from ours. Its
// Override flag is set too, although sections 7.2.4 and 7.2.8 have a proxy
// clear it so as not to override the owner's own answer: the owner is not
// answering (its responder is restarting), the address really lives at
// the MAC we name, and a client holding another MAC for it, stale from
// some earlier owner, must take this one. A solicitation for a proxied
// address from the MAC we would name gets no answer, as in answerARP.
func answerNS(set *addrSet, me *self, in, out []byte) (int, verdict) {
	if len(in) < icmpOff+nsLen || binary.BigEndian.Uint16(in[12:14]) != etherTypeIPv6 || in[etherHdrLen]>>4 != 6 {
		return 0, invalid
	}
	ip := in[etherHdrLen:icmpOff]
	if ip[6] != protoICMPv6 || in[icmpOff] != icmpTypeNS {
		return 0, ignored // other IPv6 traffic; the socket's filter lets none in
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < nsLen || icmpOff+plen > len(in) {
		return 0, invalid
	}
	msg := in[icmpOff : icmpOff+plen] // the frame may carry padding after it
	dstMAC, srcMAC := [macLen]byte(in[0:6]), [macLen]byte(in[6:12])
	if srcMAC[0]&1 != 0 {
		return 0, invalid
	}
	if (dstMAC[0]&1 == 0 && dstMAC != me.mac) || srcMAC == me.mac {
		return 0, ignored
	}
	src, dst, target := [16]byte(ip[8:24]), [16]byte(ip[24:40]), [16]byte(msg[8:24])
	if ip[7] != ndpHopLimit || msg[1] != 0 || target[0] == 0xff || src[0] == 0xff ||
		icmp6Checksum(&src, &dst, msg) != 0 {
		return 0, invalid
	}
	var sll []byte
	for o := msg[nsLen:]; len(o) > 0; {
		if len(o) < 8 || o[1] == 0 || int(o[1])*8 > len(o) {
			return 0, invalid
		}
		n := int(o[1]) * 8
		if o[0] == optSourceLLA && n == 8 {
			sll = o[2:8]
		}
		o = o[n:]
	}
	dad := src == [16]byte{}
	if dad && (!isSolicitedNode(&dst, &target) || sll != nil) {
		return 0, invalid
	}
	if dst != target && !isSolicitedNode(&dst, &target) {
		return 0, ignored
	}
	hw, ok := set.lookup(netip.AddrFrom16(target))
	if !ok {
		return 0, unowned
	}
	if srcMAC == hw {
		return 0, ignored // the host we answer for, asking about its own address
	}
	if dad {
		return buildNA(me, out, &allNodesMAC, &allNodes, &target, &hw, naFlagOverride), answered
	}
	to := srcMAC
	if sll != nil {
		to = [macLen]byte(sll)
		if to[0]&1 != 0 || to == [macLen]byte{} {
			return 0, invalid
		}
	}
	return buildNA(me, out, &to, &src, &target, &hw, naFlagSolicit|naFlagOverride), answered
}

// isSolicitedNode reports whether group is target's solicited-node
// multicast address ff02::1:ffXX:XXXX (RFC 4291 section 2.7.1).
func isSolicitedNode(group, target *[16]byte) bool {
	return [13]byte(group[:13]) == [13]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff} &&
		[3]byte(group[13:]) == [3]byte(target[13:])
}

// solicitedNodeMAC is the Ethernet group of addr's solicited-node address,
// 33:33:ff:XX:XX:XX (RFC 2464 section 7), which the NIC must accept for
// solicitations to reach us.
func solicitedNodeMAC(addr netip.Addr) [macLen]byte {
	a := addr.As16()
	return [macLen]byte{0x33, 0x33, 0xff, a[13], a[14], a[15]}
}

// announceNA writes into out (naFrameLen bytes) an unsolicited Neighbor
// Advertisement for addr (RFC 4861 section 7.2.6): to all-nodes, with the
// Override flag, so that every host that has addr in its cache replaces the
// MAC with ours (section 7.2.5), and hosts that do not, ignore it.
func announceNA(me *self, addr netip.Addr, out []byte) int {
	target := addr.As16()
	return buildNA(me, out, &allNodesMAC, &allNodes, &target, &me.mac, naFlagOverride)
}

// buildNA writes into out (naFrameLen bytes) a Neighbor Advertisement frame
// for target with the given flags and tlla as Target Link-Layer Address
// option, from our MAC and IPv6 source (me.src6, or else target) to dstMAC
// and dst. tlla is separate from the Ethernet source for proxy answers,
// which name another host's MAC from ours.
func buildNA(me *self, out []byte, dstMAC *[macLen]byte, dst, target *[16]byte, tlla *[macLen]byte, flags byte) int {
	_ = out[naFrameLen-1]
	src := *target
	if me.src6.IsValid() {
		src = me.src6.As16()
	}
	copy(out[0:6], dstMAC[:])
	copy(out[6:12], me.mac[:])
	binary.BigEndian.PutUint16(out[12:14], etherTypeIPv6)
	ip := out[etherHdrLen:icmpOff]
	ip[0], ip[1], ip[2], ip[3] = 6<<4, 0, 0, 0 // version, traffic class, flow label
	binary.BigEndian.PutUint16(ip[4:6], naLen)
	ip[6], ip[7] = protoICMPv6, ndpHopLimit
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	m := out[icmpOff:naFrameLen]
	m[0], m[1], m[2], m[3] = icmpTypeNA, 0, 0, 0
	m[4], m[5], m[6], m[7] = flags, 0, 0, 0
	copy(m[8:24], target[:])
	m[24], m[25] = optTargetLLA, 1
	copy(m[26:32], tlla[:])
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(&src, dst, m))
	return naFrameLen
}

// icmp6Checksum is the ICMPv6 checksum of msg between src and dst (RFC 4443
// section 2.3): the Internet checksum (RFC 1071) over the IPv6 pseudo-header
// (RFC 8200 section 8.1) and msg. Over a message that carries a correct
// checksum it is 0.
func icmp6Checksum(src, dst *[16]byte, msg []byte) uint16 {
	sum := uint64(len(msg)) + protoICMPv6
	sum += sum16(src[:]) + sum16(dst[:]) + sum16(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// sum16 adds b up as big-endian 16-bit words, a last odd byte padded with
// zero.
func sum16(b []byte) uint64 {
	var s uint64
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}
