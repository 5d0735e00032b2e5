package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// SetReservations replaces the operator's reservations: rs maps each
// reserved address to the name of its reservation. A reserved address is
// out of automatic assignment: Allocate never picks it, and a new request
// for it (Assign with RequirePool) is refused with a *ReservedError unless
// the request names its reservation in AssignOptions.Entitled. The
// services that hold it already keep it, whoever they are: a reservation
// never takes an address away, it only decides who may take it next.
//
// It differs from HoldBack, which the controller uses for its own
// bookkeeping of addresses a service gave up: a held-back address goes
// back to the service that held it; a reserved one to whichever service
// its reservation is for, which the caller decides.
//
// An invalid, zoned or IPv4-mapped address is ignored. The cost is
// O((old + new) log n).
func (a *Allocator) SetReservations(rs map[netip.Addr]string) {
	old := a.reservations
	a.reservations = make(map[netip.Addr]string, len(rs))
	for ip, name := range rs {
		if ip.IsValid() && ip.Zone() == "" && !ip.Is4In6() {
			a.reservations[ip] = name
		}
	}
	for ip := range a.reservations {
		if _, was := old[ip]; was {
			continue // in the used set already
		}
		if _, held := a.addrs[ip]; !held && len(a.heldBack[ip]) == 0 {
			if p := a.poolOf(ip); p != nil {
				p.set(FamilyOf(ip)).add(u128Of(ip))
			}
		}
	}
	for ip := range old {
		if _, still := a.reservations[ip]; still {
			continue
		}
		if !a.inUse(ip) {
			if p := a.poolOf(ip); p != nil {
				p.set(FamilyOf(ip)).remove(u128Of(ip))
			}
		}
	}
}

// Reservation returns the name of the reservation of ip, if it has one.
func (a *Allocator) Reservation(ip netip.Addr) (string, bool) {
	name, ok := a.reservations[ip]
	return name, ok
}

// Reservations returns every reserved address and its reservation's name.
func (a *Allocator) Reservations() map[netip.Addr]string {
	return maps.Clone(a.reservations)
}

// checkReserved returns a *ReservedError if ip is reserved by a
// reservation not in entitled and svc asks for it anew (join) without
// holding it.
func (a *Allocator) checkReserved(svc string, ip netip.Addr, entitled []string, join bool) error {
	name, ok := a.reservations[ip]
	if !ok || !join || slices.Contains(entitled, name) || slices.Contains(a.addrs[ip].svcs, svc) {
		return nil
	}
	return &ReservedError{Addr: ip, Reservation: name}
}

// ReservedError reports that Addr is reserved (SetReservations) for
// another service by the reservation named Reservation. The controller
// adds whom the reservation is for and what to do.
type ReservedError struct {
	Addr        netip.Addr
	Reservation string
}

// Error returns, for example, "198.51.100.88 is reserved by web-ip".
func (e *ReservedError) Error() string {
	return fmt.Sprintf("%s is reserved by %s", e.Addr, e.Reservation)
}
