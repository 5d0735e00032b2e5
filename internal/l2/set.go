package l2

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// addrSet is an immutable set of owned addresses. The read path loads the
// current one through an atomic pointer and never locks; SetAddrs builds a
// new one and swaps it in.
type addrSet struct {
	m    map[netip.Addr]struct{}
	list []netip.Addr // sorted
}

var emptySet = &addrSet{}

// has reports whether a is owned. A nil map answers false without
// allocating, so the empty set needs no map.
func (s *addrSet) has(a netip.Addr) bool {
	_, ok := s.m[a]
	return ok
}

// newAddrSet validates addrs and builds a set of them, IPv4-mapped IPv6
// addresses unmapped and duplicates dropped. serves reports whether the
// Responder serves an address's family.
func newAddrSet(addrs []netip.Addr, serves func(netip.Addr) bool) (*addrSet, error) {
	if len(addrs) == 0 {
		return emptySet, nil
	}
	s := &addrSet{m: make(map[netip.Addr]struct{}, len(addrs))}
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		if err := checkAddr(a); err != nil {
			errs = append(errs, err)
			continue
		}
		if !serves(a) {
			errs = append(errs, fmt.Errorf("%s: %w", a, ErrFamily))
			continue
		}
		if _, dup := s.m[a]; !dup {
			s.m[a] = struct{}{}
			s.list = append(s.list, a)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(s.list, netip.Addr.Compare)
	return s, nil
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

// added returns the addresses of s that old lacks, in order.
func (s *addrSet) added(old *addrSet) []netip.Addr {
	var out []netip.Addr
	for _, a := range s.list {
		if !old.has(a) {
			out = append(out, a)
		}
	}
	return out
}
