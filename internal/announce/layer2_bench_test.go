package announce

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
)

// BenchmarkLayer2 is one speaker's Layer 2 round (NewRound, then the
// election of every address) with 1,000 Services, each with its own
// address, every node alive and eligible, as clusters grow: the work a
// speaker repeats at every sync. "steady": every address has an owner
// that stays one (a cluster at rest); "half-new": half of them need one
// chosen, by rendezvous hashing over every node (as after the failure of
// a node that owned half of them: far more than any node owns).
//
//	go test ./internal/announce -run '^$' -bench Layer2 -benchmem
func BenchmarkLayer2(b *testing.B) {
	cfg := benchConfig(b)
	const services = 1000
	for _, tc := range []struct {
		n     int
		owned int // one address in owned has an owner
	}{{100, 1}, {1000, 1}, {5000, 1}, {100, 2}, {1000, 2}, {5000, 2}} {
		name := map[int]string{1: "steady", 2: "half-new"}[tc.owned]
		n := tc.n
		b.Run(fmt.Sprintf("%s/nodes=%d", name, n), func(b *testing.B) {
			ns := map[string]Node{}
			alive := map[string]bool{}
			for i := range n {
				node := ready(fmt.Sprintf("node-%04d", i))
				ns[node.Name] = node
				alive[node.Name] = true
			}
			var svcs []Service
			current := map[netip.Addr]string{}
			ip := netip.MustParseAddr("2001:db8:1::")
			for i := range services {
				ip = ip.Next()
				svcs = append(svcs, Service{Key: fmt.Sprintf("ns/svc-%d", i), IPs: []netip.Addr{ip}})
				if i%tc.owned == 0 {
					current[ip] = fmt.Sprintf("node-%04d", i%n)
				}
			}
			v := View{Config: cfg, Nodes: ns, Alive: alive, Services: svcs, Current: current}
			b.ReportAllocs()
			for b.Loop() {
				ds := NewRound(v).Layer2(election.StickyOwner)
				if len(ds) != services {
					b.Fatalf("%d decisions, want %d", len(ds), services)
				}
			}
		})
	}
}

// BenchmarkRebalance is one speaker's search for the next rebalancing
// move over the decisions of a steady round (BenchmarkLayer2), every
// address on the first tenth of the nodes: work the speaker repeats at
// every sync while rebalancing is on.
//
//	go test ./internal/announce -run '^$' -bench Rebalance -benchmem
func BenchmarkRebalance(b *testing.B) {
	cfg := benchConfig(b)
	const services = 1000
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			ns := map[string]Node{}
			for i := range n {
				node := ready(fmt.Sprintf("node-%04d", i))
				ns[node.Name] = node
			}
			var svcs []Service
			current := map[netip.Addr]string{}
			ip := netip.MustParseAddr("2001:db8:1::")
			for i := range services {
				ip = ip.Next()
				svcs = append(svcs, Service{Key: fmt.Sprintf("ns/svc-%d", i), IPs: []netip.Addr{ip}})
				current[ip] = fmt.Sprintf("node-%04d", i%max(1, n/10))
			}
			ds := NewRound(View{Config: cfg, Nodes: ns, Services: svcs, Current: current}).Layer2(election.StickyOwner)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := Rebalance(ds); !ok {
					b.Fatal("no move found")
				}
			}
		})
	}
}

// benchConfig is one IPv6 Layer 2 pool announced from every node.
func benchConfig(b *testing.B) *config.Config {
	in := config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"2001:db8:1::/112"}}}},
		L2: []v1alpha1.L2Announcement{{ObjectMeta: metav1.ObjectMeta{Name: "all"},
			Spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"lan"}}}},
	}
	cfg, problems := config.Build(in, nil)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	return cfg
}
