package election

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Detection traffic: what the failure detector costs each member at rest,
// on the wire (IP and UDP headers included), for a few cluster sizes. A
// member sends memberlist's probes (one ping per ProbeInterval, answered
// by an ack) and a heartbeat to every other member per HeartbeatInterval,
// and answers the others' pings; push/pull (TCP, every PushPullInterval)
// and the lab's own frames (ARP, IPv6 neighbour discovery) are in the
// counters too, at rest a small part. So per member and second, sent:
//
//	packets ≈ 2/ProbeInterval + p/HeartbeatInterval  = 20 + 40p
//
// and as many received, where p is n-1 up to HeartbeatPeers and
// HeartbeatPeers beyond (the ring, ring.go). Run with:
//
//	sudo go test ./internal/election -run '^$' -bench LabTraffic -benchtime 1x
//
// It prints `name value unit` lines for 3, 5, 10 and 20 members
// (IRONLB_TRAFFIC_SIZES sets others, comma-separated).
func BenchmarkLabTraffic(b *testing.B) {
	sizes := []int{3, 5, 10, 20}
	if s := os.Getenv("IRONLB_TRAFFIC_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 || n > labnet.MaxNodes {
				b.Fatalf("IRONLB_TRAFFIC_SIZES: %q: want numbers from 2 to %d", f, labnet.MaxNodes)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			l := labnet.NewForTest(b, labnet.Options{Nodes: n})
			views, _ := startLabMembers(b, l)
			all := slices.Sorted(slices.Values(nodeNames(l))) // as views list them: node-10 before node-2
			if !views.settle(all, 2*time.Second, 30*time.Second) {
				b.Fatalf("the cluster did not settle: %s", views)
			}
			const window = 10 * time.Second
			before := counters(b, l)
			time.Sleep(window)
			after := counters(b, l)
			var txp, txb, rxp, rxb float64
			for i := range after {
				txp += float64(after[i].TxPackets - before[i].TxPackets)
				txb += float64(after[i].TxBytes - before[i].TxBytes)
				rxp += float64(after[i].RxPackets - before[i].RxPackets)
				rxb += float64(after[i].RxBytes - before[i].RxBytes)
			}
			per := float64(n) * window.Seconds()
			// The veth counts Ethernet frames: 14 bytes of header more
			// than the IP packet.
			fmt.Printf("detection_traffic_members_%d_sent_packets_per_node %.0f packets/s\n", n, txp/per)
			fmt.Printf("detection_traffic_members_%d_sent_bytes_per_node %.0f bytes/s\n", n, txb/per)
			fmt.Printf("detection_traffic_members_%d_received_packets_per_node %.0f packets/s\n", n, rxp/per)
			fmt.Printf("detection_traffic_members_%d_received_bytes_per_node %.0f bytes/s\n", n, rxb/per)
			fmt.Printf("detection_traffic_members_%d_formula_sent_packets_per_node %.0f packets/s\n", n,
				2/DefaultProbeInterval.Seconds()+float64(min(n-1, DefaultHeartbeatPeers))/DefaultHeartbeatInterval.Seconds())
			b.ReportMetric(txp/per, "pkts/s/node")
			b.ReportMetric(txb/per, "B/s/node")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// counters reads the LAN interface's counters of every node of l.
func counters(t testing.TB, l *labnet.Lab) []netlink.LinkStatistics {
	var out []netlink.LinkStatistics
	for _, h := range l.Nodes() {
		var st netlink.LinkStatistics
		err := h.Do(func() error {
			link, err := netlink.LinkByName(h.IfName)
			if err != nil {
				return err
			}
			if s := link.Attrs().Statistics; s != nil {
				st = netlink.LinkStatistics(*s)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}
