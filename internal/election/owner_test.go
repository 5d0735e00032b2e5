package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ips returns n consecutive addresses from start, as a block of service IPs
// from one pool looks.
func ips(start string, n int) []netip.Addr {
	a := netip.MustParseAddr(start)
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i+1)
	}
	return out
}

func TestOwner(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.50")
	three := []string{"node-1", "node-2", "node-3"}
	want3 := Owner(ip, three)
	tests := []struct {
		name       string
		ip         netip.Addr
		candidates []string
		want       string
	}{
		{"no candidates", ip, nil, ""},
		{"empty list", ip, []string{}, ""},
		{"one", ip, []string{"node-7"}, "node-7"},
		{"reversed", ip, []string{"node-3", "node-2", "node-1"}, want3},
		{"duplicates", ip, []string{"node-1", "node-1", "node-2", "node-3", "node-3"}, want3},
		{"IPv4-mapped IPv6 is the same IP", netip.MustParseAddr("::ffff:198.51.100.50"), three, want3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Owner(tt.ip, tt.candidates); got != tt.want {
				t.Errorf("Owner(%s, %q) = %q, want %q", tt.ip, tt.candidates, got, tt.want)
			}
		})
	}
}

// TestOwnerStable pins some owners. Every speaker, of every version running
// during a rolling upgrade, must compute the same owner; if this test fails
// the hash changed, which would split announcements between old and new
// speakers. Change the expectations only together with a migration plan.
func TestOwnerStable(t *testing.T) {
	candidates := []string{"node-1", "node-2", "node-3"}
	got := map[string]string{}
	for _, s := range []string{"198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13", "2001:db8:1::10", "2001:db8:1::11"} {
		got[s] = Owner(netip.MustParseAddr(s), candidates)
	}
	want := map[string]string{
		"198.51.100.10":  "node-2",
		"198.51.100.11":  "node-2",
		"198.51.100.12":  "node-2",
		"198.51.100.13":  "node-2",
		"2001:db8:1::10": "node-1",
		"2001:db8:1::11": "node-3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owners changed (-want +got):\n%s", diff)
	}
}

func TestStickyOwner(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.50")
	all := []string{"node-1", "node-2", "node-3"}
	hrw := Owner(ip, all)
	var other string // a candidate that is not the HRW owner
	for _, n := range all {
		if n != hrw {
			other = n
			break
		}
	}
	tests := []struct {
		name       string
		candidates []string
		current    string
		want       string
	}{
		{"no current: plain HRW", all, "", hrw},
		{"current keeps the IP", all, other, other},
		{"current is the HRW owner", all, hrw, hrw},
		{"current is gone: HRW of the rest", without(all, other), other, Owner(ip, without(all, other))},
		{"current never was a candidate", all, "node-9", hrw},
		{"no candidates", nil, other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StickyOwner(ip, tt.candidates, tt.current); got != tt.want {
				t.Errorf("StickyOwner(%s, %q, %q) = %q, want %q", ip, tt.candidates, tt.current, got, tt.want)
			}
		})
	}
}

// TestStickyNoMoveBack plays a failure and a recovery: with Owner alone the
// recovered node takes its IPs back, with StickyOwner nothing moves.
func TestStickyNoMoveBack(t *testing.T) {
	all := nodes(3)
	addrs := ips("198.18.0.0", 1000)
	current := map[netip.Addr]string{}
	for _, ip := range addrs {
		current[ip] = StickyOwner(ip, all, "")
	}
	// node-2 fails: its IPs move, nothing else does.
	survivors := without(all, "node-2")
	var moved int
	for _, ip := range addrs {
		next := StickyOwner(ip, survivors, current[ip])
		if next != current[ip] {
			if current[ip] != "node-2" {
				t.Fatalf("%s moved from %s to %s although %s is alive", ip, current[ip], next, current[ip])
			}
			moved++
		}
		current[ip] = next
	}
	// node-2 recovers.
	var movedBack, hrwMovedBack int
	for _, ip := range addrs {
		if StickyOwner(ip, all, current[ip]) != current[ip] {
			movedBack++
		}
		if Owner(ip, all) != current[ip] {
			hrwMovedBack++
		}
	}
	if movedBack != 0 {
		t.Errorf("StickyOwner moved %d IPs back to the recovered node, want 0", movedBack)
	}
	if hrwMovedBack != moved {
		t.Errorf("Owner moved %d IPs back to the recovered node, want the %d it lost", hrwMovedBack, moved)
	}
	t.Logf("node-2 failed: %d of %d IPs failed over; on recovery Owner would move %d back, StickyOwner 0", moved, len(addrs), hrwMovedBack)
}

func without(s []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return x == drop })
}

// TestOwnerOrderIndependent is the property every speaker relies on: the
// same set in any order, with any duplicates, gives the same owner.
func TestOwnerOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + r.IntN(12)
		c := nodes(n)
		ip := netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(256)), byte(r.IntN(256))})
		want := Owner(ip, c)
		shuffled := slices.Clone(c)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[:r.IntN(n)]...)
		if got := Owner(ip, shuffled); got != want {
			t.Fatalf("Owner(%s, %q) = %q, but %q for %q", ip, shuffled, got, want, c)
		}
		if !slices.Contains(c, want) {
			t.Fatalf("Owner(%s, %q) = %q, not a candidate", ip, c, want)
		}
	}
}

// TestOwnerBalance checks that IPs spread evenly: each node's share is
// within 15% of the mean, IPv4 and IPv6, for consecutive addresses (the
// usual shape of a pool) and a few cluster sizes. With 1000 IPs over 3
// nodes a node's count has a standard deviation of about 15, so 15% (50)
// is more than 3 deviations.
func TestOwnerBalance(t *testing.T) {
	for _, tt := range []struct {
		start    string
		ips, nds int
	}{
		{"198.51.100.0", 1000, 3}, // runs past .255 into the next /24
		{"2001:db8:1::", 1000, 3},
		{"198.18.0.0", 10000, 10},
		{"2001:db8:2::", 10000, 10},
	} {
		t.Run(fmt.Sprintf("%s/%dx%d", tt.start, tt.ips, tt.nds), func(t *testing.T) {
			count := map[string]int{}
			c := nodes(tt.nds)
			for _, ip := range ips(tt.start, tt.ips) {
				count[Owner(ip, c)]++
			}
			mean := float64(tt.ips) / float64(tt.nds)
			for _, n := range c {
				if dev := float64(count[n])/mean - 1; dev > 0.15 || dev < -0.15 {
					t.Errorf("%s owns %d IPs, %.0f%% off the mean %.0f", n, count[n], 100*dev, mean)
				}
			}
			t.Logf("IPs per node: %v", count)
		})
	}
}

// TestOwnerMinimalMovement: when a node leaves, only its IPs move, and they
// spread over all the others; when a node joins, IPs move only to it.
func TestOwnerMinimalMovement(t *testing.T) {
	addrs := ips("198.18.0.0", 3000)
	for _, n := range []int{2, 3, 5, 8} {
		all := nodes(n)
		before := map[netip.Addr]string{}
		for _, ip := range addrs {
			before[ip] = Owner(ip, all)
		}
		for _, gone := range all {
			t.Run(fmt.Sprintf("%d nodes, %s leaves", n, gone), func(t *testing.T) {
				rest := without(all, gone)
				gained := map[string]int{}
				for _, ip := range addrs {
					after := Owner(ip, rest)
					switch {
					case before[ip] != gone && after != before[ip]:
						t.Fatalf("%s moved from %s to %s though %s is still there", ip, before[ip], after, before[ip])
					case before[ip] == gone:
						gained[after]++
					}
				}
				if n > 1 && len(gained) != len(rest) {
					t.Errorf("%s's IPs went to %v, want all of %q", gone, gained, rest)
				}
			})
		}
		t.Run(fmt.Sprintf("%d nodes, node-new joins", n), func(t *testing.T) {
			more := append(slices.Clone(all), "node-new")
			var moved int
			for _, ip := range addrs {
				after := Owner(ip, more)
				if after != before[ip] {
					if after != "node-new" {
						t.Fatalf("%s moved from %s to %s when node-new joined", ip, before[ip], after)
					}
					moved++
				}
			}
			want := float64(len(addrs)) / float64(n+1)
			if f := float64(moved) / want; f < 0.8 || f > 1.2 {
				t.Errorf("node-new took %d IPs, want about %.0f", moved, want)
			}
		})
	}
}

// FuzzOwner checks the invariants on arbitrary names and addresses: the
// owner is a candidate, independent of order, and removing any other
// candidate does not change it.
func FuzzOwner(f *testing.F) {
	f.Add([]byte{198, 51, 100, 1}, "node-1", "node-2", "node-3")
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "a", "", "a")
	f.Fuzz(func(t *testing.T, raw []byte, a, b, c string) {
		ip, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		cands := []string{a, b, c}
		o := Owner(ip, cands)
		if !slices.Contains(cands, o) {
			t.Fatalf("owner %q not among %q", o, cands)
		}
		if got := Owner(ip, []string{c, a, b}); got != o {
			t.Fatalf("order changed the owner: %q vs %q", got, o)
		}
		for _, x := range cands {
			if x != o {
				if got := Owner(ip, without(cands, x)); got != o {
					t.Fatalf("removing %q moved %s from %q to %q", x, ip, o, got)
				}
			}
		}
	})
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 100} {
		b.Run(fmt.Sprintf("%dnodes", n), func(b *testing.B) {
			c := nodes(n)
			addrs := ips("2001:db8:3::", 1024)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				Owner(addrs[i%len(addrs)], c)
			}
		})
	}
}
