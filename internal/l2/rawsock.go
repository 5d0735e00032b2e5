package l2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The request path of a Responder from New does not go through the Go
// runtime's network poller: each family has a second packet socket of its
// own, blocking, which the serving goroutine reads with read(2) and answers
// on with send(2); the packet.Conn keeps the announcements and the
// multicast memberships, with a filter that passes nothing, so that a
// frame is queued, and wakes the process, once.
//
// Why: the answer cannot leave before a thread of ours wakes up, and on
// this machine kind (2 vCPUs) every step between the frame's arrival and
// the send shows. Through the poller, a request takes an epoll wake-up, a
// goroutine made runnable and scheduled (often on another thread, which
// is woken too), a recvfrom and a sendto; here it is one read returning on
// the thread that was waiting in it, and one send. Measured from the
// client (the kernel's receive timestamp of the reply), with the responder
// in a separate process as the speaker is, on a 1-node lab, 2,000 requests
// a run, 5 runs of each variant taking turns: the medians of the runs'
// p50 and mean, their ratios to the kernel's own answers in the same runs,
// and the responder's CPU time per pair of requests (one for it, one for
// the node's address, which wakes it too):
//
//	                                        p50             mean            CPU
//	network poller (packet.Conn ReadFrom)   25.0 us (4.1x)  42.0 us (3.9x)  71 us
//	poll(2) with an eventfd, then recvfrom  16.4 us (2.9x)  31.9 us (3.7x)
//	blocking read(2), as here               12.0 us (2.2x)  16.3 us (2.3x)  28 us
//
// In other runs, poll(2) or an epoll(7) instance of our own on the
// packet.Conn's descriptor gave 3.1-3.3x at the median; locking the
// goroutine to its thread (runtime.LockOSThread) made no difference that
// showed above the noise, so it is not done: a goroutine blocked in a
// system call keeps its thread anyway.
//
// The price is that there is no descriptor to wake a blocked read with,
// so a read gives up every readTimeout to see whether it should stop: Run
// returns up to readTimeout after ctx ends or Close, and an idle Responder
// costs some CPU: the runtime takes the P of a goroutine that stays in a
// system call away after 10 ms, and each time the read gives up, the
// goroutine needs one back, a few thread wake-ups. See readTimeout.

// readTimeout bounds how long a read on a rawSocket blocks (SO_RCVTIMEO),
// that is how late a reader sees that it should stop. CPU time of an idle
// Responder (a test process over 5 s): ~0.3 ms a second through the
// network poller; here ~4.5 ms with 100 ms, ~2.5 with 250 ms, ~0.9 with 1 s.
const readTimeout = 250 * time.Millisecond

// errStopped: a rawSocket read saw its stop flag.
var errStopped = errors.New("l2: reader stopped")

// dropAllFilter is the filter of the packet.Conns that New opens next to
// rawSockets: they only send, so nothing need be queued on them.
func dropAllFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
}

// rawSocket is a blocking AF_PACKET socket (packet(7), SOCK_RAW: whole
// Ethernet frames) bound to one interface and EtherType, outside the Go
// runtime's network poller. It is the frameIO of serve for Responders
// from New. Reads and writes may run concurrently; close must wait until
// no read is in progress (see Responder.closeRaw).
type rawSocket struct {
	fd int
	// stop, once set, ends reads with errStopped within readTimeout.
	stop atomic.Bool
}

// listenRaw opens a rawSocket for ethertype on ifindex, with filter, in
// the calling thread's network namespace.
func listenRaw(ifindex int, ethertype uint16, filter []bpf.RawInstruction) (*rawSocket, error) {
	// Protocol 0 until bind, as packet.Listen does, so that no frame is
	// queued before the filter is in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	prog := make([]unix.SockFilter, len(filter))
	for i, ins := range filter {
		prog[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	proto := binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, ethertype))
	if err := errors.Join(
		wrapErrno("attach filter", unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})),
		wrapErrno("SO_RCVTIMEO", unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)),
		wrapErrno("bind", unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifindex})),
	); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &rawSocket{fd: fd}, nil
}

func wrapErrno(op string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError(op, err)
}

// read blocks until a frame arrives and copies it into b, or returns
// errStopped once the stop flag is set, or a socket error (ENETDOWN when
// the link goes down, once).
func (s *rawSocket) read(b []byte) (int, error) {
	for !s.stop.Load() {
		n, err := unix.Read(s.fd, b)
		switch err {
		case nil:
			return n, nil
		case unix.EAGAIN, unix.EINTR: // readTimeout passed
		default:
			return 0, os.NewSyscallError("read", err)
		}
	}
	return 0, errStopped
}

// write sends the frame b on the bound interface (its first 6 bytes are
// the destination). It never blocks: a full send buffer fails with EAGAIN.
func (s *rawSocket) write(b []byte) error {
	return wrapErrno("send", unix.Sendto(s.fd, b, unix.MSG_DONTWAIT, nil))
}

func (s *rawSocket) close() error { return wrapErrno("close", unix.Close(s.fd)) }

// listenPair opens, for one EtherType on ifi, the packet.Conn that sends
// announcements and holds multicast memberships (filtering out every
// frame) and the rawSocket that reads requests through filter.
func listenPair(ifi *net.Interface, ethertype uint16, filter []bpf.RawInstruction) (*packet.Conn, *rawSocket, error) {
	none, err := dropAllFilter()
	if err != nil {
		return nil, nil, fmt.Errorf("filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethertype), &packet.Config{Filter: none})
	if err != nil {
		return nil, nil, err
	}
	raw, err := listenRaw(ifi.Index, ethertype, filter)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, raw, nil
}
