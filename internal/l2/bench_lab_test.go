package l2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/labnet"
)

// prober measures, from the client, how long a LAN host takes to answer one
// ARP request or Neighbor Solicitation: from just before the request is
// handed to the kernel to the kernel's receive timestamp (SO_TIMESTAMPNS) of
// the answer. The receive timestamp keeps the client's own wake-up and
// scheduling out of the figure, so it shows the answering side alone, as
// arping's figures for the kernel do.
//
// It works on a blocking packet socket (ARP or IPv6 frames) opened in the
// client's namespace; it is for tests only and not safe for concurrent use.
type prober struct {
	fd    int
	ifi   *net.Interface
	mac   [macLen]byte
	ip4   netip.Addr
	ll6   netip.Addr
	proto uint16
	buf   []byte
	oob   []byte
}

// newProber opens a prober for ARP (v6 false) or NDP on h's LAN interface.
func newProber(h *labnet.Host, v6 bool) (*prober, error) {
	p := &prober{proto: etherTypeARP, ip4: h.IPv4, buf: make([]byte, 2048), oob: make([]byte, 512)}
	if v6 {
		p.proto = etherTypeIPv6
	}
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		p.ifi = ifi
		p.mac = [macLen]byte(ifi.HardwareAddr)
		p.ll6 = linkLocal(ifi)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(p.proto)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		p.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(p.proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v6 && !p.ll6.IsValid() {
		p.Close()
		return nil, fmt.Errorf("%s has no link-local address", h)
	}
	return p, nil
}

func (p *prober) Close() error { return unix.Close(p.fd) }

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// errNoAnswer: nobody answered within the timeout.
var errNoAnswer = errors.New("no answer")

// rtt sends one request for target and returns the time to the first
// answer and who gave it.
func (p *prober) rtt(target netip.Addr, timeout time.Duration) (time.Duration, net.HardwareAddr, error) {
	var req []byte
	var dst [macLen]byte
	if target.Is4() {
		req = make([]byte, arpFrameLen)
		me := &self{mac: p.mac}
		announceARP(me, target, req) // a request for target ...
		copy(req[etherHdrLen+14:], p.ip4.AsSlice())
		dst = broadcastMAC // ... from us
	} else {
		group := solicitedNode(target)
		req = nsFrame(p.mac, solicitedNodeMAC(target), p.ll6, group, target, p.mac[:])
		dst = solicitedNodeMAC(target)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, nil, err
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(p.proto), Ifindex: p.ifi.Index, Halen: macLen}
	copy(to.Addr[:], dst[:])
	deadline := time.Now().Add(timeout)
	sent := time.Now()
	if err := unix.Sendto(p.fd, req, 0, to); err != nil {
		return 0, nil, fmt.Errorf("send: %w", err)
	}
	for time.Now().Before(deadline) {
		n, oobn, _, _, err := unix.Recvmsg(p.fd, p.buf, p.oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, nil, fmt.Errorf("receive: %w", err)
		}
		at := time.Now()
		mac, ok := p.answer(p.buf[:n], target)
		if !ok {
			continue
		}
		if ts, ok := rxTime(p.oob[:oobn]); ok {
			at = ts
		}
		return at.Sub(sent), mac, nil
	}
	return 0, nil, errNoAnswer
}

// answer reports whether frame answers our request for target, and who
// sent it.
func (p *prober) answer(f []byte, target netip.Addr) (net.HardwareAddr, bool) {
	if len(f) < etherHdrLen || [macLen]byte(f[0:6]) != p.mac {
		return nil, false
	}
	if target.Is4() {
		if len(f) < arpFrameLen || binary.BigEndian.Uint16(f[etherHdrLen+6:]) != arpOpReply ||
			netip.AddrFrom4([4]byte(f[etherHdrLen+14:])) != target {
			return nil, false
		}
		return net.HardwareAddr(f[etherHdrLen+8 : etherHdrLen+14]), true
	}
	if len(f) < icmpOff+nsLen || f[etherHdrLen+6] != protoICMPv6 || f[icmpOff] != icmpTypeNA ||
		netip.AddrFrom16([16]byte(f[icmpOff+8:])) != target {
		return nil, false
	}
	return net.HardwareAddr(f[6:12]), true
}

// rxTime returns the SO_TIMESTAMPNS receive time in oob, if any.
func rxTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			if sec == 0 && nsec == 0 {
				return time.Time{}, false
			}
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// BenchmarkARPReply compares, from the client, the time a node's kernel
// takes to answer ARP for the node's own address with the time our
// Responder on the same node takes for a service address (PERFORMANCE.md,
// "The kernel (ARP)": target within 5x of the kernel). The two are
// measured alternately, in the same run, and reported as medians, 90th
// percentiles and means in microseconds, with the ratios of the medians
// and of the means.
//
//	go test ./internal/l2/ -run x -bench ARPReply -benchtime 2000x
func BenchmarkARPReply(b *testing.B) {
	benchReply(b, vip4a, func(h *labnet.Host) netip.Addr { return h.IPv4 })
}

// BenchmarkNDPReply is BenchmarkARPReply for Neighbor Solicitations.
func BenchmarkNDPReply(b *testing.B) {
	benchReply(b, vip6a, func(h *labnet.Host) netip.Addr { return h.IPv6 })
}

func benchReply(b *testing.B, vip netip.Addr, own func(*labnet.Host) netip.Addr) {
	l := labnet.NewForTest(b, labnet.Options{Nodes: 1})
	node, client := l.Node(1), l.Client()
	r := startResponder(b, node, Options{ReannounceInterval: -1}, vip)
	p, err := newProber(client, vip.Is6())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()

	kernel, ours := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	measure := func(target netip.Addr, into *[]time.Duration) {
		d, mac, err := p.rtt(target, time.Second)
		if err != nil {
			b.Fatalf("%s: %v", target, err)
		}
		if !slices.Equal(mac, node.MAC) {
			b.Fatalf("%s answered by %s, want %s", target, mac, node.MAC)
		}
		*into = append(*into, d)
	}
	// Warm up: caches, the kernel's timestamp switch, the Go scheduler.
	for range 50 {
		measure(own(node), new([]time.Duration))
		measure(vip, new([]time.Duration))
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			measure(own(node), &kernel)
			measure(vip, &ours)
		} else {
			measure(vip, &ours)
			measure(own(node), &kernel)
		}
	}
	b.StopTimer()
	k50, o50 := quantile(kernel, 0.5), quantile(ours, 0.5)
	b.ReportMetric(us(k50), "kernel_us")
	b.ReportMetric(us(o50), "ironlb_us")
	b.ReportMetric(us(quantile(kernel, 0.9)), "kernel_p90_us")
	b.ReportMetric(us(quantile(ours, 0.9)), "ironlb_p90_us")
	b.ReportMetric(float64(o50)/float64(k50), "ratio")
	km, om := mean(kernel), mean(ours)
	b.ReportMetric(us(km), "kernel_mean_us")
	b.ReportMetric(us(om), "ironlb_mean_us")
	b.ReportMetric(float64(om)/float64(km), "mean_ratio")
	b.ReportMetric(0, "ns/op") // the time per op is two round trips and meaningless
	st := r.Stats()
	b.Logf("responder stats %+v", st)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
