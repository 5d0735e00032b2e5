package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC    = [macLen]byte{0x02, 0, 0, 0, 0, 0x01}
	askerMAC  = [macLen]byte{0x02, 0, 0, 0, 0, 0x64}
	otherMAC  = [macLen]byte{0x02, 0, 0, 0, 0, 0x99}
	askerIP   = netip.MustParseAddr("198.51.100.100")
	ownedIP   = netip.MustParseAddr("198.51.100.200")
	unownedIP = netip.MustParseAddr("198.51.100.201")
	ourLL     = netip.MustParseAddr("fe80::1")
	askerLL   = netip.MustParseAddr("fe80::64")
	askerIP6  = netip.MustParseAddr("2001:db8:1::64")
	ownedIP6  = netip.MustParseAddr("2001:db8:1::200")
	unowned6  = netip.MustParseAddr("2001:db8:1::201")
	zeroMAC   = [macLen]byte{}

	// A peer node whose addresses we answer for (SetProxied).
	peerMAC     = [macLen]byte{0x02, 0, 0, 0, 0, 0x42}
	proxiedIP   = netip.MustParseAddr("198.51.100.210")
	proxiedIP6  = netip.MustParseAddr("2001:db8:1::210")
	proxiedLL   = netip.MustParseAddr("fe80::42")
	peerProxies = map[netip.Addr][macLen]byte{proxiedIP: peerMAC, proxiedIP6: peerMAC, ownedIP: peerMAC, ownedIP6: peerMAC}
)

func testSet(t testing.TB, addrs ...netip.Addr) *addrSet {
	t.Helper()
	s, err := newAddrSet(addrs, ourMAC, func(netip.Addr) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testProxySet is testSet(owned...) that also answers for proxied, as
// SetProxied(proxied) would.
func testProxySet(t testing.TB, proxied map[netip.Addr][macLen]byte, owned ...netip.Addr) *addrSet {
	t.Helper()
	m := map[netip.Addr]net.HardwareAddr{}
	for a, hw := range proxied {
		m[a] = mac(hw)
	}
	p, err := validProxied(m, func(netip.Addr) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return testSet(t, owned...).withProxied(p, ourMAC)
}

func testSelf() *self { return &self{mac: ourMAC, src6: ourLL} }

func TestAnswerARP(t *testing.T) {
	set := testSet(t, ownedIP, ownedIP6)
	req := func(dst [macLen]byte, tpa netip.Addr) []byte {
		return arpFrame(dst, arp.OperationRequest, askerMAC, askerIP, zeroMAC, tpa)
	}
	mutate := func(f []byte, fn func([]byte)) []byte { fn(f); return f }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  verdict
		spa   netip.Addr // the asker's IP the reply must target
	}{
		{"broadcast request for owned", req(broadcastMAC, ownedIP), answered, askerIP},
		{"unicast request to us", req(ourMAC, ownedIP), answered, askerIP},
		{"padded to 60 bytes", append(req(broadcastMAC, ownedIP), make([]byte, 18)...), answered, askerIP},
		{"probe from 0.0.0.0 (RFC 5227)", arpFrame(broadcastMAC, arp.OperationRequest, askerMAC, netip.IPv4Unspecified(), zeroMAC, ownedIP), answered, netip.IPv4Unspecified()},
		{"request for unowned", req(broadcastMAC, unownedIP), unowned, netip.Addr{}},
		{"unicast request to another MAC", req(otherMAC, ownedIP), ignored, netip.Addr{}},
		{"reply", arpFrame(ourMAC, arp.OperationReply, askerMAC, ownedIP, ourMAC, askerIP), ignored, netip.Addr{}},
		{"announcement of owned", arpFrame(broadcastMAC, arp.OperationRequest, askerMAC, ownedIP, zeroMAC, ownedIP), ignored, netip.Addr{}},
		{"our own frame", arpFrame(broadcastMAC, arp.OperationRequest, ourMAC, askerIP, zeroMAC, ownedIP), ignored, netip.Addr{}},
		{"not Ethernet hardware", mutate(req(broadcastMAC, ownedIP), func(f []byte) { f[etherHdrLen+1] = 6 }), ignored, netip.Addr{}},
		{"not IPv4", mutate(req(broadcastMAC, ownedIP), func(f []byte) { f[etherHdrLen+2] = 0x86 }), ignored, netip.Addr{}},
		{"group sender MAC", mutate(req(broadcastMAC, ownedIP), func(f []byte) { f[etherHdrLen+8] |= 1 }), invalid, netip.Addr{}},
		{"zero sender MAC", mutate(req(broadcastMAC, ownedIP), func(f []byte) { clear(f[etherHdrLen+8 : etherHdrLen+14]) }), invalid, netip.Addr{}},
		{"truncated", req(broadcastMAC, ownedIP)[:41], invalid, netip.Addr{}},
		{"wrong EtherType", mutate(req(broadcastMAC, ownedIP), func(f []byte) { f[12] = 0x08; f[13] = 0 }), invalid, netip.Addr{}},
		{"empty", nil, invalid, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, outBufLen)
			n, v := answerARP(set, testSelf(), tc.frame, out)
			if v != tc.want || (n != 0) != (v == answered) {
				t.Fatalf("answerARP = %d, %v; want verdict %v", n, v, tc.want)
			}
			if v != answered {
				return
			}
			checkARPReply(t, out[:n], ownedIP, askerMAC, tc.spa)
		})
	}
}

// checkARPReply parses reply with the arp package and checks every field.
func checkARPReply(t *testing.T, reply []byte, target netip.Addr, askerMAC [macLen]byte, askerIP netip.Addr) {
	t.Helper()
	checkARPReplyNaming(t, reply, target, ourMAC, askerMAC, askerIP)
}

// checkARPReplyNaming is checkARPReply for a reply that claims target is at
// sha, from our MAC.
func checkARPReplyNaming(t *testing.T, reply []byte, target netip.Addr, sha, askerMAC [macLen]byte, askerIP netip.Addr) {
	t.Helper()
	if got := [macLen]byte(reply[0:6]); got != askerMAC {
		t.Errorf("Ethernet destination %s, want the asker %s", mac(got), mac(askerMAC))
	}
	if got := [macLen]byte(reply[6:12]); got != ourMAC {
		t.Errorf("Ethernet source %s, want ours %s", mac(got), mac(ourMAC))
	}
	if et := binary.BigEndian.Uint16(reply[12:14]); et != etherTypeARP {
		t.Errorf("EtherType %#x, want ARP", et)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(reply[etherHdrLen:]); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	want := arp.Packet{
		HardwareType:       1,
		ProtocolType:       etherTypeIPv4,
		HardwareAddrLength: 6,
		IPLength:           4,
		Operation:          arp.OperationReply,
		SenderHardwareAddr: mac(sha),
		SenderIP:           target,
		TargetHardwareAddr: mac(askerMAC),
		TargetIP:           askerIP,
	}
	if diff := cmp.Diff(want, p, equateAddrs); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
}

func mac(m [macLen]byte) net.HardwareAddr { return net.HardwareAddr(m[:]) }

func TestAnswerNS(t *testing.T) {
	set := testSet(t, ownedIP, ownedIP6)
	group := solicitedNode(ownedIP6)
	groupMAC := solicitedNodeMAC(ownedIP6)
	multicastNS := func() []byte { return nsFrame(askerMAC, groupMAC, askerLL, group, ownedIP6, askerMAC[:]) }
	mutate := func(f []byte, fn func([]byte)) []byte { fn(f); return f }
	// reChecksum recomputes the ICMPv6 checksum after a mutation, so that
	// the mutation is what the test exercises.
	reChecksum := func(f []byte) []byte {
		src, dst := [16]byte(f[etherHdrLen+8:]), [16]byte(f[etherHdrLen+24:])
		plen := int(binary.BigEndian.Uint16(f[etherHdrLen+4:]))
		msg := f[icmpOff : icmpOff+plen]
		msg[2], msg[3] = 0, 0
		binary.BigEndian.PutUint16(msg[2:], icmp6Checksum(&src, &dst, msg))
		return f
	}
	type want struct {
		verdict verdict
		dstMAC  [macLen]byte
		dst     netip.Addr
		flags   byte
	}
	solicited := want{answered, askerMAC, askerLL, naFlagSolicit | naFlagOverride}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  want
	}{
		{"to solicited-node group", multicastNS(), solicited},
		{"padded", append(multicastNS(), make([]byte, 10)...), solicited},
		{"unicast without source option", nsFrame(askerMAC, ourMAC, askerIP6, ownedIP6, ownedIP6, nil), want{answered, askerMAC, askerIP6, naFlagSolicit | naFlagOverride}},
		{"source option wins over Ethernet source", nsFrame(otherMAC, groupMAC, askerLL, group, ownedIP6, askerMAC[:]), solicited},
		{"duplicate address detection", nsFrame(askerMAC, groupMAC, netip.IPv6Unspecified(), group, ownedIP6, nil), want{answered, allNodesMAC, netip.AddrFrom16(allNodes), naFlagOverride}},
		{"unowned target", nsFrame(askerMAC, solicitedNodeMAC(unowned6), askerLL, solicitedNode(unowned6), unowned6, askerMAC[:]), want{verdict: unowned}},
		{"IPv4-mapped owned IPv4 target", mutate(nsFrame(askerMAC, ourMAC, askerLL, ownedIP6, ownedIP6, nil), func(f []byte) {
			mapped := netip.AddrFrom16(ownedIP.As16()).As16()
			copy(f[etherHdrLen+24:], mapped[:])
			copy(f[icmpOff+8:], mapped[:])
			reChecksum(f)
		}), want{verdict: unowned}},
		{"wrong group", nsFrame(askerMAC, groupMAC, askerLL, solicitedNode(unowned6), ownedIP6, askerMAC[:]), want{verdict: ignored}},
		{"to all-nodes", nsFrame(askerMAC, allNodesMAC, askerLL, netip.AddrFrom16(allNodes), ownedIP6, askerMAC[:]), want{verdict: ignored}},
		{"unicast to another MAC", nsFrame(askerMAC, otherMAC, askerIP6, ownedIP6, ownedIP6, nil), want{verdict: ignored}},
		{"our own frame", nsFrame(ourMAC, groupMAC, ourLL, group, ownedIP6, ourMAC[:]), want{verdict: ignored}},
		{"advertisement", mutate(multicastNS(), func(f []byte) { f[icmpOff] = icmpTypeNA; reChecksum(f) }), want{verdict: ignored}},
		{"not ICMPv6", mutate(multicastNS(), func(f []byte) { f[etherHdrLen+6] = 17 }), want{verdict: ignored}},
		{"hop limit 254", mutate(multicastNS(), func(f []byte) { f[etherHdrLen+7] = 254 }), want{verdict: invalid}},
		{"bad checksum", mutate(multicastNS(), func(f []byte) { f[icmpOff+2] ^= 1 }), want{verdict: invalid}},
		{"code 1", mutate(multicastNS(), func(f []byte) { f[icmpOff+1] = 1; reChecksum(f) }), want{verdict: invalid}},
		{"multicast target", nsFrame(askerMAC, groupMAC, askerLL, group, netip.MustParseAddr("ff02::1:ff00:200"), askerMAC[:]), want{verdict: invalid}},
		{"multicast source", nsFrame(askerMAC, groupMAC, netip.MustParseAddr("ff02::1"), group, ownedIP6, askerMAC[:]), want{verdict: invalid}},
		{"option of length 0", mutate(multicastNS(), func(f []byte) { f[icmpOff+nsLen+1] = 0; reChecksum(f) }), want{verdict: invalid}},
		{"option longer than message", mutate(multicastNS(), func(f []byte) { f[icmpOff+nsLen+1] = 2; reChecksum(f) }), want{verdict: invalid}},
		{"DAD with source option", nsFrame(askerMAC, groupMAC, netip.IPv6Unspecified(), group, ownedIP6, askerMAC[:]), want{verdict: invalid}},
		{"DAD not to the group", nsFrame(askerMAC, ourMAC, netip.IPv6Unspecified(), ownedIP6, ownedIP6, nil), want{verdict: invalid}},
		{"group source option", nsFrame(askerMAC, groupMAC, askerLL, group, ownedIP6, []byte{1, 0, 0, 0, 0, 1}), want{verdict: invalid}},
		{"group Ethernet source", mutate(multicastNS(), func(f []byte) { f[6] |= 1 }), want{verdict: invalid}},
		{"payload length beyond frame", mutate(multicastNS(), func(f []byte) { binary.BigEndian.PutUint16(f[etherHdrLen+4:], 200) }), want{verdict: invalid}},
		{"payload length too short", mutate(multicastNS(), func(f []byte) { binary.BigEndian.PutUint16(f[etherHdrLen+4:], 16) }), want{verdict: invalid}},
		{"IPv4 in the IPv6 EtherType", mutate(multicastNS(), func(f []byte) { f[etherHdrLen] = 0x45 }), want{verdict: invalid}},
		{"truncated", multicastNS()[:icmpOff+10], want{verdict: invalid}},
		{"empty", nil, want{verdict: invalid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, outBufLen)
			n, v := answerNS(set, testSelf(), tc.frame, out)
			if v != tc.want.verdict || (n != 0) != (v == answered) {
				t.Fatalf("answerNS = %d, %v; want verdict %v", n, v, tc.want.verdict)
			}
			if v != answered {
				return
			}
			checkNA(t, out[:n], tc.want.dstMAC, ourLL, tc.want.dst, ownedIP6, tc.want.flags)
		})
	}
}

// checkNA parses a Neighbor Advertisement frame, with the ndp package for
// the message, and checks every field, the checksum included.
func checkNA(t *testing.T, f []byte, dstMAC [macLen]byte, src, dst, target netip.Addr, flags byte) {
	t.Helper()
	checkNANaming(t, f, dstMAC, src, dst, target, ourMAC, flags)
}

// checkNANaming is checkNA for an advertisement whose Target Link-Layer
// Address option is tlla, from our MAC.
func checkNANaming(t *testing.T, f []byte, dstMAC [macLen]byte, src, dst, target netip.Addr, tlla [macLen]byte, flags byte) {
	t.Helper()
	if len(f) != naFrameLen {
		t.Fatalf("advertisement of %d bytes, want %d", len(f), naFrameLen)
	}
	if got := [macLen]byte(f[0:6]); got != dstMAC {
		t.Errorf("Ethernet destination %s, want %s", mac(got), mac(dstMAC))
	}
	if got := [macLen]byte(f[6:12]); got != ourMAC {
		t.Errorf("Ethernet source %s, want ours %s", mac(got), mac(ourMAC))
	}
	ip := f[etherHdrLen:icmpOff]
	gotHdr := []any{binary.BigEndian.Uint16(f[12:14]), ip[0], binary.BigEndian.Uint16(ip[4:6]), ip[6], ip[7],
		netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))}
	wantHdr := []any{uint16(etherTypeIPv6), byte(0x60), uint16(naLen), byte(protoICMPv6), byte(255), src, dst}
	if diff := cmp.Diff(wantHdr, gotHdr, equateAddrs); diff != "" {
		t.Errorf("EtherType, IPv6 version, payload length, next header, hop limit, source, destination (-want +got):\n%s", diff)
	}
	m, err := ndp.ParseMessage(f[icmpOff:])
	if err != nil {
		t.Fatalf("advertisement does not parse: %v", err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("got a %T, want a Neighbor Advertisement", m)
	}
	want := &ndp.NeighborAdvertisement{
		Solicited:     flags&naFlagSolicit != 0,
		Override:      flags&naFlagOverride != 0,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac(tlla)}},
	}
	if diff := cmp.Diff(want, na, equateAddrs); diff != "" {
		t.Errorf("advertisement (-want +got):\n%s", diff)
	}
	// The checksum, computed by the ndp package from scratch.
	again, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, f[icmpOff:]) {
		t.Errorf("ICMPv6 message\n%x, the ndp package marshals it (with checksum) as\n%x", f[icmpOff:], again)
	}
}

// TestAnswerProxied: a request for a proxied address is answered naming
// the peer's MAC in the ARP payload or Target Link-Layer Address option,
// always from our Ethernet address; an address also owned is answered as
// ours; and the peer itself asking about its address gets no answer.
func TestAnswerProxied(t *testing.T) {
	// ownedIP and ownedIP6 are proxied too: owned wins.
	set := testProxySet(t, peerProxies, ownedIP, ownedIP6)
	group6 := solicitedNode(proxiedIP6)
	groupMAC6 := solicitedNodeMAC(proxiedIP6)
	dad := func(srcMAC [macLen]byte, target netip.Addr) []byte {
		return nsFrame(srcMAC, solicitedNodeMAC(target), netip.IPv6Unspecified(), solicitedNode(target), target, nil)
	}
	allNodesIP := netip.AddrFrom16(allNodes)
	type want struct {
		verdict verdict
		named   [macLen]byte // sha or TLLA
		dstMAC  [macLen]byte
		dst     netip.Addr // the reply's target IP (ARP) or IPv6 destination
		flags   byte       // NDP
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  want
	}{
		{"ARP request for proxied", arpRequest(proxiedIP), want{answered, peerMAC, askerMAC, askerIP, 0}},
		{"ARP unicast request to us for proxied", arpFrame(ourMAC, arp.OperationRequest, askerMAC, askerIP, zeroMAC, proxiedIP), want{answered, peerMAC, askerMAC, askerIP, 0}},
		{"ARP probe for proxied", arpFrame(broadcastMAC, arp.OperationRequest, askerMAC, netip.IPv4Unspecified(), zeroMAC, proxiedIP), want{answered, peerMAC, askerMAC, netip.IPv4Unspecified(), 0}},
		{"ARP request for owned and proxied", arpRequest(ownedIP), want{answered, ourMAC, askerMAC, askerIP, 0}},
		{"ARP request from the peer", arpFrame(broadcastMAC, arp.OperationRequest, peerMAC, netip.MustParseAddr("198.51.100.42"), zeroMAC, proxiedIP), want{verdict: ignored}},
		{"ARP probe from the peer", arpFrame(broadcastMAC, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, proxiedIP), want{verdict: ignored}},
		{"ARP request from the peer for owned", arpFrame(broadcastMAC, arp.OperationRequest, peerMAC, netip.MustParseAddr("198.51.100.42"), zeroMAC, ownedIP), want{answered, ourMAC, peerMAC, netip.MustParseAddr("198.51.100.42"), 0}},
		{"NS for proxied", solicitation(proxiedIP6), want{answered, peerMAC, askerMAC, askerLL, naFlagSolicit | naFlagOverride}},
		{"unicast NS for proxied", nsFrame(askerMAC, ourMAC, askerIP6, proxiedIP6, proxiedIP6, nil), want{answered, peerMAC, askerMAC, askerIP6, naFlagSolicit | naFlagOverride}},
		{"DAD for proxied", dad(askerMAC, proxiedIP6), want{answered, peerMAC, allNodesMAC, allNodesIP, naFlagOverride}},
		{"NS for owned and proxied", solicitation(ownedIP6), want{answered, ourMAC, askerMAC, askerLL, naFlagSolicit | naFlagOverride}},
		{"DAD from the peer", dad(peerMAC, proxiedIP6), want{verdict: ignored}},
		{"NS from the peer", nsFrame(peerMAC, groupMAC6, proxiedLL, group6, proxiedIP6, peerMAC[:]), want{verdict: ignored}},
		{"DAD from the peer for owned", dad(peerMAC, ownedIP6), want{answered, ourMAC, allNodesMAC, allNodesIP, naFlagOverride}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer, target := answerFunc(answerARP), netip.AddrFrom4([4]byte(tc.frame[etherHdrLen+24:]))
			if binary.BigEndian.Uint16(tc.frame[12:14]) == etherTypeIPv6 {
				answer, target = answerNS, netip.AddrFrom16([16]byte(tc.frame[icmpOff+8:]))
			}
			out := make([]byte, outBufLen)
			n, v := answer(set, testSelf(), tc.frame, out)
			if v != tc.want.verdict || (n != 0) != (v == answered) {
				t.Fatalf("answer = %d, %v; want verdict %v", n, v, tc.want.verdict)
			}
			switch {
			case v != answered:
			case target.Is4():
				checkARPReplyNaming(t, out[:n], target, tc.want.named, tc.want.dstMAC, tc.want.dst)
			default:
				checkNANaming(t, out[:n], tc.want.dstMAC, ourLL, tc.want.dst, target, tc.want.named, tc.want.flags)
			}
		})
	}
}

func TestAnnounceARP(t *testing.T) {
	out := make([]byte, outBufLen)
	n := announceARP(testSelf(), ownedIP, out)
	f := out[:n]
	if got := [macLen]byte(f[0:6]); got != broadcastMAC {
		t.Errorf("Ethernet destination %s, want broadcast", mac(got))
	}
	if got := [macLen]byte(f[6:12]); got != ourMAC {
		t.Errorf("Ethernet source %s, want ours", mac(got))
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f[etherHdrLen:]); err != nil {
		t.Fatal(err)
	}
	want := arp.Packet{
		HardwareType: 1, ProtocolType: etherTypeIPv4, HardwareAddrLength: 6, IPLength: 4,
		Operation:          arp.OperationRequest,
		SenderHardwareAddr: mac(ourMAC),
		SenderIP:           ownedIP,
		TargetHardwareAddr: mac(zeroMAC),
		TargetIP:           ownedIP,
	}
	if diff := cmp.Diff(want, p, equateAddrs); diff != "" {
		t.Errorf("announcement (-want +got):\n%s", diff)
	}
	// Not a question: our own answerer ignores it.
	if _, v := answerARP(testSet(t, ownedIP), &self{mac: otherMAC}, f, make([]byte, outBufLen)); v != ignored {
		t.Errorf("another responder's verdict on the announcement: %v, want ignored", v)
	}
}

func TestAnnounceNA(t *testing.T) {
	for _, tc := range []struct {
		name string
		me   *self
		src  netip.Addr
	}{
		{"from link-local", testSelf(), ourLL},
		{"from the target", &self{mac: ourMAC}, ownedIP6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, outBufLen)
			n := announceNA(tc.me, ownedIP6, out)
			checkNA(t, out[:n], allNodesMAC, tc.src, netip.MustParseAddr("ff02::1"), ownedIP6, naFlagOverride)
		})
	}
}

func TestSolicitedNode(t *testing.T) {
	for _, a := range []netip.Addr{ownedIP6, netip.MustParseAddr("2001:db8::abcd:ef12"), netip.MustParseAddr("fe80::1")} {
		g := solicitedNode(a)
		g16, a16 := g.As16(), a.As16()
		if !isSolicitedNode(&g16, &a16) {
			t.Errorf("isSolicitedNode(%s, %s) = false", g, a)
		}
		if m, want := solicitedNodeMAC(a), [macLen]byte{0x33, 0x33, g16[12], g16[13], g16[14], g16[15]}; m != want {
			t.Errorf("solicitedNodeMAC(%s) = %s, want %s", a, mac(m), mac(want))
		}
		o16 := netip.MustParseAddr("2001:db8::1:2:3").As16()
		if isSolicitedNode(&g16, &o16) {
			t.Errorf("%s is taken for the solicited-node address of 2001:db8::1:2:3", g)
		}
	}
}

// TestAnswerAllocs holds the hot path to its promise: no allocation.
func TestAnswerAllocs(t *testing.T) {
	me := testSelf()
	out := make([]byte, outBufLen)
	for name, tc := range answerCases(t) {
		if n := testing.AllocsPerRun(100, func() {
			if _, v := tc.answer(tc.set, me, tc.frame, out); v != answered {
				t.Fatalf("%s: verdict %v", name, v)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per answer, want 0", name, n)
		}
	}
}

// answerCase is a request and the set that answers it, for
// TestAnswerAllocs and BenchmarkAnswer.
type answerCase struct {
	set    *addrSet
	answer answerFunc
	frame  []byte
}

// answerCases are requests for an owned address ("ARP", "NDP", on a set
// without proxied addresses) and for a proxied one.
func answerCases(t testing.TB) map[string]answerCase {
	owned := testSet(t, ownedIP, ownedIP6)
	proxied := testProxySet(t, peerProxies, ownedIP, ownedIP6)
	return map[string]answerCase{
		"ARP":        {owned, answerARP, arpRequest(ownedIP)},
		"NDP":        {owned, answerNS, solicitation(ownedIP6)},
		"ARPProxied": {proxied, answerARP, arpRequest(proxiedIP)},
		"NDPProxied": {proxied, answerNS, solicitation(proxiedIP6)},
	}
}

func BenchmarkAnswer(b *testing.B) {
	me := testSelf()
	out := make([]byte, outBufLen)
	for name, tc := range answerCases(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.answer(tc.set, me, tc.frame, out)
			}
		})
	}
}
