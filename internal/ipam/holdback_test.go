package ipam

import (
	"net/netip"
	"testing"
)

// TestHoldBack: an address held back is out of use for everyone but the
// service holding it back and the services already holding it, until it
// is let go; pool counters and free ranges count it as used throughout.
func TestHoldBack(t *testing.T) {
	k := shared("k", false, "", 80)
	k2 := shared("k", false, "", 443)
	k3 := shared("k", false, "", 53)
	tests := []struct {
		name  string
		steps func(t *testing.T, a *Allocator)
		// Afterwards: what the next automatic IPv4 allocation gets, and
		// the pool's used count and free ranges.
		wantNext string
		wantUsed uint64
		wantFree []string
	}{{
		name: "a given-up address is not handed out",
		steps: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, "ns/a", Sharing{}, "192.168.1.87")
			mustAssign(t, a, "ns/a", Sharing{}, "192.168.1.90")
			a.HoldBack("ns/a", ips("192.168.1.87"))
		},
		wantNext: "192.168.1.88", wantUsed: 2, wantFree: []string{"192.168.1.88-192.168.1.89", "192.168.1.91-192.168.1.97"},
	}, {
		name: "nor assigned to another service, sharing key or not",
		steps: func(t *testing.T, a *Allocator) {
			mustAssign(t, a, "ns/a", k, "192.168.1.87")
			a.Release("ns/a")
			a.HoldBack("ns/a", ips("192.168.1.87"))
			want := &ConflictError{Addr: ip("192.168.1.87"), Holders: []string{"ns/a"}, Reason: "being released"}
			for _, s := range []Sharing{{}, k2} {
				if diff := quickDiff(want, a.Assign("ns/b", ips("192.168.1.87"), s, AssignOptions{})); diff != "" {
					t.Errorf("Assign of a held-back address (-want +got):\n%s", diff)
				}
			}
		},
		wantNext: "192.168.1.88", wantUsed: 1, wantFree: []string{"192.168.1.88-192.168.1.97"},
	}, {
		name: "the service that gave it up may take it back",
		steps: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, "ns/a", Sharing{}, "192.168.1.87")
			a.Release("ns/a")
			a.HoldBack("ns/a", ips("192.168.1.87"))
			mustAssign(t, a, "ns/a", Sharing{}, "192.168.1.87")
			a.HoldBack("ns/a", nil)
		},
		wantNext: "192.168.1.88", wantUsed: 1, wantFree: []string{"192.168.1.88-192.168.1.97"},
	}, {
		name: "sharers keep it, newcomers may not join",
		steps: func(t *testing.T, a *Allocator) {
			mustAssign(t, a, "ns/a", k, "192.168.1.90")
			mustAssign(t, a, "ns/b", k2, "192.168.1.90")
			mustAssign(t, a, "ns/a", Sharing{}, "192.168.1.91") // a leaves the shared address
			a.HoldBack("ns/a", ips("192.168.1.90"))
			mustAssign(t, a, "ns/b", k2, "192.168.1.90") // b re-asserts what it holds
			if _, err := a.Allocate("ns/b", IPv6, nil, k2, AllocateOptions{}); err != nil {
				t.Errorf("b adding a family: %v", err)
			}
			// c could share with b, but not while a holds the address back.
			mustAlloc(t, a, "ns/c", k3, "192.168.1.87")
			if err := a.Assign("ns/c", ips("192.168.1.90"), k3, AssignOptions{}); err == nil {
				t.Errorf("c joined a held-back address")
			}
		},
		wantNext: "192.168.1.88", wantUsed: 3, wantFree: []string{"192.168.1.88-192.168.1.89", "192.168.1.92-192.168.1.97"},
	}, {
		name: "the last holder leaving does not free it",
		steps: func(t *testing.T, a *Allocator) {
			mustAssign(t, a, "ns/a", k, "192.168.1.87")
			mustAssign(t, a, "ns/b", k2, "192.168.1.87")
			a.Release("ns/a")
			a.HoldBack("ns/a", ips("192.168.1.87"))
			a.Release("ns/b")
		},
		wantNext: "192.168.1.88", wantUsed: 1, wantFree: []string{"192.168.1.88-192.168.1.97"},
	}, {
		name: "letting go frees it",
		steps: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, "ns/a", Sharing{}, "192.168.1.87")
			a.Release("ns/a")
			a.HoldBack("ns/a", ips("192.168.1.87", "192.168.1.88"))
			a.HoldBack("ns/b", ips("192.168.1.88"))
			a.HoldBack("ns/a", ips("192.168.1.88")) // replaces
			a.HoldBack("ns/a", nil)
			if got := a.HeldBack("ns/b"); len(got) != 1 || got[0] != ip("192.168.1.88") {
				t.Errorf("HeldBack(ns/b) = %v", got)
			}
		},
		wantNext: "192.168.1.87", wantUsed: 1, wantFree: []string{"192.168.1.87", "192.168.1.89-192.168.1.97"},
	}, {
		name: "a rebuilt pool keeps it out of use",
		steps: func(t *testing.T, a *Allocator) {
			a.HoldBack("ns/a", ips("192.168.1.87", "203.0.113.1"))
			a.SetPools(pools(mkPool("default", "192.168.1.86-192.168.1.97", "2001:db8::/64")))
			mustAlloc(t, a, "ns/b", Sharing{}, "192.168.1.86")
		},
		wantNext: "192.168.1.88", wantUsed: 2, wantFree: []string{"192.168.1.88-192.168.1.97"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.SetPools(pools(lan6))
			tt.steps(t, a)
			if got := a.Stats("default").Used[IPv4]; got != tt.wantUsed {
				t.Errorf("Used = %d, want %d", got, tt.wantUsed)
			}
			var free []string
			for _, r := range a.FreeRanges("default", IPv4, 10) {
				free = append(free, r.String())
			}
			if diff := quickDiff(tt.wantFree, free); diff != "" {
				t.Errorf("FreeRanges (-want +got):\n%s", diff)
			}
			mustAlloc(t, a, "ns/next", Sharing{}, tt.wantNext)
		})
	}
}

func mustAlloc(t *testing.T, a *Allocator, svc string, s Sharing, want string) {
	t.Helper()
	got, err := a.Allocate(svc, IPv4, nil, s, AllocateOptions{})
	if err != nil || got != netip.MustParseAddr(want) {
		t.Fatalf("Allocate(%s) = %v, %v; want %s", svc, got, err, want)
	}
}

func mustAssign(t *testing.T, a *Allocator, svc string, s Sharing, addrs ...string) {
	t.Helper()
	if err := a.Assign(svc, ips(addrs...), s, AssignOptions{}); err != nil {
		t.Fatalf("Assign(%s, %v): %v", svc, addrs, err)
	}
}
