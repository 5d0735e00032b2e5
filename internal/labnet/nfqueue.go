package labnet

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The netfilter queue protocol (linux/netfilter/nfnetlink_queue.h), the
// parts x/sys/unix does not define.
const (
	nfqnlMsgPacket       = 0 // kernel to user: a queued packet
	nfqnlMsgVerdict      = 1 // user to kernel: the fate of one packet
	nfqnlMsgConfig       = 2 // user to kernel: bind and configure a queue
	nfqnlMsgVerdictBatch = 3 // user to kernel: the fate of every packet up to an ID

	nfqaPacketHdr  = 1 // struct nfqnl_msg_packet_hdr: be32 id, be16 hw_protocol, u8 hook
	nfqaVerdictHdr = 2 // struct nfqnl_msg_verdict_hdr: be32 verdict, be32 id

	nfqaCfgCmd         = 1 // struct nfqnl_msg_config_cmd: u8 command, u8 pad, be16 pf
	nfqaCfgParams      = 2 // struct nfqnl_msg_config_params (packed): be32 copy_range, u8 copy_mode
	nfqaCfgQueueMaxlen = 3 // be32
	nfqaCfgMask        = 4 // be32, the flags NFQA_CFG_FLAGS changes
	nfqaCfgFlags       = 5 // be32

	nfqnlCfgCmdBind = 1
	nfqnlCopyMeta   = 1 // metadata only: the packet ID is all we need
	nfqaCfgFGSO     = 1 << 2

	nfDrop   = 0 // NF_DROP
	nfAccept = 1 // NF_ACCEPT

	nlmsgHdrLen = unix.SizeofNlMsghdr
	nfgenHdrLen = 4 // struct nfgenmsg: u8 family, u8 version, be16 res_id (the queue)
	nlaHdrLen   = unix.SizeofNlAttr
	nlaTypeMask = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
)

// nfqMsgType is the netlink message type of queue message m.
func nfqMsgType(m uint16) uint16 { return unix.NFNL_SUBSYS_QUEUE<<8 | m }

// nfQueue is one bound netfilter queue: a NETLINK_NETFILTER socket to which
// the kernel hands each packet iptables' NFQUEUE target sends it, and which
// returns a verdict for each. Only one goroutine may receive; verdicts may
// be sent from any goroutine, concurrently, and in any order (the kernel
// finds each queued packet by its ID).
//
// The socket is non-blocking and registered with Go's poller through an
// os.File, so a receive waits without holding a thread and a read deadline
// or Close ends it, which a blocking recvfrom(2) would ignore.
type nfQueue struct {
	host *Host
	num  uint16
	f    *os.File
	rc   syscall.RawConn
	buf  []byte // receive buffer, owned by the receiving goroutine
}

// nfqConfig shapes a queue.
type nfqConfig struct {
	// MaxLen is how many packets the kernel keeps waiting for a verdict
	// before it drops new ones (its default is 1,024).
	MaxLen uint32
	// RcvBuf is the socket's receive buffer in bytes. Packets the kernel
	// cannot fit in it are dropped and the next receive fails with
	// ENOBUFS.
	RcvBuf int
}

// openNFQueue creates a queue socket inside h's namespace (queues, like
// everything in netfilter, belong to a namespace) and binds it to queue num
// in metadata-only copy mode. It fails with EBUSY if another socket holds
// num in that namespace.
func openNFQueue(h *Host, num uint16, cfg nfqConfig) (*nfQueue, error) {
	var fd int
	err := h.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open NFQUEUE %d: %w", num, err)
	}
	// Setting the buffer and binding need no namespace: the socket has
	// one.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RcvBuf); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: open NFQUEUE %d: SO_RCVBUFFORCE: %w", h.Name, num, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: open NFQUEUE %d: bind: %w", h.Name, num, err)
	}
	f := os.NewFile(uintptr(fd), "nfqueue")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: open NFQUEUE %d: %w", h.Name, num, err)
	}
	q := &nfQueue{host: h, num: num, f: f, rc: rc, buf: make([]byte, 64<<10)}
	if err := q.configure(cfg); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: open NFQUEUE %d: %w", h.Name, num, err)
	}
	return q, nil
}

// configure binds the queue and sets its parameters, each request
// acknowledged before the next.
func (q *nfQueue) configure(cfg nfqConfig) error {
	reqs := []struct {
		what  string
		attrs []nlAttr
	}{
		{"bind", []nlAttr{{nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0}}}},
		{"configure", []nlAttr{
			{nfqaCfgParams, append(be32(0), nfqnlCopyMeta)},
			{nfqaCfgQueueMaxlen, be32(cfg.MaxLen)},
			// GSO packets whole: segmenting them only to hold each
			// segment exactly as long is wasted work.
			{nfqaCfgMask, be32(nfqaCfgFGSO)},
			{nfqaCfgFlags, be32(nfqaCfgFGSO)},
		}},
	}
	// The kernel acknowledges a configuration request before sendto(2)
	// returns; the deadline only guards against a kernel that does not.
	q.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer q.f.SetReadDeadline(time.Time{})
	for i, r := range reqs {
		seq := uint32(i + 1)
		msg := nfqRequest(nfqMsgType(nfqnlMsgConfig), unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, q.num, r.attrs...)
		if err := q.send(msg); err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
		if err := q.waitAck(seq); err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
	}
	return nil
}

func (q *nfQueue) waitAck(seq uint32) error {
	var msgs []nfqMsg
	for {
		var err error
		msgs, err = q.receive(msgs[:0])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.kind == nfqAck && m.seq == seq {
				if m.errno != 0 {
					return m.errno
				}
				return nil
			}
		}
	}
}

// receive waits for the next datagram from the kernel and appends the
// messages in it to msgs. It fails with unix.ENOBUFS after the kernel
// dropped packets it could not fit in the socket's buffer (the socket
// stays usable), and with os.ErrDeadlineExceeded or os.ErrClosed once
// stopReading or Close ends it.
func (q *nfQueue) receive(msgs []nfqMsg) ([]nfqMsg, error) {
	var n int
	var rerr error
	err := q.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), q.buf)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return msgs, err
	}
	if rerr != nil {
		return msgs, rerr
	}
	return parseNFQ(msgs, q.buf[:n])
}

// stopReading makes a pending or later receive fail at once, without
// closing the socket, so verdicts can still be sent.
func (q *nfQueue) stopReading() { q.f.SetReadDeadline(time.Now()) }

// verdict decides the fate of the packet with ID id: nfAccept or nfDrop.
func (q *nfQueue) verdict(id, verdict uint32) error {
	return q.send(nfqVerdict(nfqnlMsgVerdict, q.num, id, verdict))
}

// verdictBatch decides the fate of every packet still queued whose ID is
// not after maxID, in serial number arithmetic (the kernel compares IDs as
// (int32)(id - maxID) > 0, so they may wrap).
func (q *nfQueue) verdictBatch(maxID, verdict uint32) error {
	return q.send(nfqVerdict(nfqnlMsgVerdictBatch, q.num, maxID, verdict))
}

func (q *nfQueue) send(msg []byte) error {
	var serr error
	err := q.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	return errors.Join(err, serr)
}

// Close closes the socket, which unbinds the queue; the kernel drops
// whatever packets are still queued to it.
func (q *nfQueue) Close() error { return q.f.Close() }

// nfqKernelStats are the kernel's counters of one queue, from
// /proc/net/netfilter/nfnetlink_queue. They vanish with the queue.
type nfqKernelStats struct {
	// Waiting is how many packets wait for a verdict.
	Waiting int
	// QueueDropped counts packets dropped because Waiting had reached
	// the queue's maximum length.
	QueueDropped int
	// UserDropped counts packets dropped because the socket's receive
	// buffer was full (the cause of ENOBUFS).
	UserDropped int
	// LastID is the ID the kernel gave the latest packet.
	LastID uint32
}

// kernelStats reads the queue's counters in the host's namespace. Inside
// Do it reads /proc/thread-self/net, not /proc/net: the latter follows the
// process's main thread, which stays in the caller's namespace.
func (q *nfQueue) kernelStats() (nfqKernelStats, error) {
	var b []byte
	err := q.host.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/netfilter/nfnetlink_queue")
		return err
	})
	if err != nil {
		return nfqKernelStats{}, err
	}
	s, ok := parseNFQProc(b, q.num)
	if !ok {
		return nfqKernelStats{}, fmt.Errorf("queue %d not in /proc/net/netfilter/nfnetlink_queue", q.num)
	}
	return s, nil
}

// parseNFQProc finds queue num in the contents of
// /proc/net/netfilter/nfnetlink_queue, whose lines read (seq_printf in
// net/netfilter/nfnetlink_queue.c) "queue_num peer_portid queue_total
// copy_mode copy_range queue_dropped queue_user_dropped id_sequence 1".
func parseNFQProc(b []byte, num uint16) (nfqKernelStats, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] != strconv.Itoa(int(num)) {
			continue
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nfqKernelStats{}, false
			}
			v[i] = n
		}
		return nfqKernelStats{Waiting: int(v[2]), QueueDropped: int(v[5]), UserDropped: int(v[6]), LastID: uint32(v[7])}, true
	}
	return nfqKernelStats{}, false
}

// nlAttr is one netlink attribute to encode.
type nlAttr struct {
	typ  uint16
	data []byte
}

// nfqRequest encodes a netfilter queue request for queue num: a netlink
// header (host byte order), a struct nfgenmsg, and attrs, each padded to
// four bytes. Attribute payloads are in network byte order, as the
// protocol wants.
func nfqRequest(typ, flags uint16, seq uint32, num uint16, attrs ...nlAttr) []byte {
	size := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		size += nlaAlign(nlaHdrLen + len(a.data))
	}
	b := make([]byte, nlmsgHdrLen, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(size))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	// b[12:16], the port ID, stays 0: the message is for the kernel.
	b = append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, num)
	for _, a := range attrs {
		n := nlaHdrLen + len(a.data)
		b = ne.AppendUint16(b, uint16(n))
		b = ne.AppendUint16(b, a.typ)
		b = append(b, a.data...)
		b = append(b, make([]byte, nlaAlign(n)-n)...)
	}
	return b
}

// nfqVerdict encodes a verdict (typ nfqnlMsgVerdict) or batch verdict
// (nfqnlMsgVerdictBatch) for packet id of queue num.
func nfqVerdict(typ uint16, num uint16, id, verdict uint32) []byte {
	hdr := binary.BigEndian.AppendUint32(be32(verdict), id)
	return nfqRequest(nfqMsgType(typ), unix.NLM_F_REQUEST, 0, num, nlAttr{nfqaVerdictHdr, hdr})
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func nlaAlign(n int) int { return (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1) }

// nfqMsgKind tells the messages a queue socket receives apart.
type nfqMsgKind int

const (
	nfqOther  nfqMsgKind = iota // anything else, ignored
	nfqPacket                   // NFQNL_MSG_PACKET: a packet awaits a verdict
	nfqAck                      // NLMSG_ERROR: a request's acknowledgement or error
)

// nfqMsg is one message from the kernel, decoded.
type nfqMsg struct {
	kind nfqMsgKind
	// id is the packet's ID, for nfqPacket.
	id uint32
	// seq is the sequence number of the request answered, and errno its
	// error (0 for an acknowledgement), for nfqAck.
	seq   uint32
	errno unix.Errno
}

// errNFQMalformed is returned for a datagram that is not a well-formed
// sequence of netlink messages, or a packet message without its ID.
var errNFQMalformed = errors.New("malformed nfnetlink_queue message")

// parseNFQ decodes the netlink messages of one datagram b from a queue
// socket and appends them to msgs. It stops at the first malformed one,
// returning those before it and errNFQMalformed.
func parseNFQ(msgs []nfqMsg, b []byte) ([]nfqMsg, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return msgs, errNFQMalformed
		}
		n := int(ne.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			return msgs, errNFQMalformed
		}
		typ, seq, body := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[nlmsgHdrLen:n]
		b = b[min(nlaAlign(n), len(b)):]
		switch typ {
		case nfqMsgType(nfqnlMsgPacket):
			id, ok := nfqPacketID(body)
			if !ok {
				return msgs, errNFQMalformed
			}
			msgs = append(msgs, nfqMsg{kind: nfqPacket, id: id})
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return msgs, errNFQMalformed
			}
			code := int32(ne.Uint32(body))
			msgs = append(msgs, nfqMsg{kind: nfqAck, seq: seq, errno: unix.Errno(-code)})
		default:
			msgs = append(msgs, nfqMsg{kind: nfqOther})
		}
	}
	return msgs, nil
}

// nfqPacketID finds the packet ID in the body of an NFQNL_MSG_PACKET
// message: a struct nfgenmsg, then attributes.
func nfqPacketID(body []byte) (uint32, bool) {
	if len(body) < nfgenHdrLen {
		return 0, false
	}
	ne := binary.NativeEndian
	for a := body[nfgenHdrLen:]; len(a) >= nlaHdrLen; {
		n := int(ne.Uint16(a))
		if n < nlaHdrLen || n > len(a) {
			return 0, false
		}
		if ne.Uint16(a[2:])&nlaTypeMask == nfqaPacketHdr && n >= nlaHdrLen+4 {
			return binary.BigEndian.Uint32(a[nlaHdrLen:]), true
		}
		a = a[min(nlaAlign(n), len(a)):]
	}
	return 0, false
}
