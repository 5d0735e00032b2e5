package labnet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ICMP echo types (RFC 792, RFC 4443).
const (
	icmpv4EchoRequest = 8
	icmpv4EchoReply   = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// defaultPingTimeout bounds Ping when ctx has no deadline.
const defaultPingTimeout = time.Second

// Ping sends one ICMP or ICMPv6 echo request to target from the host and
// returns the round-trip time of the matching reply. It fails if none
// arrives before ctx's deadline (one second if ctx has none). The lab has no
// ping binary to rely on, hence this.
func (h *Host) Ping(ctx context.Context, target netip.Addr) (time.Duration, error) {
	target = target.Unmap()
	network, reqType, replyType := "ip4:icmp", byte(icmpv4EchoRequest), byte(icmpv4EchoReply)
	if target.Is6() {
		network, reqType, replyType = "ip6:ipv6-icmp", icmpv6EchoRequest, icmpv6EchoReply
	}
	var conn net.PacketConn
	err := h.Do(func() (err error) {
		conn, err = net.ListenPacket(network, "")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", target, err)
	}
	defer conn.Close()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultPingTimeout)
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	const seq = 1
	msg := []byte{reqType, 0, 0, 0, idb[0], idb[1], 0, seq, 'i', 'r', 'o', 'n', 'l', 'b'}
	if target.Is4() {
		// The kernel computes ICMPv6 checksums on raw sockets itself
		// (RFC 3542, section 3.1), but not ICMPv4 ones.
		binary.BigEndian.PutUint16(msg[2:], inetChecksum(msg))
	}
	sent := time.Now()
	if _, err := conn.WriteTo(msg, &net.IPAddr{IP: target.AsSlice()}); err != nil {
		return 0, fmt.Errorf("%s: ping %s: %w", h.Name, target, err)
	}
	buf := make([]byte, 1500)
	for {
		// Go strips the IPv4 header from raw ICMP reads; ICMPv6 raw
		// sockets never include the IPv6 header.
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			return 0, fmt.Errorf("%s: ping %s: no reply: %w", h.Name, target, err)
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		b := buf[:n]
		if len(b) < 8 || src.Unmap() != target || b[0] != replyType ||
			binary.BigEndian.Uint16(b[4:]) != id || binary.BigEndian.Uint16(b[6:]) != seq {
			continue // someone else's ICMP traffic
		}
		return time.Since(sent), nil
	}
}

// inetChecksum is the Internet checksum of b (RFC 1071).
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
