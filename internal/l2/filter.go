package l2

import "golang.org/x/net/bpf"

// The BPF programs below run in the kernel on every frame of the socket's
// EtherType, so that only the frames a Responder may answer wake it up: on
// a busy LAN most ARP is replies and announcements, and most IPv6 is not
// NDP at all. They look at the whole Ethernet frame (the sockets are
// packet.Raw); the handlers validate everything again, so the filters are
// an optimisation, not a defence.

// maxSnap is what a filter keeps of an accepted frame: all of it.
const maxSnap = 1 << 16

// arpRequestFilter accepts ARP requests (operation 1, RFC 826).
func arpRequestFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeARP, SkipTrue: 3},
		bpf.LoadAbsolute{Off: etherHdrLen + 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arpOpRequest, SkipTrue: 1},
		bpf.RetConstant{Val: maxSnap},
		bpf.RetConstant{Val: 0},
	})
}

// solicitationFilter accepts IPv6 packets whose next header is ICMPv6 and
// whose ICMPv6 type is Neighbor Solicitation (RFC 4861 section 4.3).
func solicitationFilter() ([]bpf.RawInstruction, error) { return icmpv6Filter(icmpTypeNS) }

// advertisementFilter accepts IPv6 packets whose next header is ICMPv6
// and whose ICMPv6 type is Neighbor Advertisement (RFC 4861 section 4.4):
// the prober's.
func advertisementFilter() ([]bpf.RawInstruction, error) { return icmpv6Filter(icmpTypeNA) }

// icmpv6Filter accepts IPv6 packets whose next header is ICMPv6 and whose
// ICMPv6 type is typ.
func icmpv6Filter(typ uint32) ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 5},
		bpf.LoadAbsolute{Off: etherHdrLen + 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: icmpOff, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: typ, SkipTrue: 1},
		bpf.RetConstant{Val: maxSnap},
		bpf.RetConstant{Val: 0},
	})
}
