package ipam

import (
	"net/netip"
	"slices"
)

// HoldBack holds back ips, addresses svc has given up, from every other
// service, replacing what svc held back before; HoldBack(svc, nil) lets
// them go. While an address is held back, Allocate hands it to no one and
// no other service may Assign or Allocate its way into it, not even one it
// could share with; the services that hold it already keep it, and svc may
// take it back. Held-back addresses are independent of holdings: Release
// leaves them, and an address may be both held by some services and held
// back by others. (Holding back is the controller's own bookkeeping; the
// operator's reservations are SetReservations.)
//
// It exists for the controller, whose record of who holds what is the
// Services' status: an address a Service gave up must not go to another
// until the first Service's status no longer shows it, or a restart in
// between would find both claiming it.
//
// An invalid, zoned or IPv4-mapped address is ignored. The cost is
// O(k log n) for the k addresses involved.
func (a *Allocator) HoldBack(svc string, ips []netip.Addr) {
	want := slices.Clone(ips)
	slices.SortFunc(want, netip.Addr.Compare)
	want = slices.Compact(want)
	want = slices.DeleteFunc(want, func(ip netip.Addr) bool { return !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() })
	old := a.heldBackBy[svc]
	if slices.Equal(old, want) {
		return
	}
	// Add before removing, so an address in both never leaves the pool's
	// used set.
	for _, ip := range want {
		rs := a.heldBack[ip]
		i, found := slices.BinarySearch(rs, svc)
		if found {
			continue
		}
		if !a.inUse(ip) {
			if p := a.poolOf(ip); p != nil {
				p.set(FamilyOf(ip)).add(u128Of(ip))
			}
		}
		a.heldBack[ip] = slices.Insert(rs, i, svc)
	}
	for _, ip := range old {
		if _, keep := slices.BinarySearchFunc(want, ip, netip.Addr.Compare); keep {
			continue
		}
		rs := a.heldBack[ip]
		if i, found := slices.BinarySearch(rs, svc); found {
			rs = slices.Delete(rs, i, i+1)
		}
		if len(rs) > 0 {
			a.heldBack[ip] = rs
			continue
		}
		delete(a.heldBack, ip)
		if !a.inUse(ip) {
			if p := a.poolOf(ip); p != nil {
				p.set(FamilyOf(ip)).remove(u128Of(ip))
			}
		}
	}
	if len(want) == 0 {
		delete(a.heldBackBy, svc)
	} else {
		a.heldBackBy[svc] = want
	}
}

// HeldBack returns the addresses svc holds back (see HoldBack), sorted, or
// nil.
func (a *Allocator) HeldBack(svc string) []netip.Addr {
	return slices.Clone(a.heldBackBy[svc])
}
