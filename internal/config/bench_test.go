package config

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkBuild rebuilds a large configuration, as the controller does on
// every change: 1,000 pools of a /28 each (in 198.18.0.0/15, RFC 2544's
// benchmarking range), 20 L2 and 20 BGP announcements selecting them by
// label, 10 peers.
func BenchmarkBuild(b *testing.B) {
	var in Input
	base := netip.MustParseAddr("198.18.0.0").As4()
	for i := range 1000 {
		a := base
		a[2], a[3] = byte(i>>4), byte(i<<4)
		p := ippool(fmt.Sprintf("pool-%04d", i), i, netip.PrefixFrom(netip.AddrFrom4(a), 28).String())
		p.Labels = map[string]string{"group": fmt.Sprint(i % 20)}
		in.Pools = append(in.Pools, p)
	}
	for i := range 20 {
		l2 := l2ann(fmt.Sprintf("l2-%d", i), 0)
		l2.Spec.IPPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"group": fmt.Sprint(i)}}}
		in.L2 = append(in.L2, l2)
		ba := bgpann(fmt.Sprintf("bgp-%d", i), 0)
		ba.Spec.IPPoolSelectors = l2.Spec.IPPoolSelectors
		ba.Spec.AggregationLength = new(int32(28))
		in.BGPAnnouncements = append(in.BGPAnnouncements, ba)
	}
	for i := range 10 {
		in.BGPPeers = append(in.BGPPeers, bgppeer(fmt.Sprintf("peer-%d", i), 0, fmt.Sprintf("198.51.100.%d", i+1)))
	}
	prev, ps := Build(in, nil)
	if len(ps) > 0 {
		b.Fatal(errorStrings(ps)[0])
	}
	b.ReportAllocs()
	for b.Loop() {
		prev, _ = Build(in, prev)
	}
}
