package config

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// TestRandomPoolsNeverOverlap builds many random sets of IPPools crowded
// into small address spaces and checks the cross-object rule against a
// plain reference: pools are taken oldest first, and one is in force
// exactly when none of its ranges overlaps a pool already taken.
func TestRandomPoolsNeverOverlap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	entry := func() string {
		if r.IntN(3) == 0 {
			a := netip.MustParseAddr("2001:db8::").As16()
			a[15] = byte(r.IntN(256))
			return netip.PrefixFrom(netip.AddrFrom16(a), 120+r.IntN(9)).Masked().String()
		}
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(256))})
		switch r.IntN(3) {
		case 0:
			return a.String()
		case 1:
			return netip.PrefixFrom(a, 24+r.IntN(9)).Masked().String()
		default:
			b := netip.AddrFrom4([4]byte{198, 51, 100, byte(min(255, int(a.As4()[3])+r.IntN(20)))})
			return a.String() + "-" + b.String()
		}
	}
	for iter := range 300 {
		var in Input
		for i := range 2 + r.IntN(25) {
			var addrs []string
			for range 1 + r.IntN(3) {
				addrs = append(addrs, entry())
			}
			in.Pools = append(in.Pools, ippool(fmt.Sprintf("p%02d", i), r.IntN(5), addrs...))
		}
		c, _ := Build(in, nil)

		// Reference: oldest first (age, then name), naive pairwise checks.
		order := make([]v1alpha1.IPPool, len(in.Pools))
		copy(order, in.Pools)
		sortPoolsByAge(order)
		var taken []ipam.Range
		for _, p := range order {
			var rs []ipam.Range
			ok := true
			for _, s := range p.Spec.Addresses {
				rg, err := ipam.ParseRange(s)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range append(rs, taken...) {
					if rg.Overlaps(o) {
						ok = false
					}
				}
				rs = append(rs, rg)
			}
			if got := c.Pools[p.Name] != nil; got != ok {
				t.Fatalf("iteration %d: pool %s %v in force = %v, want %v", iter, p.Name, p.Spec.Addresses, got, ok)
			}
			if ok {
				taken = append(taken, rs...)
			}
		}
	}
}

func sortPoolsByAge(ps []v1alpha1.IPPool) {
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			a, b := ps[i], ps[j]
			if b.CreationTimestamp.Before(&a.CreationTimestamp) || b.CreationTimestamp.Equal(&a.CreationTimestamp) && b.Name < a.Name {
				ps[i], ps[j] = b, a
			}
		}
	}
}
