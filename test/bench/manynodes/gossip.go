package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Gossip traffic is counted where it is exact: by nftables counters in
// each node's own namespace, one for what the node receives (input hook)
// and one for what it sends (output hook), on the memberlist port, UDP
// and TCP. A packet counts once whichever end holds the port: memberlist
// sends UDP from its port to the peer's, and a push/pull connection runs
// from an ephemeral port to the peer's; so each direction has two rules,
// destination port, then source port with any other destination. The
// counters count IP packets, headers included, not Ethernet frames.

// gossipTable is the nftables table the counters live in, in every node's
// namespace (which the lab deletes with its contents).
const gossipTable = "manynodes_gossip"

// traffic is what one node sent and received on the gossip port so far,
// and when it was read.
type traffic struct {
	At                 time.Time
	TxPackets, TxBytes uint64
	RxPackets, RxBytes uint64
}

// countGossip installs the counters in h's namespace.
func countGossip(ctx context.Context, h *labnet.Host, port int) error {
	p := strconv.Itoa(port)
	var script string
	add := func(s string) { script += s + "; " }
	add("add table inet " + gossipTable)
	for _, c := range []struct{ counter, chain, hook string }{{"rx", "in", "input"}, {"tx", "out", "output"}} {
		add(fmt.Sprintf("add counter inet %s %s", gossipTable, c.counter))
		add(fmt.Sprintf("add chain inet %s %s { type filter hook %s priority 0; }", gossipTable, c.chain, c.hook))
		add(fmt.Sprintf("add rule inet %s %s meta l4proto { tcp, udp } th dport %s counter name %s", gossipTable, c.chain, p, c.counter))
		add(fmt.Sprintf("add rule inet %s %s meta l4proto { tcp, udp } th sport %s th dport != %s counter name %s", gossipTable, c.chain, p, p, c.counter))
	}
	// nft reads one command line as a script: `;` separates commands.
	if _, err := h.Run(ctx, "nft", script); err != nil {
		return fmt.Errorf("%s: gossip counters: %w", h.Name, err)
	}
	return nil
}

// readGossip reads h's counters.
func readGossip(ctx context.Context, h *labnet.Host) (traffic, error) {
	out, err := h.Run(ctx, "nft", "list", "counters", "table", "inet", gossipTable)
	at := time.Now()
	if err != nil {
		return traffic{}, fmt.Errorf("%s: read gossip counters: %w", h.Name, err)
	}
	t, err := parseCounters(string(out))
	if err != nil {
		return traffic{}, fmt.Errorf("%s: %w", h.Name, err)
	}
	t.At = at
	return t, nil
}

// counterRE matches one named counter of `nft list counters`:
//
//	counter rx {
//		packets 12 bytes 3456
//	}
var counterRE = regexp.MustCompile(`counter (\w+) \{\s*packets (\d+) bytes (\d+)`)

// parseCounters reads the rx and tx counters from `nft list counters`.
func parseCounters(text string) (traffic, error) {
	var t traffic
	var rx, tx bool
	for _, m := range counterRE.FindAllStringSubmatch(text, -1) {
		packets, err1 := strconv.ParseUint(m[2], 10, 64)
		bytes, err2 := strconv.ParseUint(m[3], 10, 64)
		if err1 != nil || err2 != nil {
			return t, fmt.Errorf("gossip counter %q: not numbers", m[0])
		}
		switch m[1] {
		case "rx":
			t.RxPackets, t.RxBytes, rx = packets, bytes, true
		case "tx":
			t.TxPackets, t.TxBytes, tx = packets, bytes, true
		}
	}
	if !rx || !tx {
		return t, fmt.Errorf("gossip counters: rx or tx missing in %q", text)
	}
	return t, nil
}

// rate is the traffic per second from t0 to t1.
type rate struct {
	TxPackets, TxBytes, RxPackets, RxBytes float64
}

func rateBetween(t0, t1 traffic) rate {
	s := t1.At.Sub(t0.At).Seconds()
	if s <= 0 {
		return rate{}
	}
	return rate{
		TxPackets: float64(t1.TxPackets-t0.TxPackets) / s,
		TxBytes:   float64(t1.TxBytes-t0.TxBytes) / s,
		RxPackets: float64(t1.RxPackets-t0.RxPackets) / s,
		RxBytes:   float64(t1.RxBytes-t0.RxBytes) / s,
	}
}
