package l2

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// lanConn is a fake packet socket on a LAN of fake hosts: every frame
// written is recorded with its (synctest) time and shown to hear, whose
// frames, delivered after delay, are what ReadFrom returns. Read
// deadlines work as on a real socket. Create it inside the synctest
// bubble that uses it.
type lanConn struct {
	nopConn
	hear  func(frame []byte) [][]byte
	delay time.Duration
	in    chan []byte

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced when the deadline changes
	sent     []sentFrame
	closed   bool
}

func newLANConn(hear func([]byte) [][]byte) *lanConn {
	return &lanConn{hear: hear, in: make(chan []byte, 64), changed: make(chan struct{})}
}

func (c *lanConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, sentFrame{at: time.Now(), frame: slices.Clone(b)})
	c.mu.Unlock()
	if c.hear != nil {
		for _, f := range c.hear(slices.Clone(b)) {
			time.AfterFunc(c.delay, func() { c.in <- f })
		}
	}
	return len(b), nil
}

func (c *lanConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, changed := c.deadline, c.changed
		c.mu.Unlock()
		var expire <-chan time.Time
		if !dl.IsZero() {
			if !dl.After(time.Now()) {
				return readErr(os.ErrDeadlineExceeded)
			}
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			expire = t.C
		}
		select {
		case f := <-c.in:
			return copy(b, f), nil, nil
		case <-expire:
			return readErr(os.ErrDeadlineExceeded)
		case <-changed:
		}
	}
}

func (c *lanConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

func (c *lanConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *lanConn) takeSent() []sentFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

// holderMAC is the fake LAN's host that holds vip4a and vip6a.
var holderMAC = [macLen]byte{0x02, 0, 0, 0, 0, 0x99}

// holderARP answers an ARP Probe for vip4a as Linux does: an ARP reply
// from holderMAC, unicast to the prober, its target IP 0.0.0.0.
func holderARP(f []byte) [][]byte {
	p, err := parseARP(f)
	if err != nil || p.Operation != arp.OperationRequest || p.TargetIP != vip4a {
		return nil
	}
	return [][]byte{arpFrame([macLen]byte(p.SenderHardwareAddr), arp.OperationReply, holderMAC, vip4a, [macLen]byte(p.SenderHardwareAddr), p.SenderIP)}
}

// holderNDP answers a duplicate address detection solicitation for vip6a
// as Linux does: a Neighbor Advertisement to all-nodes with the Override
// flag and holderMAC in its Target Link-Layer Address option.
func holderNDP(f []byte) [][]byte {
	m, err := ndp.ParseMessage(f[icmpOff:])
	ns, ok := m.(*ndp.NeighborSolicitation)
	if err != nil || !ok || ns.TargetAddress != vip6a {
		return nil
	}
	return [][]byte{naFrame(holderMAC, netip.MustParseAddr("fe80::99"), vip6a, holderMAC, ndpHopLimit)}
}

// naFrame is a Neighbor Advertisement for target to all-nodes, from
// srcMAC and src, naming tlla.
func naFrame(srcMAC [macLen]byte, src, target netip.Addr, tlla [macLen]byte, hops byte) []byte {
	na := &ndp.NeighborAdvertisement{Override: true, TargetAddress: target, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: net.HardwareAddr(tlla[:])},
	}}
	dst := netip.IPv6LinkLocalAllNodes()
	icmp, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil {
		panic(err)
	}
	return ipv6Frame(srcMAC, allNodesMAC, src, dst, hops, icmp)
}

// parseARP parses the ARP packet in an Ethernet frame.
func parseARP(f []byte) (*arp.Packet, error) {
	p := new(arp.Packet)
	return p, p.UnmarshalBinary(f[etherHdrLen:])
}

func newFakeProber(t *testing.T, arpConn, ndpConn net.PacketConn) *Prober {
	t.Helper()
	p, err := NewProberWithConns(ProbeConns{HardwareAddr: mac(ourMAC), ARP: arpConn, NDP: ndpConn}, ProbeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProbe: a probe finds the host holding an address, and only for that
// address; it sends DefaultProbeCount well-formed probes per address,
// DefaultProbeInterval apart, and takes Duration.
func TestProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arpConn, ndpConn := newLANConn(holderARP), newLANConn(holderNDP)
		arpConn.delay, ndpConn.delay = time.Millisecond, time.Millisecond
		p := newFakeProber(t, arpConn, ndpConn)
		start := time.Now()
		got, err := p.Probe(t.Context(), []netip.Addr{vip4a, vip4b, vip6a, vip6b})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != p.Duration() || took != 250*time.Millisecond {
			t.Errorf("Probe took %v, Duration says %v; want 250ms", took, p.Duration())
		}
		want := map[netip.Addr][]net.HardwareAddr{vip4a: {mac(holderMAC)}, vip6a: {mac(holderMAC)}}
		if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
			t.Errorf("claims (-want +got):\n%s", diff)
		}

		// The ARP Probes (RFC 5227 section 2.1.1).
		sent := arpConn.takeSent()
		if len(sent) != 4 {
			t.Fatalf("%d ARP frames sent, want 2 for each of 2 addresses", len(sent))
		}
		for i, s := range sent {
			if wantAt := start.Add(time.Duration(i/2) * DefaultProbeInterval); !s.at.Equal(wantAt) {
				t.Errorf("probe %d sent at +%v, want +%v", i, s.at.Sub(start), wantAt.Sub(start))
			}
			p, err := parseARP(s.frame)
			if err != nil {
				t.Fatal(err)
			}
			if [macLen]byte(s.frame[0:6]) != broadcastMAC || [macLen]byte(s.frame[6:12]) != ourMAC ||
				p.Operation != arp.OperationRequest || p.SenderIP != netip.IPv4Unspecified() ||
				[macLen]byte(p.SenderHardwareAddr) != ourMAC || [macLen]byte(p.TargetHardwareAddr) != zeroMAC ||
				p.TargetIP != []netip.Addr{vip4a, vip4b}[i%2] {
				t.Errorf("probe %d: %x: %+v", i, s.frame, p)
			}
		}
		// The solicitations of duplicate address detection (RFC 4862
		// section 5.4.2).
		sent = ndpConn.takeSent()
		if len(sent) != 4 {
			t.Fatalf("%d NDP frames sent, want 2 for each of 2 addresses", len(sent))
		}
		for i, s := range sent {
			target := []netip.Addr{vip6a, vip6b}[i%2]
			f := s.frame
			src, dst := [16]byte(f[etherHdrLen+8:etherHdrLen+24]), [16]byte(f[etherHdrLen+24:icmpOff])
			m, err := ndp.ParseMessage(f[icmpOff:])
			if err != nil {
				t.Fatal(err)
			}
			ns, ok := m.(*ndp.NeighborSolicitation)
			if !ok || ns.TargetAddress != target || len(ns.Options) != 0 ||
				src != [16]byte{} || netip.AddrFrom16(dst) != solicitedNode(target) ||
				[macLen]byte(f[0:6]) != solicitedNodeMAC(target) || f[etherHdrLen+7] != ndpHopLimit ||
				icmp6Checksum(&src, &dst, f[icmpOff:]) != 0 {
				t.Errorf("solicitation %d: %x: %+v", i, f, m)
			}
		}
	})
}

// TestProbeIgnores: what is not another host claiming a probed address
// is no conflict: our own frames (a packet socket sees what the node
// sends), answers naming our MAC, announcements of other addresses,
// invalid advertisements, and answers after the wait.
func TestProbeIgnores(t *testing.T) {
	other := netip.MustParseAddr("198.51.100.77")
	for _, tc := range []struct {
		name  string
		delay time.Duration
		arp   func([]byte) [][]byte
		ndp   func([]byte) [][]byte
	}{
		{name: "own announcement", arp: func([]byte) [][]byte {
			return [][]byte{arpFrame(broadcastMAC, arp.OperationRequest, ourMAC, vip4a, zeroMAC, vip4a)}
		}},
		{name: "own probe echoed", arp: func(f []byte) [][]byte { return [][]byte{f} }, ndp: func(f []byte) [][]byte { return [][]byte{f} }},
		{name: "another address", arp: func([]byte) [][]byte {
			return [][]byte{arpFrame(broadcastMAC, arp.OperationRequest, holderMAC, other, zeroMAC, other)}
		}},
		{name: "advertisement naming us", ndp: func([]byte) [][]byte {
			return [][]byte{naFrame(holderMAC, netip.MustParseAddr("fe80::99"), vip6a, ourMAC, ndpHopLimit)}
		}},
		{name: "advertisement from off-link", ndp: func([]byte) [][]byte {
			return [][]byte{naFrame(holderMAC, netip.MustParseAddr("fe80::99"), vip6a, holderMAC, 64)}
		}},
		{name: "too late", delay: DefaultProbeInterval + DefaultProbeWait + time.Millisecond, arp: holderARP, ndp: holderNDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				arpConn, ndpConn := newLANConn(tc.arp), newLANConn(tc.ndp)
				arpConn.delay, ndpConn.delay = tc.delay, tc.delay
				p := newFakeProber(t, arpConn, ndpConn)
				got, err := p.Probe(t.Context(), []netip.Addr{vip4a, vip6a})
				if err != nil || len(got) != 0 {
					t.Errorf("Probe: %v, %v; want no claim", got, err)
				}
			})
		})
	}
}

// TestProbeRequestClaims: an ARP request whose sender IP is the probed
// address (the holder resolving some neighbour) claims it too (RFC 5227
// section 2.1.1).
func TestProbeRequestClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arpConn := newLANConn(func([]byte) [][]byte {
			return [][]byte{arpFrame(broadcastMAC, arp.OperationRequest, holderMAC, vip4a, zeroMAC, askerIP)}
		})
		p := newFakeProber(t, arpConn, nil)
		got, err := p.Probe(t.Context(), []netip.Addr{vip4a})
		if want := map[netip.Addr][]net.HardwareAddr{vip4a: {mac(holderMAC)}}; err != nil || !cmp.Equal(want, got, equateAddrs) {
			t.Errorf("Probe: %v, %v; want %v", got, err, want)
		}
	})
}

func TestProbeErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arpConn := newLANConn(nil)
		p := newFakeProber(t, arpConn, nil)
		if _, err := p.Probe(t.Context(), []netip.Addr{vip6a}); !errors.Is(err, ErrFamily) {
			t.Errorf("IPv6 without a socket: %v, want ErrFamily", err)
		}
		if _, err := p.Probe(t.Context(), []netip.Addr{vip4a, netip.IPv4Unspecified()}); !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("0.0.0.0: %v, want ErrInvalidAddr", err)
		}
		if len(arpConn.takeSent()) != 0 {
			t.Error("a failed Probe sent probes")
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		if _, err := p.Probe(ctx, []netip.Addr{vip4a}); !errors.Is(err, context.Canceled) || time.Since(start) != 10*time.Millisecond {
			t.Errorf("cancelled after 10ms: %v after %v", err, time.Since(start))
		}
		if _, err := NewProberWithConns(ProbeConns{HardwareAddr: mac(ourMAC)}, ProbeOptions{}); !errors.Is(err, ErrNoConns) {
			t.Errorf("no sockets: %v, want ErrNoConns", err)
		}
	})
}
