package labnet

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RouterConfig is what the lab's router is told about its BGP neighbours;
// StartFRR and StartBIRD turn it into each daemon's own configuration. The
// router is passive: it waits for the speakers to connect, as ironlb's
// speakers never listen.
type RouterConfig struct {
	// ASN is the router's AS number; 0 means 64500.
	ASN uint32
	// Neighbors are the BGP speakers that may connect, usually one per
	// node and address family.
	Neighbors []RouterNeighbor
	// BFD sets the timers of every neighbour with BFD on; zero fields mean
	// 300 ms and a multiplier of 3.
	BFD RouterBFD
	// Debug turns on the daemons' BGP and BFD debug logging (in the lab's
	// process logs).
	Debug bool
	// ListenAddress, if set, is an extra IPv4 address of the router's
	// eth0 (the lab adds it) on which this daemon alone listens and from
	// which it speaks. Two daemons can then run on the router at once,
	// one on 198.51.100.1, the other on, say, 198.51.100.3. Such a
	// daemon takes IPv4 neighbours only.
	ListenAddress netip.Addr
	// NoKernel keeps the daemon's routes out of the router's kernel
	// table: for a second daemon beside one that installs them.
	NoKernel bool
}

// localV4 is the IPv4 address the daemon speaks from.
func (c RouterConfig) localV4(h *Host) netip.Addr {
	if c.ListenAddress.IsValid() {
		return c.ListenAddress
	}
	return h.IPv4
}

// addListenAddress puts cfg's ListenAddress on the router's eth0.
func (r *Router) addListenAddress(cfg RouterConfig) error {
	if !cfg.ListenAddress.IsValid() {
		return nil
	}
	eth, err := r.Host.nl.LinkByName(r.Host.IfName)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	if err := r.Host.nl.AddrReplace(eth, nlAddr(netip.PrefixFrom(cfg.ListenAddress, lanV4.Bits()))); err != nil {
		return fmt.Errorf("router: add %s: %w", cfg.ListenAddress, err)
	}
	return nil
}

// RouterNeighbor is one BGP neighbour of the router.
type RouterNeighbor struct {
	// Address is the neighbour's address; it also picks the address
	// family of the session (and of the routes accepted on it).
	Address netip.Addr
	// ASN is the neighbour's AS: equal to RouterConfig.ASN for iBGP.
	ASN uint32
	// Password, if set, requires TCP MD5 signatures (RFC 2385).
	Password string
	// BFD runs a BFD session (RFC 5880, single hop) with the neighbour and
	// drops the BGP session when it fails.
	BFD bool
	// HoldTime is the hold time the router offers; the keepalive time is
	// a third of it. 0 keeps the daemon's default (FRR 180 s, BIRD 240 s).
	HoldTime time.Duration
}

// RouterBFD holds BFD timers (RFC 5880 section 6.8.1).
type RouterBFD struct {
	// Interval is both the desired minimum transmit and the required
	// minimum receive interval.
	Interval time.Duration
	// Multiplier is the detection multiplier.
	Multiplier int
}

const defaultRouterASN = 64500

func (c RouterConfig) asn() uint32 {
	if c.ASN == 0 {
		return defaultRouterASN
	}
	return c.ASN
}

func (b RouterBFD) interval() time.Duration {
	if b.Interval == 0 {
		return 300 * time.Millisecond
	}
	return b.Interval
}

func (b RouterBFD) multiplier() int {
	if b.Multiplier == 0 {
		return 3
	}
	return b.Multiplier
}

// validate rejects what neither daemon's configuration could express.
func (c RouterConfig) validate() error {
	if a := c.ListenAddress; a.IsValid() && (!a.Is4() || !lanV4.Contains(a) || a == lanV4.Addr()) {
		return fmt.Errorf("listen address %s is not a host address in %s", a, lanV4)
	}
	for _, n := range c.Neighbors {
		if !n.Address.IsValid() || n.ASN == 0 {
			return fmt.Errorf("neighbor %v: needs an address and an AS number", n.Address)
		}
		if strings.ContainsAny(n.Password, "\"\\\n ") {
			return fmt.Errorf("neighbor %s: the lab does not quote passwords with spaces, quotes or backslashes", n.Address)
		}
		if c.ListenAddress.IsValid() && !n.Address.Is4() {
			return fmt.Errorf("neighbor %s: a daemon with a listen address takes IPv4 neighbours only", n.Address)
		}
		if n.HoldTime != 0 && n.HoldTime < 3*time.Second {
			return fmt.Errorf("neighbor %s: hold time %v is below 3 s (RFC 4271 section 4.2)", n.Address, n.HoldTime)
		}
	}
	return nil
}

// BGPRoute is one prefix in a router's BGP table, with every path to it.
type BGPRoute struct {
	Prefix netip.Prefix
	Paths  []BGPPath
}

// NextHops returns the distinct next hops of the route's paths, sorted.
func (r BGPRoute) NextHops() []netip.Addr {
	var hops []netip.Addr
	for _, p := range r.Paths {
		hops = append(hops, p.NextHop)
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return slices.Compact(hops)
}

// BGPPath is one path to a prefix, as the router received it.
type BGPPath struct {
	// From is the address of the neighbour that sent the path.
	From netip.Addr
	// NextHop is the path's NEXT_HOP (or MP_REACH_NLRI next hop).
	NextHop netip.Addr
	// LocalPref is LOCAL_PREF, and HasLocalPref whether the path carries
	// it (only iBGP paths do).
	LocalPref    uint32
	HasLocalPref bool
	// Communities are standard communities as "high:low", sorted;
	// LargeCommunities large ones as "global:local1:local2", sorted.
	Communities      []string
	LargeCommunities []string
	// ASPath is the AS_PATH as the daemon prints it: "64512", or "" for
	// an iBGP path.
	ASPath string
	// Best marks the path the daemon selected.
	Best bool
}

// BGPNeighbor is the router's view of one BGP session.
type BGPNeighbor struct {
	Address netip.Addr
	// State is the RFC 4271 state ("Established", "Active", "Idle", ...).
	State string
	// Since is when the session entered State: from BIRD to the
	// millisecond, from FRR (which reports uptime only while Established)
	// to within the time a vtysh call takes. A session that was reset has
	// a later Since.
	Since time.Time
	// Established counts how often the session reached Established (FRR
	// only; 0 from BIRD, which does not count).
	Established int
	// Info is the daemon's note on the session, such as its last error.
	Info string
}

// RouterDaemon is a routing daemon running on the lab's router.
type RouterDaemon interface {
	// Routes returns the router's BGP table, IPv4 and IPv6, sorted by
	// prefix.
	Routes(ctx context.Context) ([]BGPRoute, error)
	// Neighbors returns the state of every configured BGP session, sorted
	// by address.
	Neighbors(ctx context.Context) ([]BGPNeighbor, error)
	// Stop stops the daemon's processes.
	Stop() error
}

// pollDaemon polls check every 20 ms until it succeeds, ctx is done, or d
// passes, and then returns check's last error.
func pollDaemon(ctx context.Context, d time.Duration, p *Process, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p != nil {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %w: %s", filepath.Base(p.Args[0]), p.Wait(), logTail(p))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %v)", err, d)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sortRoutes(rs []BGPRoute) {
	slices.SortFunc(rs, func(a, b BGPRoute) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}
