package labnet

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Neighbor returns the MAC the host's kernel currently resolves addr to on
// its LAN interface, or nil if it has no usable entry (none, incomplete or
// failed). Failover tests read the client's entry to see which node it sends
// to.
func (h *Host) Neighbor(addr netip.Addr) (net.HardwareAddr, error) {
	eth, err := h.nl.LinkByName(h.IfName)
	if err != nil {
		return nil, fmt.Errorf("%s: neighbor %s: %w", h.Name, addr, err)
	}
	neighs, err := h.nl.NeighList(eth.Attrs().Index, family(addr))
	if err != nil {
		return nil, fmt.Errorf("%s: neighbor %s: %w", h.Name, addr, err)
	}
	const unusable = netlink.NUD_INCOMPLETE | netlink.NUD_FAILED | netlink.NUD_NONE
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr && n.State&unusable == 0 {
			return n.HardwareAddr, nil
		}
	}
	return nil, nil
}

// SetNeighbor pins addr to mac in the host's neighbor table, standing in for
// a resolution the test does not want to depend on.
func (h *Host) SetNeighbor(addr netip.Addr, mac net.HardwareAddr) error {
	eth, err := h.nl.LinkByName(h.IfName)
	if err != nil {
		return fmt.Errorf("%s: set neighbor %s: %w", h.Name, addr, err)
	}
	n := &netlink.Neigh{
		LinkIndex:    eth.Attrs().Index,
		Family:       family(addr),
		State:        netlink.NUD_PERMANENT,
		IP:           addr.AsSlice(),
		HardwareAddr: mac,
	}
	if err := h.nl.NeighSet(n); err != nil {
		return fmt.Errorf("%s: set neighbor %s: %w", h.Name, addr, err)
	}
	return nil
}

// FlushNeighbors empties the host's neighbor table on its LAN interface, so
// the next packet to any address resolves it afresh.
func (h *Host) FlushNeighbors() error {
	eth, err := h.nl.LinkByName(h.IfName)
	if err != nil {
		return fmt.Errorf("%s: flush neighbors: %w", h.Name, err)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := h.nl.NeighList(eth.Attrs().Index, fam)
		if err != nil {
			return fmt.Errorf("%s: flush neighbors: %w", h.Name, err)
		}
		for _, n := range neighs {
			if n.State&netlink.NUD_NOARP != 0 {
				continue // multicast mappings and the like, not learned
			}
			if err := h.nl.NeighDel(&n); err != nil {
				return fmt.Errorf("%s: flush neighbor %s: %w", h.Name, n.IP, err)
			}
		}
	}
	return nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
