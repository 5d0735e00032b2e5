package election

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// transport is memberlist's network transport: UDP for the packets
// (probes, gossip, heartbeats), TCP for the streams (joins, push/pull),
// on one address and port. It does what memberlist's own NetTransport
// does, with one difference: NetTransport reads every UDP packet into a
// fresh 64 KiB buffer, the largest a datagram can be, and hands that
// buffer on. With heartbeats a speaker receives about 180 packets a
// second at rest, so that was 11 MB of garbage a second, and the
// speaker's collector (GOGC 25, to keep its memory small) ran several
// times a second: three quarters of its CPU at rest went to collecting
// those buffers (a profile of a 10-node lab, 41 ms of CPU a second per
// speaker). transport reads into one buffer and hands on a copy of the
// packet's own size, about 100 bytes.
type transport struct {
	bind     netip.AddrPort
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	log      *slog.Logger
	wg       sync.WaitGroup
	shutdown atomic.Bool
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

const (
	// maxPacket is the largest UDP payload there is.
	maxPacket = 65536
	// udpReadBuffer is the socket receive buffer asked for, as
	// NetTransport does: bursts of gossip must not be dropped while the
	// packet handler is busy.
	udpReadBuffer = 2 << 20
)

// newTransport listens on bind (TCP and UDP, the same port) and starts
// reading.
func newTransport(bind netip.AddrPort, log *slog.Logger) (*transport, error) {
	t := &transport{
		bind:    bind,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		log:     log,
	}
	var err error
	if t.tcp, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bind)); err != nil {
		return nil, err
	}
	if t.udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(bind)); err != nil {
		t.tcp.Close()
		return nil, err
	}
	for size := udpReadBuffer; size > 0; size /= 2 {
		if t.udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// FinalAdvertiseAddr returns the address to advertise: ip if set, else
// the bound address or, when that is unspecified, the host's first
// private address, as NetTransport does.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = int(t.bind.Port())
	}
	if ip == "" {
		if !t.bind.Addr().IsUnspecified() {
			return net.IP(t.bind.Addr().Unmap().AsSlice()), port, nil
		}
		private, err := sockaddr.GetPrivateIP()
		if err != nil {
			return nil, 0, fmt.Errorf("find a private address to advertise: %w", err)
		}
		if private == "" {
			return nil, 0, errors.New("no private address to advertise, and none given")
		}
		ip = private
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, 0, fmt.Errorf("advertise address: %w", err)
	}
	return net.IP(a.Unmap().AsSlice()), port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	return time.Now(), err
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown closes the sockets and waits for the readers to stop. memberlist
// stops reading the channels only after it returns.
func (t *transport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

// acceptStreams hands every TCP connection to memberlist, backing off on
// errors (out of file descriptors) as NetTransport does.
func (t *transport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("accepting a gossip connection", "error", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.streams <- conn
	}
}

// readPackets hands every UDP packet to memberlist, each in a buffer of
// its own size.
func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.log.Error("reading a gossip packet", "error", err)
			continue
		}
		if n == 0 {
			continue
		}
		t.packets <- &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: at}
	}
}
