package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// Range is an inclusive span of addresses of one family, From <= To.
// Pools are made of ranges because operators write them three ways
// (CIDR, "a-b", single IP) and all three reduce to this.
type Range struct {
	From, To netip.Addr
}

// ParseRange parses one pool entry: a CIDR ("198.51.100.0/24"), an
// inclusive range ("198.51.100.87-198.51.100.97", spaces around the dash
// allowed) or a single address. Both ends of a range must be the same family
// and in order. IPv4-mapped IPv6 addresses (::ffff:0:0/96, RFC 4291
// section 2.5.5.2) are rejected, as ends and anywhere inside a range such
// as "::/64": they would let one address appear in both families.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	r, err := parseRange(s)
	if err == nil && r.Overlaps(mapped4) {
		return Range{}, fmt.Errorf("invalid range %q: it contains IPv4-mapped IPv6 addresses (::ffff:0:0/96)", s)
	}
	return r, err
}

// mapped4 is the IPv4-mapped IPv6 block ::ffff:0:0/96 (read-only).
var mapped4 = Range{From: netip.MustParseAddr("::ffff:0.0.0.0"), To: netip.MustParseAddr("::ffff:255.255.255.255")}

func parseRange(s string) (Range, error) {
	if s == "" {
		return Range{}, fmt.Errorf("empty address range")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
		}
		if p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("invalid CIDR %q: IPv4-mapped IPv6 addresses are not allowed", s)
		}
		p = p.Masked()
		return Range{From: p.Addr(), To: lastAddr(p)}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err := parseAddr(strings.TrimSpace(from))
		if err != nil {
			return Range{}, fmt.Errorf("invalid range %q: %w", s, err)
		}
		b, err := parseAddr(strings.TrimSpace(to))
		if err != nil {
			return Range{}, fmt.Errorf("invalid range %q: %w", s, err)
		}
		if a.Is4() != b.Is4() {
			return Range{}, fmt.Errorf("invalid range %q: ends are of different IP families", s)
		}
		if b.Less(a) {
			return Range{}, fmt.Errorf("invalid range %q: start is after end", s)
		}
		return Range{From: a, To: b}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return Range{}, err
	}
	return Range{From: a, To: a}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q: zones are not allowed", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q: IPv4-mapped IPv6 addresses are not allowed", s)
	}
	return a, nil
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 7; j >= 0; j-- {
			if i*8+(7-j) >= bits {
				b[i] |= 1 << j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a is inside r.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.From.BitLen() && !a.Less(r.From) && !r.To.Less(a)
}

// Overlaps reports whether r and o share at least one address.
func (r Range) Overlaps(o Range) bool {
	return r.From.BitLen() == o.From.BitLen() && !r.To.Less(o.From) && !o.To.Less(r.From)
}

// String formats r the way operators write it: a single address, or "a-b".
func (r Range) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	return r.From.String() + "-" + r.To.String()
}
