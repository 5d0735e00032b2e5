package l2

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// The fuzz targets feed any bytes to the frame handlers, as anything on the
// LAN may send anything, and check that they never panic, never touch
// their input, and answer only requests for owned or proxied addresses,
// naming the right MAC, with a frame that the mdlayher packages parse.

func FuzzAnswerARP(f *testing.F) {
	for _, seed := range [][]byte{
		arpRequest(ownedIP),
		arpRequest(unownedIP),
		arpRequest(proxiedIP),
		arpFrame(ourMAC, arp.OperationRequest, askerMAC, askerIP, zeroMAC, ownedIP),
		arpFrame(ourMAC, arp.OperationReply, askerMAC, ownedIP, ourMAC, askerIP),
		arpFrame(broadcastMAC, arp.OperationRequest, askerMAC, ownedIP, zeroMAC, ownedIP),
		append(arpRequest(ownedIP), make([]byte, 18)...),
		solicitation(ownedIP6),
		{},
	} {
		f.Add(seed)
	}
	set := testProxySet(f, peerProxies, ownedIP, ownedIP6)
	f.Fuzz(func(t *testing.T, frame []byte) {
		in := slices.Clone(frame)
		out := make([]byte, outBufLen)
		n, v := answerARP(set, testSelf(), frame, out)
		if !bytes.Equal(in, frame) {
			t.Fatalf("answerARP changed its input")
		}
		if (n != 0) != (v == answered) {
			t.Fatalf("answerARP = %d, %v", n, v)
		}
		if v != answered {
			return
		}
		tpa := netip.AddrFrom4([4]byte(frame[etherHdrLen+24 : etherHdrLen+28]))
		hw, ok := set.lookup(tpa)
		if !ok || !tpa.Is4() {
			t.Fatalf("answered a request for unowned %s", tpa)
		}
		var req arp.Packet
		if err := req.UnmarshalBinary(frame[etherHdrLen:]); err != nil || req.Operation != arp.OperationRequest {
			t.Fatalf("answered a frame the arp package reads as %+v, %v", req, err)
		}
		if n != arpFrameLen {
			t.Fatalf("reply of %d bytes", n)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(out[etherHdrLen:n]); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if p.Operation != arp.OperationReply || p.SenderIP != tpa || !bytes.Equal(p.SenderHardwareAddr, hw[:]) ||
			!bytes.Equal(p.TargetHardwareAddr, req.SenderHardwareAddr) || p.TargetIP != req.SenderIP {
			t.Fatalf("reply %+v to request %+v", p, req)
		}
		if out[0]&1 != 0 || !bytes.Equal(out[0:6], req.SenderHardwareAddr) || [macLen]byte(out[6:12]) != ourMAC {
			t.Fatalf("reply sent to %x from %x", out[0:6], out[6:12])
		}
	})
}

func FuzzAnswerNS(f *testing.F) {
	group := solicitedNode(ownedIP6)
	for _, seed := range [][]byte{
		solicitation(ownedIP6),
		solicitation(unowned6),
		solicitation(proxiedIP6),
		nsFrame(askerMAC, ourMAC, askerIP6, ownedIP6, ownedIP6, nil),
		nsFrame(askerMAC, solicitedNodeMAC(ownedIP6), netip.IPv6Unspecified(), group, ownedIP6, nil),
		append(solicitation(ownedIP6), make([]byte, 7)...),
		arpRequest(ownedIP),
		{},
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	set := testProxySet(f, peerProxies, ownedIP, ownedIP6)
	// fix makes the checksum right, so the fuzzer gets past it to explore
	// what lies behind.
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		if fix && len(frame) >= icmpOff+4 {
			if plen := int(binary.BigEndian.Uint16(frame[etherHdrLen+4:])); plen >= 4 && icmpOff+plen <= len(frame) {
				src, dst := [16]byte(frame[etherHdrLen+8:]), [16]byte(frame[etherHdrLen+24:])
				msg := frame[icmpOff : icmpOff+plen]
				msg[2], msg[3] = 0, 0
				binary.BigEndian.PutUint16(msg[2:], icmp6Checksum(&src, &dst, msg))
			}
		}
		in := slices.Clone(frame)
		out := make([]byte, outBufLen)
		n, v := answerNS(set, testSelf(), frame, out)
		if !bytes.Equal(in, frame) {
			t.Fatalf("answerNS changed its input")
		}
		if (n != 0) != (v == answered) {
			t.Fatalf("answerNS = %d, %v", n, v)
		}
		if v != answered {
			return
		}
		plen := int(binary.BigEndian.Uint16(frame[etherHdrLen+4:]))
		msg := frame[icmpOff : icmpOff+plen]
		// Without its options: the ndp package rejects malformed options
		// that a solicitation does not use (such as PREF64, RFC 8781),
		// which RFC 4861 section 4.6 has receivers skip.
		m, err := ndp.ParseMessage(msg[:nsLen])
		if err != nil {
			t.Fatalf("answered a frame the ndp package cannot parse: %v", err)
		}
		ns, ok := m.(*ndp.NeighborSolicitation)
		if !ok {
			t.Fatalf("answered a %T", m)
		}
		hw, ok := set.lookup(ns.TargetAddress)
		if !ok || !ns.TargetAddress.Is6() {
			t.Fatalf("answered a solicitation for unowned %s", ns.TargetAddress)
		}
		if n != naFrameLen {
			t.Fatalf("advertisement of %d bytes", n)
		}
		a, err := ndp.ParseMessage(out[icmpOff:n])
		if err != nil {
			t.Fatalf("advertisement does not parse: %v", err)
		}
		na, ok := a.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != ns.TargetAddress || !na.Override || len(na.Options) != 1 {
			t.Fatalf("answered %+v with %+v", ns, a)
		}
		if lla, ok := na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, hw[:]) {
			t.Fatalf("advertisement for %s names %+v, want %s", ns.TargetAddress, na.Options[0], mac(hw))
		}
		if [macLen]byte(out[6:12]) != ourMAC {
			t.Fatalf("advertisement from %x", out[6:12])
		}
		src, dst := [16]byte(out[etherHdrLen+8:]), [16]byte(out[etherHdrLen+24:])
		if icmp6Checksum(&src, &dst, out[icmpOff:n]) != 0 {
			t.Fatalf("advertisement with a bad checksum")
		}
		if out[0]&1 != 0 && [macLen]byte(out[0:6]) != allNodesMAC {
			t.Fatalf("advertisement sent to group %x", out[0:6])
		}
	})
}
