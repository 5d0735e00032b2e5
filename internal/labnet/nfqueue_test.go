package labnet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Netlink headers are in host byte order, the rest of nfnetlink_queue's
// fields in network byte order; these build the former for expectations.
func ne16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// nlHdr is a netlink message header of total length n.
func nlHdr(n uint32, typ, flags uint16, seq uint32) []byte {
	return bytes.Join([][]byte{ne32(n), ne16(typ), ne16(flags), ne32(seq), ne32(0)}, nil)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestNFQueueEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{
			name: "bind",
			got:  nfqRequest(nfqMsgType(nfqnlMsgConfig), unix.NLM_F_REQUEST|unix.NLM_F_ACK, 1, 7, nlAttr{nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0}}),
			want: cat(nlHdr(28, 0x0302, 0x5, 1), []byte{0, 0, 0, 7}, ne16(8), ne16(1), []byte{1, 0, 0, 0}),
		},
		{
			// The packed 5-byte nfqnl_msg_config_params is padded to 8.
			name: "params",
			got: nfqRequest(nfqMsgType(nfqnlMsgConfig), unix.NLM_F_REQUEST, 2, 0x102,
				nlAttr{nfqaCfgParams, append(be32(0), nfqnlCopyMeta)}, nlAttr{nfqaCfgQueueMaxlen, be32(8192)}),
			want: cat(nlHdr(40, 0x0302, 0x1, 2), []byte{0, 0, 1, 2},
				ne16(9), ne16(2), []byte{0, 0, 0, 0, 1, 0, 0, 0},
				ne16(8), ne16(3), []byte{0, 0, 0x20, 0}),
		},
		{
			name: "accept",
			got:  nfqVerdict(nfqnlMsgVerdict, 1, 0x01020304, nfAccept),
			want: cat(nlHdr(32, 0x0301, 0x1, 0), []byte{0, 0, 0, 1}, ne16(12), ne16(2), []byte{0, 0, 0, 1, 1, 2, 3, 4}),
		},
		{
			name: "drop",
			got:  nfqVerdict(nfqnlMsgVerdict, 1, 9, nfDrop),
			want: cat(nlHdr(32, 0x0301, 0x1, 0), []byte{0, 0, 0, 1}, ne16(12), ne16(2), []byte{0, 0, 0, 0, 0, 0, 0, 9}),
		},
		{
			name: "batch",
			got:  nfqVerdict(nfqnlMsgVerdictBatch, 1, 0x40000005, nfAccept),
			want: cat(nlHdr(32, 0x0303, 0x1, 0), []byte{0, 0, 0, 1}, ne16(12), ne16(2), []byte{0, 0, 0, 1, 0x40, 0, 0, 5}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// packetMsg is an NFQNL_MSG_PACKET as the kernel sends it in metadata
// mode: the packet header (11 bytes, padded), then the output interface.
func packetMsg(id uint32) []byte {
	hdr := cat(ne16(11), ne16(nfqaPacketHdr), binary.BigEndian.AppendUint32(nil, id), []byte{0x08, 0x00, 4, 0})
	outdev := cat(ne16(8), ne16(6), []byte{0, 0, 0, 2})
	return cat(nlHdr(uint32(16+4+len(hdr)+len(outdev)), 0x0300, 0, 0), []byte{unix.AF_INET, 0, 0, 1}, hdr, outdev)
}

func ackMsg(seq uint32, errno unix.Errno) []byte {
	orig := nlHdr(28, 0x0302, 0x5, seq)
	return cat(nlHdr(uint32(16+4+len(orig)), unix.NLMSG_ERROR, 0, seq), ne32(uint32(-int32(errno))), orig)
}

func TestNFQueueParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []nfqMsg
		wantErr bool
	}{
		{name: "packet", in: packetMsg(0x01020304), want: []nfqMsg{{kind: nfqPacket, id: 0x01020304}}},
		{name: "two packets", in: cat(packetMsg(1), packetMsg(2)), want: []nfqMsg{{kind: nfqPacket, id: 1}, {kind: nfqPacket, id: 2}}},
		{
			// Interfaces first, the packet header after: order does not
			// matter, nor NLA_F_NET_BYTEORDER.
			name: "header last",
			in: cat(nlHdr(36, 0x0300, 0, 0), []byte{unix.AF_INET6, 0, 0, 1},
				ne16(8), ne16(5), []byte{0, 0, 0, 2}, ne16(8), ne16(0x4000|nfqaPacketHdr), []byte{0, 0, 0, 42}),
			want: []nfqMsg{{kind: nfqPacket, id: 42}},
		},
		{name: "ack", in: ackMsg(2, 0), want: []nfqMsg{{kind: nfqAck, seq: 2}}},
		{name: "busy", in: ackMsg(1, unix.EBUSY), want: []nfqMsg{{kind: nfqAck, seq: 1, errno: unix.EBUSY}}},
		{name: "other", in: cat(nlHdr(16, unix.NLMSG_NOOP, 0, 0)), want: []nfqMsg{{kind: nfqOther}}},
		{name: "empty", in: nil, want: nil},
		{name: "short header", in: packetMsg(1)[:10], wantErr: true},
		{name: "truncated", in: packetMsg(1)[:30], wantErr: true},
		{name: "length below header", in: cat(nlHdr(8, 0x0300, 0, 0)), wantErr: true},
		{name: "packet without header", in: cat(nlHdr(28, 0x0300, 0, 0), []byte{2, 0, 0, 1}, ne16(8), ne16(6), ne32(2)), wantErr: true},
		{name: "packet header too short", in: cat(nlHdr(28, 0x0300, 0, 0), []byte{2, 0, 0, 1}, ne16(6), ne16(1), []byte{0, 0, 0, 0}), wantErr: true},
		{name: "attribute past the end", in: cat(nlHdr(28, 0x0300, 0, 0), []byte{2, 0, 0, 1}, ne16(40), ne16(1), ne32(2)), wantErr: true},
		{name: "error without code", in: nlHdr(16, unix.NLMSG_ERROR, 0, 0), wantErr: true},
		{name: "good then bad", in: cat(packetMsg(5), []byte{1, 2, 3}), want: []nfqMsg{{kind: nfqPacket, id: 5}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNFQ(nil, tc.in)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(nfqMsg{})); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestNFQueueProc(t *testing.T) {
	// As net/netfilter/nfnetlink_queue.c prints it.
	const proc = "    0  -4123     0 2 65531     0     0        0  1\n" +
		"    1   4711    12 1     0     3     7      123  1\n"
	for _, tc := range []struct {
		num    uint16
		want   nfqKernelStats
		wantOK bool
	}{
		{num: 1, want: nfqKernelStats{Waiting: 12, QueueDropped: 3, UserDropped: 7, LastID: 123}, wantOK: true},
		{num: 2},
		// A negative port ID does not parse as a counter.
		{num: 0},
	} {
		got, ok := parseNFQProc([]byte(proc), tc.num)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("queue %d: %+v, %v; want %+v, %v", tc.num, got, ok, tc.want, tc.wantOK)
		}
	}
}

func FuzzNFQueueParse(f *testing.F) {
	f.Add(packetMsg(1))
	f.Add(cat(packetMsg(1), ackMsg(3, unix.ENOENT)))
	f.Add(ackMsg(2, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _ := parseNFQ(nil, b)
		// Every message takes at least a netlink header.
		if len(msgs) > len(b)/nlmsgHdrLen {
			t.Errorf("%d messages from %d bytes", len(msgs), len(b))
		}
	})
}
