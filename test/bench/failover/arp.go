package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchstat"
)

// arp times, from the client, the owner's speaker answering ARP for
// failoverIP against the owner's kernel answering for the node's own
// address on the same veth, alternately, and prints both and their ratio.
func (b *bench) arp(ctx context.Context) error {
	node, err := b.waitOneMAC(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	h, err := b.cl.Host(node)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.diag, "# ARP: %d requests each for %s (the speaker on %s, a separate process) and %s (%s's kernel)\n",
		b.opts.ARPSamples, failoverIP, node, h.IPv4, node)
	p, err := openARPTimer(b.cl.Lab.Client())
	if err != nil {
		return err
	}
	defer p.Close()

	var kernel, speaker []time.Duration
	timeouts := map[string]int{}
	ask := func(target netip.Addr, into *[]time.Duration) error {
		d, mac, err := p.ask(target, time.Second)
		if errors.Is(err, errNoReply) {
			timeouts[target.String()]++
			return nil
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(mac, h.MAC) {
			return fmt.Errorf("%s answered by %s, want %s's %s", target, mac, node, h.MAC)
		}
		if into != nil {
			*into = append(*into, d)
		}
		return nil
	}
	// Warm up caches, the kernel's timestamping and both schedulers.
	for range 50 {
		if err := errors.Join(ask(h.IPv4, nil), ask(failoverIP, nil)); err != nil {
			return err
		}
	}
	clear(timeouts)
	for i := range b.opts.ARPSamples {
		var err error
		if i%2 == 0 { // take turns going first
			err = errors.Join(ask(h.IPv4, &kernel), ask(failoverIP, &speaker))
		} else {
			err = errors.Join(ask(failoverIP, &speaker), ask(h.IPv4, &kernel))
		}
		if err != nil {
			return err
		}
	}
	if len(kernel) == 0 || len(speaker) == 0 {
		return fmt.Errorf("no answers: %v", timeouts)
	}
	if len(timeouts) > 0 {
		fmt.Fprintf(b.diag, "# ARP: requests without an answer within 1 s: %v\n", timeouts)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	k50, k99 := us(benchstat.Percentile(kernel, 50)), us(benchstat.Percentile(kernel, 99))
	s50, s99 := us(benchstat.Percentile(speaker, 50)), us(benchstat.Percentile(speaker, 99))
	km, sm := us(mean(kernel)), us(mean(speaker))
	b.print(
		benchstat.Metric{Name: "arp_samples", Value: float64(len(speaker)), Unit: "count"},
		benchstat.Metric{Name: "arp_unanswered", Value: float64(timeouts[failoverIP.String()]), Unit: "count"},
		benchstat.Metric{Name: "arp_kernel_p50", Value: k50, Unit: "us"},
		benchstat.Metric{Name: "arp_kernel_p99", Value: k99, Unit: "us"},
		benchstat.Metric{Name: "arp_kernel_mean", Value: km, Unit: "us"},
		benchstat.Metric{Name: "arp_ironlb_p50", Value: s50, Unit: "us"},
		benchstat.Metric{Name: "arp_ironlb_p99", Value: s99, Unit: "us"},
		benchstat.Metric{Name: "arp_ironlb_mean", Value: sm, Unit: "us"},
		benchstat.Metric{Name: "arp_p50_ratio", Value: benchstat.Ratio(s50, k50), Unit: "x"},
		benchstat.Metric{Name: "arp_p99_ratio", Value: benchstat.Ratio(s99, k99), Unit: "x"},
		benchstat.Metric{Name: "arp_mean_ratio", Value: benchstat.Ratio(sm, km), Unit: "x"},
		benchstat.Metric{Name: "target_arp_ratio", Value: 5, Unit: "x"},
		// PERFORMANCE.md and issue 4, arping averages on this machine
		// kind: the kernel ~7 us, MetalLB's speaker 74-81 us (~10x).
		benchstat.Metric{Name: "reference_kernel_arp_mean", Value: 7, Unit: "us"},
		benchstat.Metric{Name: "reference_metallb_arp_mean", Value: 80, Unit: "us"},
		benchstat.Metric{Name: "reference_metallb_arp_ratio", Value: 10, Unit: "x"},
	)
	return nil
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// ARP over Ethernet (RFC 826): the frame this program sends and reads.
const (
	ethHeader   = 14
	arpBody     = 28
	etherARP    = 0x0806
	arpRequest  = 1
	arpReply    = 2
	arpWaitStep = 50 * time.Millisecond
)

// errNoReply: nobody answered in time.
var errNoReply = errors.New("no ARP reply")

// arpTimer sends ARP requests from a host through a packet socket and
// times the replies: from just before the request goes to the kernel to
// the kernel's receive timestamp of the reply (SO_TIMESTAMPNS), so the
// client's own wake-up is not counted, as arping's figures do not count
// it either. Not safe for concurrent use.
type arpTimer struct {
	fd      int
	to      unix.SockaddrLinklayer
	mac     net.HardwareAddr
	ip      [4]byte
	in, oob []byte
}

// openARPTimer opens the socket in h's namespace, on its LAN interface.
func openARPTimer(h *labnet.Host) (*arpTimer, error) {
	fd, ifindex, err := openARPSocket(h)
	if err != nil {
		return nil, err
	}
	return &arpTimer{
		fd:  fd,
		to:  unix.SockaddrLinklayer{Protocol: bigEndian16(etherARP), Ifindex: ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		mac: h.MAC, ip: h.IPv4.As4(), in: make([]byte, 1500), oob: make([]byte, 256),
	}, nil
}

// openARPSocket opens a packet socket for ARP frames on h's LAN
// interface, with kernel receive timestamps and reads that give up after
// arpWaitStep, and returns it with the interface's index.
func openARPSocket(h *labnet.Host) (fd, ifindex int, err error) {
	proto := bigEndian16(etherARP)
	fd = -1
	err = h.Do(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(arpWaitStep.Nanoseconds())
		return errors.Join(
			unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, 0, fmt.Errorf("ARP socket in %s: %w", h.Name, err)
	}
	return fd, ifindex, nil
}

func (t *arpTimer) Close() error { return unix.Close(t.fd) }

// bigEndian16 is v in network byte order, as the socket calls want it.
func bigEndian16(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// request is a broadcast who-has target, tell us.
func (t *arpTimer) request(target netip.Addr) []byte {
	f := make([]byte, 0, ethHeader+arpBody)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, t.mac...)
	f = binary.BigEndian.AppendUint16(f, etherARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, arpRequest)
	f = append(f, t.mac...)
	f = append(f, t.ip[:]...)
	f = append(f, make([]byte, 6)...)
	ip := target.As4()
	return append(f, ip[:]...)
}

// ask sends one request for target and returns the time to the first
// reply for it addressed to us, and the replier's MAC.
func (t *arpTimer) ask(target netip.Addr, timeout time.Duration) (time.Duration, net.HardwareAddr, error) {
	frame := t.request(target)
	want := target.As4()
	deadline := time.Now().Add(timeout)
	sent := time.Now()
	if err := unix.Sendto(t.fd, frame, 0, &t.to); err != nil {
		return 0, nil, fmt.Errorf("send: %w", err)
	}
	for time.Now().Before(deadline) {
		n, oobn, _, _, err := unix.Recvmsg(t.fd, t.in, t.oob, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, nil, fmt.Errorf("receive: %w", err)
		}
		got := time.Now()
		f := t.in[:n]
		if n < ethHeader+arpBody || !bytes.Equal(f[0:6], t.mac) ||
			binary.BigEndian.Uint16(f[ethHeader+6:]) != arpReply ||
			!bytes.Equal(f[ethHeader+14:ethHeader+18], want[:]) {
			continue // not our answer: someone else's, or an announcement
		}
		if at, ok := receivedAt(t.oob[:oobn]); ok {
			got = at
		}
		return got.Sub(sent), bytes.Clone(f[ethHeader+8 : ethHeader+14]), nil
	}
	return 0, nil, errNoReply
}

// receivedAt is the kernel's receive time in a SCM_TIMESTAMPNS message.
func receivedAt(oob []byte) (time.Time, bool) {
	msgs, _ := unix.ParseSocketControlMessage(oob)
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS || len(m.Data) < 16 {
			continue
		}
		ts := unix.Timespec{
			Sec:  int64(binary.NativeEndian.Uint64(m.Data)),
			Nsec: int64(binary.NativeEndian.Uint64(m.Data[8:])),
		}
		if ts.Sec != 0 || ts.Nsec != 0 {
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// claim is an ARP frame that said who has an address, as a host saw it.
type claim struct {
	At         time.Time
	MAC        net.HardwareAddr
	Gratuitous bool // an announcement (sender and target address alike)
}

// claimWatch records the ARP frames that claim one address, from a
// host's point of view: the evidence of who pulled a client where.
type claimWatch struct {
	fd   int
	ip   [4]byte
	once sync.Once
	stop chan struct{}
	done chan struct{}
	got  []claim // owned by the reader until done is closed
}

// watchClaims starts recording, on h's LAN interface, every ARP frame
// whose sender address is ip. End it with Stop.
func watchClaims(h *labnet.Host, ip netip.Addr) (*claimWatch, error) {
	fd, _, err := openARPSocket(h)
	if err != nil {
		return nil, err
	}
	w := &claimWatch{fd: fd, ip: ip.As4(), stop: make(chan struct{}), done: make(chan struct{})}
	go w.read()
	return w, nil
}

func (w *claimWatch) read() {
	defer close(w.done)
	in, oob := make([]byte, 1500), make([]byte, 256)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, oobn, _, _, err := unix.Recvmsg(w.fd, in, oob, 0)
		if err != nil {
			continue // the read timeout, so that stop is seen
		}
		f := in[:n]
		if n < ethHeader+arpBody || !bytes.Equal(f[ethHeader+14:ethHeader+18], w.ip[:]) {
			continue
		}
		at, ok := receivedAt(oob[:oobn])
		if !ok {
			at = time.Now()
		}
		w.got = append(w.got, claim{
			At:         at,
			MAC:        bytes.Clone(f[ethHeader+8 : ethHeader+14]),
			Gratuitous: bytes.Equal(f[ethHeader+14:ethHeader+18], f[ethHeader+24:ethHeader+28]),
		})
	}
}

// Stop ends the recording and returns the claims in arrival order.
// Calling it again returns the same.
func (w *claimWatch) Stop() []claim {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		unix.Close(w.fd)
	})
	return w.got
}
