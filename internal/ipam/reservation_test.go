package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

// TestReservations: a reserved address is out of automatic assignment,
// refused to a new request that does not name its reservation, given to
// one that does, and left with whoever held it before; pool counters
// count it as reserved and keep it out of Free.
func TestReservations(t *testing.T) {
	k := shared("k", false, "", 80)
	k2 := shared("k", false, "", 443)
	web := map[netip.Addr]string{ip("192.168.1.87"): "web-ip"}
	tests := []struct {
		name  string
		steps func(t *testing.T, a *Allocator)
		// Afterwards: the next automatic IPv4 address, and the pool's
		// used, reserved and free counts.
		wantNext                    string
		wantUsed, wantRes, wantFree uint64
	}{{
		name: "automatic assignment skips it",
		steps: func(t *testing.T, a *Allocator) {
			a.SetReservations(web)
		},
		wantNext: "192.168.1.88", wantUsed: 0, wantRes: 1, wantFree: 10,
	}, {
		name: "a request not entitled to it is refused with the reservation named",
		steps: func(t *testing.T, a *Allocator) {
			a.SetReservations(web)
			err := a.Assign("ns/other", ips("192.168.1.87"), Sharing{}, AssignOptions{RequirePool: true, Entitled: []string{"db-ip"}})
			var re *ReservedError
			if !errors.As(err, &re) || re.Reservation != "web-ip" || re.Addr != ip("192.168.1.87") {
				t.Fatalf("Assign = %v, want a ReservedError naming web-ip", err)
			}
			if got := err.Error(); got != "192.168.1.87 is reserved by web-ip" {
				t.Errorf("Error() = %q", got)
			}
		},
		wantNext: "192.168.1.88", wantUsed: 0, wantRes: 1, wantFree: 10,
	}, {
		name: "the entitled request gets it",
		steps: func(t *testing.T, a *Allocator) {
			a.SetReservations(web)
			if err := a.Assign("ns/web", ips("192.168.1.87"), Sharing{}, AssignOptions{RequirePool: true, Entitled: []string{"web-ip"}}); err != nil {
				t.Fatal(err)
			}
		},
		wantNext: "192.168.1.88", wantUsed: 1, wantRes: 1, wantFree: 10,
	}, {
		name: "a holder from before the reservation keeps it, also re-asserting it",
		steps: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, "ns/other", Sharing{}, "192.168.1.87")
			a.SetReservations(web)
			mustAssign(t, a, "ns/other", Sharing{}, "192.168.1.87")
			if err := a.Assign("ns/other", ips("192.168.1.87"), Sharing{}, AssignOptions{RequirePool: true}); err != nil {
				t.Errorf("the holder's own request: %v", err)
			}
			a.Release("ns/other")
		},
		wantNext: "192.168.1.88", wantUsed: 0, wantRes: 1, wantFree: 10,
	}, {
		name: "no joining it by sharing key without the entitlement",
		steps: func(t *testing.T, a *Allocator) {
			a.SetReservations(web)
			if err := a.Assign("ns/web", ips("192.168.1.87"), k, AssignOptions{RequirePool: true, Entitled: []string{"web-ip"}}); err != nil {
				t.Fatal(err)
			}
			got, err := a.Allocate("ns/sib", IPv4, nil, k2, AllocateOptions{})
			if err != nil || got == ip("192.168.1.87") {
				t.Errorf("a sibling without the entitlement got %v, %v", got, err)
			}
			got, err = a.Allocate("ns/sib2", IPv4, nil, k2, AllocateOptions{Entitled: []string{"web-ip"}})
			if err == nil && got != ip("192.168.1.87") {
				t.Errorf("an entitled sibling got %v, want to share 192.168.1.87", got)
			}
		},
		wantNext: "192.168.1.89", wantUsed: 2, wantRes: 1, wantFree: 9,
	}, {
		name: "lifting it frees it; a rebuilt pool keeps it",
		steps: func(t *testing.T, a *Allocator) {
			a.SetReservations(map[netip.Addr]string{ip("192.168.1.87"): "web-ip", ip("192.168.1.88"): "db-ip"})
			a.SetPools(pools(mkPool("default", "192.168.1.86-192.168.1.97", "2001:db8::/64")))
			mustAlloc(t, a, "ns/a", Sharing{}, "192.168.1.86")
			a.SetReservations(map[netip.Addr]string{ip("192.168.1.88"): "db-ip"})
		},
		wantNext: "192.168.1.87", wantUsed: 1, wantRes: 1, wantFree: 10,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.SetPools(pools(lan6))
			tt.steps(t, a)
			st := a.Stats("default")
			if st.Used[IPv4] != tt.wantUsed || st.Reserved[IPv4] != tt.wantRes || st.Free[IPv4] != tt.wantFree {
				t.Errorf("used/reserved/free = %d/%d/%d, want %d/%d/%d", st.Used[IPv4], st.Reserved[IPv4], st.Free[IPv4],
					tt.wantUsed, tt.wantRes, tt.wantFree)
			}
			mustAlloc(t, a, "ns/next", Sharing{}, tt.wantNext)
		})
	}
}
