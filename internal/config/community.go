package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Community is one BGP community. A standard community (RFC 1997) is two
// 16-bit numbers, ASN:value, held in High and Low. A large community
// (RFC 8092) is three 32-bit numbers, held in Global, Local1 and Local2.
// Community is comparable.
type Community struct {
	Large bool
	// Standard community.
	High, Low uint16
	// Large community.
	Global, Local1, Local2 uint32
}

// Value returns a standard community as the 32-bit number on the wire.
func (c Community) Value() uint32 { return uint32(c.High)<<16 | uint32(c.Low) }

// String formats c the way it is written in config: "65535:65281" or
// "large:1:2:3".
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.Global, c.Local1, c.Local2)
	}
	return fmt.Sprintf("%d:%d", c.High, c.Low)
}

// wellKnownCommunities are the communities with IANA names.
var wellKnownCommunities = map[string]Community{
	"graceful-shutdown":   {High: 0xFFFF, Low: 0x0000}, // RFC 8326
	"accept-own":          {High: 0xFFFF, Low: 0x0001}, // RFC 7611
	"llgr-stale":          {High: 0xFFFF, Low: 0x0006}, // RFC 9494
	"no-llgr":             {High: 0xFFFF, Low: 0x0007}, // RFC 9494
	"blackhole":           {High: 0xFFFF, Low: 0x029A}, // RFC 7999
	"no-export":           {High: 0xFFFF, Low: 0xFF01}, // RFC 1997
	"no-advertise":        {High: 0xFFFF, Low: 0xFF02}, // RFC 1997
	"no-export-subconfed": {High: 0xFFFF, Low: 0xFF03}, // RFC 1997
	"no-peer":             {High: 0xFFFF, Low: 0xFF04}, // RFC 3765
}

// parseCommunityValue parses a literal community: "ASN:value" or
// "large:global:local1:local2".
func parseCommunityValue(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, "large:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return Community{}, fmt.Errorf("%q is not a large community: write large:global:local1:local2", s)
		}
		var n [3]uint32
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("%q is not a large community: each part must be a number from 0 to 4294967295", s)
			}
			n[i] = uint32(v)
		}
		return Community{Large: true, Global: n[0], Local1: n[1], Local2: n[2]}, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(lo, ":") {
		return Community{}, fmt.Errorf("%q is not a community: write ASN:value (65535:65282) or large:global:local1:local2", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return Community{}, fmt.Errorf("%q is not a community: both parts of ASN:value must be numbers from 0 to 65535 (use large:global:local1:local2 for bigger numbers)", s)
	}
	return Community{High: uint16(h), Low: uint16(l)}, nil
}

// resolveCommunity turns what an operator wrote into a community: an alias
// from the legacy bgp-communities first (as MetalLB does), then a
// well-known name, then a literal.
func resolveCommunity(s string, aliases map[string]Community) (Community, error) {
	if c, ok := aliases[s]; ok {
		return c, nil
	}
	if c, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return c, nil
	}
	if !strings.Contains(s, ":") {
		return Community{}, fmt.Errorf("%q is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap", s)
	}
	return parseCommunityValue(s)
}
