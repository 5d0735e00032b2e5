package l2

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
)

// addrSet is an immutable set of the addresses a Responder answers for:
// those it owns (SetAddrs) and those it answers for on behalf of another
// host (SetProxied). The read path loads the current one through an atomic
// pointer and never locks; SetAddrs and SetProxied build a new one and swap
// it in.
type addrSet struct {
	// m maps every address answered for to the MAC its answers name: the
	// Responder's own for an owned address, the other host's for a
	// proxied one, so that the read path needs one lookup for either. An
	// address both owned and proxied is owned.
	m map[netip.Addr][macLen]byte
	// list is the owned addresses, sorted: the ones announced.
	list []netip.Addr
	// proxied is the proxied addresses as SetProxied gave them, owned or
	// not, so that one comes back into m when SetAddrs drops it.
	proxied map[netip.Addr][macLen]byte
}

var emptySet = &addrSet{}

// lookup returns the MAC an answer for a names and true, or false if a is
// neither owned nor proxied. A nil map answers false without allocating,
// so the empty set needs no map.
func (s *addrSet) lookup(a netip.Addr) ([macLen]byte, bool) {
	hw, ok := s.m[a]
	return hw, ok
}

// owns reports whether a is owned, as opposed to proxied or unknown. It is
// not for the read path.
func (s *addrSet) owns(a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(s.list, a, netip.Addr.Compare)
	return ok
}

// newAddrSet validates addrs and builds a set owning them, answered for
// with own, with no proxied address. serves reports whether the Responder
// serves an address's family.
func newAddrSet(addrs []netip.Addr, own [macLen]byte, serves func(netip.Addr) bool) (*addrSet, error) {
	owned, err := validOwned(addrs, serves)
	if err != nil {
		return nil, err
	}
	return makeSet(owned, nil, own), nil
}

// withOwned returns a set of the owned addresses owned (valid, sorted,
// without duplicates: from validOwned), answered for with own, and s's
// proxied ones.
func (s *addrSet) withOwned(owned []netip.Addr, own [macLen]byte) *addrSet {
	return makeSet(owned, s.proxied, own)
}

// withProxied returns a set of s's owned addresses, answered for with own,
// and the proxied ones proxied (valid: from validProxied).
func (s *addrSet) withProxied(proxied map[netip.Addr][macLen]byte, own [macLen]byte) *addrSet {
	return makeSet(s.list, proxied, own)
}

// makeSet builds a set from validated parts, which it keeps, answering for
// the owned addresses with own.
func makeSet(owned []netip.Addr, proxied map[netip.Addr][macLen]byte, own [macLen]byte) *addrSet {
	if len(owned) == 0 && len(proxied) == 0 {
		return emptySet
	}
	s := &addrSet{m: make(map[netip.Addr][macLen]byte, len(owned)+len(proxied)), list: owned, proxied: proxied}
	for a, hw := range proxied {
		s.m[a] = hw
	}
	for _, a := range owned {
		s.m[a] = own // owned wins
	}
	return s
}

// validOwned validates addrs and returns them sorted, IPv4-mapped IPv6
// addresses unmapped and duplicates dropped.
func validOwned(addrs []netip.Addr, serves func(netip.Addr) bool) ([]netip.Addr, error) {
	var (
		out  []netip.Addr
		errs []error
	)
	for _, a := range addrs {
		a = a.Unmap()
		if err := checkServed(a, serves); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, a)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// validProxied validates addrs, a SetProxied argument, and returns it with
// IPv4-mapped IPv6 addresses unmapped and the MACs as arrays.
func validProxied(addrs map[netip.Addr]net.HardwareAddr, serves func(netip.Addr) bool) (map[netip.Addr][macLen]byte, error) {
	out := make(map[netip.Addr][macLen]byte, len(addrs))
	var errs []error
	// In order, for a stable error message.
	for _, a := range slices.SortedFunc(maps.Keys(addrs), netip.Addr.Compare) {
		hw := addrs[a]
		a = a.Unmap()
		if err := checkServed(a, serves); err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := checkMAC(hw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		if prev, dup := out[a]; dup && prev != m {
			// The same IPv4 address, once plain and once mapped.
			errs = append(errs, fmt.Errorf("%s: at both %s and %s: %w", a, net.HardwareAddr(prev[:]), hw, ErrInvalidMAC))
			continue
		}
		out[a] = m
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// checkMAC rejects what cannot be the hardware address of a host on an
// Ethernet LAN: anything but 6 bytes, the zero MAC, or a group address,
// which a client would then send its unicast traffic to, as multicast
// (and which answerARP and answerNS refuse as the asker's).
func checkMAC(hw net.HardwareAddr) ([macLen]byte, error) {
	if len(hw) != macLen {
		return [macLen]byte{}, fmt.Errorf("MAC %q is not 6 bytes: %w", hw, ErrInvalidMAC)
	}
	m := [macLen]byte(hw)
	if m == ([macLen]byte{}) || m[0]&1 != 0 {
		return [macLen]byte{}, fmt.Errorf("MAC %s is not a unicast address: %w", hw, ErrInvalidMAC)
	}
	return m, nil
}

// checkServed rejects an address that is invalid (checkAddr) or whose
// family serves says the Responder has no socket for.
func checkServed(a netip.Addr, serves func(netip.Addr) bool) error {
	if err := checkAddr(a); err != nil {
		return err
	}
	if !serves(a) {
		return fmt.Errorf("%s: %w", a, ErrFamily)
	}
	return nil
}

// limitedBroadcast is 255.255.255.255 (RFC 919), never a host's address.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// checkAddr rejects what cannot be a unicast address on a LAN.
func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("zero address: %w", ErrInvalidAddr)
	case a.Zone() != "":
		return fmt.Errorf("%s: has a zone: %w", a, ErrInvalidAddr)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a == limitedBroadcast:
		return fmt.Errorf("%s: not a unicast address: %w", a, ErrInvalidAddr)
	}
	return nil
}

// added returns the owned addresses of s that old does not own, in order.
func (s *addrSet) added(old *addrSet) []netip.Addr {
	var out []netip.Addr
	for _, a := range s.list {
		if !old.owns(a) {
			out = append(out, a)
		}
	}
	return out
}

// proxiedMACs returns s's proxied addresses as SetProxied took them.
func (s *addrSet) proxiedMACs() map[netip.Addr]net.HardwareAddr {
	out := make(map[netip.Addr]net.HardwareAddr, len(s.proxied))
	for a, hw := range s.proxied {
		out[a] = net.HardwareAddr(slices.Clone(hw[:]))
	}
	return out
}
