package ipam

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
)

// Family is an IP address family. A dual-stack Service gets one address of
// each, so the allocator is asked for addresses family by family, and pool
// statistics are kept per family because "10 free" means nothing when the
// Service needs IPv6 and all ten are IPv4.
//
// The zero Family is invalid, so a forgotten field is an error, not IPv4.
type Family int

const (
	// IPv4 is the 32-bit family (RFC 791).
	IPv4 Family = 4
	// IPv6 is the 128-bit family (RFC 8200).
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6", the words operators see in messages.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FamilyOf returns the family of a, or 0 for the zero Addr. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is IPv6, as netip sees it;
// pools never contain such addresses (see ParseRange).
func FamilyOf(a netip.Addr) Family {
	switch {
	case !a.IsValid():
		return 0
	case a.Is4():
		return IPv4
	}
	return IPv6
}

// u128 is an address as an unsigned integer, so that ranges can be counted
// and stepped through without touching byte slices. IPv4 addresses live in
// the low 32 bits; the two families are never mixed in one structure.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr converts u back to an address of family f.
func (u u128) addr(f Family) netip.Addr {
	if f == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi:
		return -1
	case u.hi > v.hi:
		return 1
	case u.lo < v.lo:
		return -1
	case u.lo > v.lo:
		return 1
	}
	return 0
}

func (u u128) less(v u128) bool { return u.cmp(v) < 0 }

// inc returns u+1. Callers never step past the top of the address space.
func (u u128) inc() u128 {
	if u.lo == math.MaxUint64 {
		return u128{hi: u.hi + 1}
	}
	return u128{hi: u.hi, lo: u.lo + 1}
}

// dec returns u-1. Callers never step below zero.
func (u u128) dec() u128 {
	if u.lo == 0 {
		return u128{hi: u.hi - 1, lo: math.MaxUint64}
	}
	return u128{hi: u.hi, lo: u.lo - 1}
}

var maxU128 = u128{math.MaxUint64, math.MaxUint64}

// sub returns u-v; callers guarantee v <= u.
func (u u128) sub(v u128) u128 {
	lo, borrow := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, borrow)
	return u128{hi, lo}
}

// addSat returns u+v, saturated at 2^128-1.
func (u u128) addSat(v u128) u128 {
	lo, carry := bits.Add64(u.lo, v.lo, 0)
	hi, carry := bits.Add64(u.hi, v.hi, carry)
	if carry != 0 {
		return maxU128
	}
	return u128{hi, lo}
}

// sat64 returns u, saturated at math.MaxUint64.
func (u u128) sat64() uint64 {
	if u.hi != 0 {
		return math.MaxUint64
	}
	return u.lo
}

// size returns to-from+1, saturated at 2^128-1 (the whole IPv6 space has
// one address more than that).
func size(from, to u128) u128 {
	d := to.sub(from)
	if d == maxU128 {
		return d
	}
	return d.inc()
}

// isBuggy reports whether a is an IPv4 address ending in .0 or .255. Some
// old client stacks and CPE routers treat those as network or broadcast
// addresses whatever the prefix length, and drop traffic to them.
func isBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

// buggyUpTo counts the IPv4 values in [0, n] whose last byte is 0 or 255.
func buggyUpTo(n uint64) uint64 {
	return n/256 + 1 + (n+1)/256
}

// buggyIn counts the IPv4 values in [from, to] whose last byte is 0 or 255.
func buggyIn(from, to uint64) uint64 {
	c := buggyUpTo(to)
	if from > 0 {
		c -= buggyUpTo(from - 1)
	}
	return c
}
