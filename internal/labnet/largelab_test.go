package labnet

import (
	"net/netip"
	"testing"
	"time"
)

// TestLargeLab builds the largest lab and checks that the hosts on either
// side of the numbering's jump (node-89 at .99, node-90 at .150) and the
// last node reach each other over both families: the switch takes every
// port, no interface name is too long, and the address ranges do not
// overlap the client's.
func TestLargeLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a lab of MaxNodes nodes")
	}
	start := time.Now()
	l := NewForTest(t, Options{Nodes: MaxNodes})
	t.Logf("%d nodes built in %s", MaxNodes, time.Since(start).Round(time.Millisecond))
	ctx := t.Context()
	for _, tc := range []struct {
		from *Host
		to   int
		v4   string
	}{
		{l.Client(), lowNodes, "198.51.100.99"},
		{l.Client(), lowNodes + 1, "198.51.100.150"},
		{l.Node(lowNodes + 1), MaxNodes, "198.51.100.240"},
		{l.Node(MaxNodes), 1, "198.51.100.11"},
	} {
		to := l.Node(tc.to)
		if to.IPv4.String() != tc.v4 {
			t.Errorf("%s is %s, want %s", to.Name, to.IPv4, tc.v4)
		}
		for _, ip := range []netip.Addr{to.IPv4, to.IPv6} {
			if _, err := tc.from.Ping(ctx, ip); err != nil {
				t.Errorf("%s -> %s (%s): %v", tc.from.Name, to.Name, ip, err)
			}
		}
	}
}
