package l2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// Address conflict detection: before a node first answers for an address,
// and now and then while it does, it asks the LAN whether another host
// already holds the address, the way a host does before it configures one.
//
//   - IPv4: an ARP Probe (RFC 5227 section 2.1.1): a broadcast ARP request
//     whose sender IP is 0.0.0.0, so that no host's cache learns anything
//     from it, whose sender MAC is ours and whose target IP is the
//     address. A host holding the address answers with an ARP reply (Linux
//     does, unicast to the prober); a host that sends any ARP packet, a
//     request or a reply, whose sender IP is the address holds it too
//     (section 2.1.1's conflict rule).
//   - IPv6: a Neighbor Solicitation for duplicate address detection (RFC
//     4862 section 5.4.2): from the unspecified address to the target's
//     solicited-node group, with no Source Link-Layer Address option. A
//     host holding the address answers with a Neighbor Advertisement to
//     all-nodes (RFC 4861 section 7.2.4), naming its MAC in the Target
//     Link-Layer Address option.
//
// The probes are fast, not the RFCs' pace: RFC 5227 has a host wait up to
// PROBE_WAIT (1 s), send PROBE_NUM (3) probes PROBE_MIN to PROBE_MAX (1-2 s)
// apart and listen ANNOUNCE_WAIT (2 s) after the last, some 4-7 s in all,
// and RFC 4862 waits RetransTimer (1 s) after its one solicitation. A new
// Service must answer within about half a second, so a Prober sends
// DefaultProbeCount probes DefaultProbeInterval apart and listens
// DefaultProbeWait after the last: 250 ms. On a LAN, where an answer takes
// well under a millisecond, a host that holds the address and is up answers
// within that; the second probe covers one lost frame. What such a short
// probe misses (a host that is asleep, or whose answers are delayed) the
// speaker's periodic probes find later.
//
// A Prober has sockets of its own rather than sharing a Responder's: the
// Responder's read requests only (its filters drop replies and
// advertisements, so that the hot path never wakes for them), and its
// blocking readers are a latency optimisation that a probe, which waits
// hundreds of milliseconds anyway, does not need. The sockets a Prober from
// NewProber opens live only for the length of one Probe, so that nothing
// queues replies on a busy LAN between probes.

// Defaults for ProbeOptions' zero values.
const (
	DefaultProbeCount    = 2
	DefaultProbeInterval = 50 * time.Millisecond
	DefaultProbeWait     = 200 * time.Millisecond
)

// ProbeOptions tunes a Prober. The zero value sends DefaultProbeCount
// probes per address, DefaultProbeInterval apart, and listens
// DefaultProbeWait after the last.
type ProbeOptions struct {
	Count    int
	Interval time.Duration
	Wait     time.Duration
}

// ProbeConns are the sockets of a Prober and its MAC, for
// NewProberWithConns. Like Conns, both carry whole Ethernet frames.
type ProbeConns struct {
	// HardwareAddr is the interface's 6-byte MAC: the Ethernet source and
	// ARP sender hardware address of every probe.
	HardwareAddr net.HardwareAddr
	// ARP carries ARP frames; nil probes no IPv4 address.
	ARP net.PacketConn
	// NDP carries IPv6 frames; nil probes no IPv6 address.
	NDP net.PacketConn
}

// Prober asks the LAN on one interface whether other hosts hold
// addresses. Create it with NewProber or NewProberWithConns. Probe may be
// called any number of times, one call at a time.
type Prober struct {
	me       [macLen]byte
	count    int
	interval time.Duration
	wait     time.Duration
	// open returns the sockets of one Probe, and whether Probe closes
	// them when it is done.
	open func(v4, v6 bool) (arp, ndp net.PacketConn, owned bool, err error)
	// conns are NewProberWithConns' sockets, which Close closes.
	conns []net.PacketConn
}

// NewProber returns a Prober on ifi. Each Probe opens packet sockets on
// ifi, in the calling thread's network namespace (which must be ifi's;
// they need CAP_NET_RAW), through BPF filters that pass only ARP frames
// and Neighbor Advertisements, and closes them when it returns.
func NewProber(ifi *net.Interface, opts ProbeOptions) (*Prober, error) {
	if ifi == nil || len(ifi.HardwareAddr) != macLen {
		return nil, ErrNotEthernet
	}
	p := makeProber([macLen]byte(ifi.HardwareAddr), opts)
	ifi = &net.Interface{Index: ifi.Index, Name: ifi.Name, HardwareAddr: slices.Clone(ifi.HardwareAddr)}
	p.open = func(v4, v6 bool) (arp, ndp net.PacketConn, owned bool, err error) {
		arp, ndp, err = listenProbe(ifi, v4, v6)
		return arp, ndp, true, err
	}
	return p, nil
}

// NewProberWithConns returns a Prober on the given sockets, which it uses
// for every Probe and owns from now on: Close closes them. Tests use it
// with fakes.
func NewProberWithConns(c ProbeConns, opts ProbeOptions) (*Prober, error) {
	if len(c.HardwareAddr) != macLen {
		return nil, ErrNotEthernet
	}
	if c.ARP == nil && c.NDP == nil {
		return nil, ErrNoConns
	}
	p := makeProber([macLen]byte(c.HardwareAddr), opts)
	p.open = func(v4, v6 bool) (net.PacketConn, net.PacketConn, bool, error) {
		if (v4 && c.ARP == nil) || (v6 && c.NDP == nil) {
			return nil, nil, false, ErrFamily
		}
		return c.ARP, c.NDP, false, nil
	}
	for _, conn := range []net.PacketConn{c.ARP, c.NDP} {
		if conn != nil {
			p.conns = append(p.conns, conn)
		}
	}
	return p, nil
}

func makeProber(me [macLen]byte, opts ProbeOptions) *Prober {
	p := &Prober{me: me, count: opts.Count, interval: opts.Interval, wait: opts.Wait}
	if p.count <= 0 {
		p.count = DefaultProbeCount
	}
	if p.interval <= 0 {
		p.interval = DefaultProbeInterval
	}
	if p.wait <= 0 {
		p.wait = DefaultProbeWait
	}
	return p
}

// Duration is how long a Probe takes: its probes and the wait after the
// last.
func (p *Prober) Duration() time.Duration {
	return time.Duration(p.count-1)*p.interval + p.wait
}

// Close closes the sockets NewProberWithConns was given; a Prober from
// NewProber has none open between probes.
func (p *Prober) Close() error {
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}

// Probe probes every address of addrs at once (IPv4-mapped IPv6 addresses
// count as IPv4) and returns, for each that another host claimed within
// Duration, the MACs that did, sorted; addresses nobody claimed are
// absent. Frames from the Prober's own MAC never count, nor answers naming
// it. Telling a foreign host from another ironlb node answering (a node
// proxying for a restarting one, say) is the caller's job.
//
// It returns an error, having sent nothing, if an address is invalid
// (ErrInvalidAddr) or of a family without a socket (ErrFamily), or if the
// sockets cannot be opened; and ctx's error if ctx ends first, with what
// was heard until then. Failing to send one probe is no error as long as
// another to the same address went out; if none did, Probe returns the
// error, since the silence then means nothing.
func (p *Prober) Probe(ctx context.Context, addrs []netip.Addr) (map[netip.Addr][]net.HardwareAddr, error) {
	want := map[netip.Addr]bool{}
	var v4, v6 bool
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		if err := checkAddr(a); err != nil {
			errs = append(errs, err)
			continue
		}
		want[a] = true
		v4, v6 = v4 || a.Is4(), v6 || a.Is6()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("l2: probe: %w", err)
	}
	if len(want) == 0 {
		return nil, nil
	}
	arpConn, ndpConn, owned, err := p.open(v4, v6)
	if err != nil {
		return nil, fmt.Errorf("l2: probe: %w", err)
	}
	if owned {
		defer func() {
			for _, c := range []net.PacketConn{arpConn, ndpConn} {
				if c != nil {
					c.Close()
				}
			}
		}()
	}

	h := &heard{me: p.me, want: want, macs: map[netip.Addr]map[[macLen]byte]bool{}}
	var wg sync.WaitGroup
	var readers []net.PacketConn
	for _, r := range []struct {
		conn  net.PacketConn
		use   bool
		parse func(*heard, []byte)
	}{{arpConn, v4, (*heard).arp}, {ndpConn, v6, (*heard).na}} {
		if !r.use {
			continue
		}
		readers = append(readers, r.conn)
		r.conn.SetReadDeadline(time.Time{})
		wg.Go(func() { readFrames(r.conn, func(f []byte) { r.parse(h, f) }) })
	}
	// The readers stop when the wait after the last probe is over, or ctx
	// ends: a read deadline in the past fails their pending read.
	stopReaders := func() {
		for _, c := range readers {
			c.SetReadDeadline(time.Unix(1, 0))
		}
	}
	stopCtx := context.AfterFunc(ctx, stopReaders)
	defer stopCtx()

	sent := map[netip.Addr]bool{}
	var sendErrs []error
	buf := make([]byte, max(arpFrameLen, nsFrameLen))
	to := &packet.Addr{HardwareAddr: make(net.HardwareAddr, macLen)}
	order := slices.SortedFunc(maps.Keys(want), netip.Addr.Compare)
	for i := range p.count {
		if i > 0 && !sleepCtx(ctx, p.interval) {
			break
		}
		for _, a := range order {
			conn, n := arpConn, 0
			if a.Is4() {
				n = arpProbe(&p.me, a, buf)
			} else {
				conn, n = ndpConn, dadSolicitation(&p.me, a, buf)
			}
			copy(to.HardwareAddr, buf[0:macLen])
			if _, err := conn.WriteTo(buf[:n], to); err != nil {
				sendErrs = append(sendErrs, fmt.Errorf("probe %s: %w", a, err))
				continue
			}
			sent[a] = true
		}
	}
	if ctx.Err() == nil {
		sleepCtx(ctx, p.wait)
	}
	stopReaders()
	wg.Wait()

	out := h.result()
	if err := ctx.Err(); err != nil {
		return out, err
	}
	for _, a := range order {
		if !sent[a] {
			return out, fmt.Errorf("l2: probe: %w", errors.Join(sendErrs...))
		}
	}
	return out, nil
}

// sleepCtx waits for d or until ctx ends, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readFrames hands every frame read from conn to f until a read fails
// (the deadline Probe sets when it is done).
func readFrames(conn net.PacketConn, f func([]byte)) {
	b := make([]byte, readBufLen)
	for {
		n, _, err := conn.ReadFrom(b)
		if err != nil {
			return
		}
		f(b[:n])
	}
}

// heard collects the claims of one Probe; its readers share it.
type heard struct {
	me   [macLen]byte
	want map[netip.Addr]bool // read only

	mu   sync.Mutex
	macs map[netip.Addr]map[[macLen]byte]bool
}

func (h *heard) add(a netip.Addr, mac [macLen]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.macs[a] == nil {
		h.macs[a] = map[[macLen]byte]bool{}
	}
	h.macs[a][mac] = true
}

// result returns the claims, each address's MACs sorted.
func (h *heard) result() map[netip.Addr][]net.HardwareAddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[netip.Addr][]net.HardwareAddr{}
	for a, set := range h.macs {
		for m := range set {
			out[a] = append(out[a], net.HardwareAddr(slices.Clone(m[:])))
		}
		slices.SortFunc(out[a], func(x, y net.HardwareAddr) int { return slices.Compare(x, y) })
	}
	return out
}

// arp records the Ethernet frame f if it is an ARP request or reply
// (RFC 826) whose sender IP is a probed address, from another host: the
// conflict rule of RFC 5227 section 2.1.1. Its sender hardware address is
// the claimant; one that is ours, or a group or zero MAC, is not counted.
func (h *heard) arp(f []byte) {
	if len(f) < arpFrameLen || binary.BigEndian.Uint16(f[12:14]) != etherTypeARP {
		return
	}
	a := f[etherHdrLen:arpFrameLen]
	if binary.BigEndian.Uint16(a[0:2]) != arpHTypeEthernet ||
		binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != macLen || a[5] != 4 {
		return
	}
	if op := binary.BigEndian.Uint16(a[6:8]); op != arpOpRequest && op != arpOpReply {
		return
	}
	src, sha := [macLen]byte(f[6:12]), [macLen]byte(a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	if src == h.me || sha == h.me || sha[0]&1 != 0 || sha == [macLen]byte{} || !h.want[spa] {
		return
	}
	h.add(spa, sha)
}

// na records the Ethernet frame f if it is a valid Neighbor Advertisement
// (RFC 4861 section 7.1.2: hop limit 255, code 0, valid checksum) for a
// probed address from another host. The claimant is the MAC of its Target
// Link-Layer Address option, or else its Ethernet source.
func (h *heard) na(f []byte) {
	if len(f) < icmpOff+nsLen || binary.BigEndian.Uint16(f[12:14]) != etherTypeIPv6 || f[etherHdrLen]>>4 != 6 {
		return
	}
	ip := f[etherHdrLen:icmpOff]
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[6] != protoICMPv6 || ip[7] != ndpHopLimit || plen < nsLen || icmpOff+plen > len(f) {
		return
	}
	msg := f[icmpOff : icmpOff+plen]
	src, dst := [16]byte(ip[8:24]), [16]byte(ip[24:40])
	if msg[0] != icmpTypeNA || msg[1] != 0 || icmp6Checksum(&src, &dst, msg) != 0 {
		return
	}
	target := netip.AddrFrom16([16]byte(msg[8:24]))
	from := [macLen]byte(f[6:12])
	if from == h.me || !h.want[target] {
		return
	}
	mac := from
	for o := msg[nsLen:]; len(o) >= 8 && o[1] != 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
		if o[0] == optTargetLLA && o[1] == 1 {
			mac = [macLen]byte(o[2:8])
		}
	}
	if mac == h.me || mac[0]&1 != 0 || mac == [macLen]byte{} {
		return
	}
	h.add(target, mac)
}

// arpProbe writes into out (arpFrameLen bytes) an ARP Probe for addr (RFC
// 5227 section 2.1.1): a broadcast request from our MAC with sender IP
// 0.0.0.0, target MAC zero and target IP addr.
func arpProbe(me *[macLen]byte, addr netip.Addr, out []byte) int {
	ip := addr.As4()
	return buildARP(out, arpOpRequest, &broadcastMAC, me, me, &[4]byte{}, &[macLen]byte{}, &ip)
}

// nsFrameLen is a Neighbor Solicitation without options in its frame.
const nsFrameLen = icmpOff + nsLen

// dadSolicitation writes into out (nsFrameLen bytes) the Neighbor
// Solicitation of duplicate address detection for addr (RFC 4862 section
// 5.4.2): from the unspecified address to addr's solicited-node group (at
// its Ethernet group, RFC 2464 section 7), hop limit 255, without a
// Source Link-Layer Address option, which RFC 4861 section 4.3 forbids
// from the unspecified address.
func dadSolicitation(me *[macLen]byte, addr netip.Addr, out []byte) int {
	_ = out[nsFrameLen-1]
	target := addr.As16()
	group := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: target[13], 14: target[14], 15: target[15]}
	groupMAC := solicitedNodeMAC(addr)
	copy(out[0:6], groupMAC[:])
	copy(out[6:12], me[:])
	binary.BigEndian.PutUint16(out[12:14], etherTypeIPv6)
	ip := out[etherHdrLen:icmpOff]
	ip[0], ip[1], ip[2], ip[3] = 6<<4, 0, 0, 0
	binary.BigEndian.PutUint16(ip[4:6], nsLen)
	ip[6], ip[7] = protoICMPv6, ndpHopLimit
	clear(ip[8:24]) // from ::
	copy(ip[24:40], group[:])
	m := out[icmpOff:nsFrameLen]
	clear(m[0:8])
	m[0] = icmpTypeNS
	copy(m[8:24], target[:])
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(&[16]byte{}, &group, m))
	return nsFrameLen
}

// listenProbe opens the packet sockets of one Probe on ifi: for ARP
// frames (v4) and for Neighbor Advertisements (v6), the latter a member
// of the all-nodes Ethernet group, where the advertisements answering
// duplicate address detection go (RFC 4861 section 7.2.4).
func listenProbe(ifi *net.Interface, v4, v6 bool) (arp, ndp net.PacketConn, err error) {
	if v4 {
		f, err := bpf.Assemble([]bpf.Instruction{
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeARP, SkipTrue: 1},
			bpf.RetConstant{Val: maxSnap},
			bpf.RetConstant{Val: 0},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("ARP filter: %w", err)
		}
		c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: f})
		if err != nil {
			return nil, nil, fmt.Errorf("ARP socket on %s: %w", ifi.Name, err)
		}
		arp = c
	}
	if v6 {
		f, err := advertisementFilter()
		if err == nil {
			var c *packet.Conn
			if c, err = packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: f}); err == nil {
				ndp = c
				if err = c.JoinGroup(allNodesMAC[:]); err != nil {
					c.Close()
					ndp = nil
				}
			}
		}
		if err != nil {
			if arp != nil {
				arp.Close()
			}
			return nil, nil, fmt.Errorf("NDP socket on %s: %w", ifi.Name, err)
		}
	}
	return arp, ndp, nil
}
