package speaker

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ironlb/ironlb/internal/l2"
)

// TestL2Collector checks the Layer 2 packet counts are exported by
// interface, family and kind, each counter in its place, and that no
// responder yet (before Start) exports nothing.
func TestL2Collector(t *testing.T) {
	stats := map[string]l2.Stats{}
	c := newL2Collector(func() map[string]l2.Stats { return stats })
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("no responder: %d series, want 0", n)
	}
	stats["eth0"] = l2.Stats{
		ARP: l2.Counters{Requests: 10, Replies: 4, Announcements: 3, Invalid: 2, Errors: 1},
		NDP: l2.Counters{Requests: 20, Replies: 8, Announcements: 6},
	}
	stats["bond0"] = l2.Stats{ARP: l2.Counters{Requests: 7}}
	want := `
# HELP ironlb_speaker_l2_packets_total ARP (family ipv4) and NDP (ipv6) packets on each interface the speaker answers on: requests received (for any address), replies sent (for the addresses this node announces), announcements sent (gratuitous ARP, unsolicited neighbour advertisements), invalid frames dropped, and socket errors.
# TYPE ironlb_speaker_l2_packets_total counter
ironlb_speaker_l2_packets_total{family="ipv4",interface="bond0",kind="announcements"} 0
ironlb_speaker_l2_packets_total{family="ipv4",interface="bond0",kind="errors"} 0
ironlb_speaker_l2_packets_total{family="ipv4",interface="bond0",kind="invalid"} 0
ironlb_speaker_l2_packets_total{family="ipv4",interface="bond0",kind="replies"} 0
ironlb_speaker_l2_packets_total{family="ipv4",interface="bond0",kind="requests"} 7
ironlb_speaker_l2_packets_total{family="ipv4",interface="eth0",kind="announcements"} 3
ironlb_speaker_l2_packets_total{family="ipv4",interface="eth0",kind="errors"} 1
ironlb_speaker_l2_packets_total{family="ipv4",interface="eth0",kind="invalid"} 2
ironlb_speaker_l2_packets_total{family="ipv4",interface="eth0",kind="replies"} 4
ironlb_speaker_l2_packets_total{family="ipv4",interface="eth0",kind="requests"} 10
ironlb_speaker_l2_packets_total{family="ipv6",interface="bond0",kind="announcements"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="bond0",kind="errors"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="bond0",kind="invalid"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="bond0",kind="replies"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="bond0",kind="requests"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="eth0",kind="announcements"} 6
ironlb_speaker_l2_packets_total{family="ipv6",interface="eth0",kind="errors"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="eth0",kind="invalid"} 0
ironlb_speaker_l2_packets_total{family="ipv6",interface="eth0",kind="replies"} 8
ironlb_speaker_l2_packets_total{family="ipv6",interface="eth0",kind="requests"} 20
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
