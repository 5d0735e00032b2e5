package labnet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

const (
	// nsPrefix starts the name of every namespace a lab creates; Sweep only
	// ever considers namespaces whose names start with it.
	nsPrefix = "ironlb-"
	// suffixLen is the number of hex digits in a lab's suffix.
	suffixLen = 6
	// switchHost is the host part of the switch namespace's name.
	switchHost = "lan"
	// bridgeName is the LAN bridge inside the switch namespace.
	bridgeName = "lan"
	// hostIfName is the LAN interface of every host, inside its namespace.
	hostIfName = "eth0"
	// maxIfNameLen is IFNAMSIZ minus the terminating NUL.
	maxIfNameLen = 15
)

// Host numbers, the last part of a host's IPv4 and IPv6 address (see
// hostAddrs). The router is .1 (router.go), cp .2 and the client .100.
//
// Nodes take two ranges, so that a lab of up to 89 nodes looks as it
// always has and a larger one still fits the /24:
//   - node-1 to node-89 are .11 to .99 (nodeHostBase+i), below the client;
//   - node-90 to node-180 are .150 to .240 (highNodeBase+i-90).
//
// The rule for addresses a test puts on the LAN itself (service pools,
// static addresses): .101-.149 are never a host's; from .150 up, a lab of
// N > 89 nodes holds .150 to .150+N-90, so a pool at .200 and above (the
// failover benchmark's .200-.209, test/realnodes' .200-.220) is clear of
// every lab below 140 nodes, and .241-.254 of every lab. A scale test
// that needs many addresses takes them from 2001:db8:1::1:0/112 or
// further out, never the hosts' 2001:db8:1::N.
const (
	cpHostNum     = 2
	nodeHostBase  = 10 // node-i is nodeHostBase+i, for i up to lowNodes
	clientHostNum = 100
	// lowNodes is the last node below the client: node-89 is .99.
	lowNodes = clientHostNum - nodeHostBase - 1
	// highNodeBase is the host number of node-(lowNodes+1).
	highNodeBase = 150
	// MaxNodes is the largest Options.Nodes: node-180 is .240.
	MaxNodes = 180
)

// nodeHostNum is the host number of node i (1-based, up to MaxNodes).
func nodeHostNum(i int) int {
	if i <= lowNodes {
		return nodeHostBase + i
	}
	return highNodeBase + i - lowNodes - 1
}

// The LAN's prefixes (RFC 5737 TEST-NET-2 and RFC 3849 documentation space).
var (
	lanV4 = netip.MustParsePrefix("198.51.100.0/24")
	lanV6 = netip.MustParsePrefix("2001:db8:1::/64")
)

// newSuffix returns a random suffix; reserveMarker makes it unique.
func newSuffix() (string, error) {
	b := make([]byte, suffixLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random suffix: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// nsName is the name of a lab namespace.
func nsName(suffix, host string) string { return nsPrefix + suffix + "-" + host }

// parseNSName returns the suffix of a lab namespace name, and false if name
// is not one.
func parseNSName(name string) (suffix string, ok bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return "", false
	}
	suffix, host, ok := strings.Cut(rest, "-")
	if !ok || host == "" || !isSuffix(suffix) {
		return "", false
	}
	return suffix, true
}

// isSuffix reports whether s has the shape of a lab suffix.
func isSuffix(s string) bool {
	if len(s) != suffixLen {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// nodeName is the host name of node i (1-based).
func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// hostAddrs returns the LAN addresses of host number n. The IPv6 address
// repeats the decimal digits of the IPv4 host number (.11 and ::11), which
// is easier to read than converting to hex.
func hostAddrs(n int) (v4, v6 netip.Addr) {
	b := lanV4.Addr().As4()
	b[3] = byte(n)
	v4 = netip.AddrFrom4(b)
	v6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%d", n))
	return v4, v6
}
