package labnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The router's addresses (see design/LAB.md): host number 1 on the LAN, and
// a second link to the host "outside", where a client sits behind the
// router in 203.0.113.128/25 (RFC 5737 TEST-NET-3) and 2001:db8:2::/64.
const (
	routerHostNum = 1
	outsideHost   = "outside"
	// routerOutIf is the router's end of the link to outside.
	routerOutIf = "out0"
)

var (
	outsideV4       = netip.MustParsePrefix("203.0.113.128/25")
	outsideV6       = netip.MustParsePrefix("2001:db8:2::/64")
	routerOutsideV4 = netip.MustParseAddr("203.0.113.129")
	routerOutsideV6 = netip.MustParseAddr("2001:db8:2::1")
	outsideAddrV4   = netip.MustParseAddr("203.0.113.130")
	outsideAddrV6   = netip.MustParseAddr("2001:db8:2::2")
)

// Router is the lab's BGP router (design/LAB.md): host "router" on the LAN
// (198.51.100.1, 2001:db8:1::1) forwarding between the LAN and host
// "outside" (203.0.113.130, 2001:db8:2::2), a client that reaches the
// cluster only through it. A routing daemon started with StartFRR or
// StartBIRD peers with the nodes and installs what they announce into the
// router's kernel table. Create it with Lab.AddRouter; the lab owns it.
type Router struct {
	// Host is the router on the LAN. Its eth0 has host number 1; its
	// link to outside is "out0" with 203.0.113.129/25 and 2001:db8:2::1/64.
	Host *Host
	// Outside is the client behind the router. Its eth0 is a point-to-point
	// veth to the router, not a port of the LAN bridge, so LinkDown and
	// LinkUp do not apply to it.
	Outside *Host

	// runDir holds the daemons' configs, sockets and PID files. It is
	// short (/run/ironlb-lab/SUFFIX.router) because a Unix socket path
	// must fit in 108 bytes, and the lab's log directory may not.
	runDir string

	mu    sync.Mutex
	seq   int
	procs []*Process // every daemon process started, for close
}

// runDirPath is where a lab's router keeps its daemons' files; Sweep
// removes it with the lab's marker.
func runDirPath(suffix string) string { return markerPath(suffix) + ".router" }

// AddRouter adds the hosts "router" and "outside" to the lab: router on the
// LAN bridge with IPv4 and IPv6 forwarding on, outside behind it with
// default routes through it, and on every node a route to outside's
// prefixes through the router (the nodes' return path; a real node's
// default route does that job). A lab has at most one router. It starts no
// daemon: see StartFRR and StartBIRD.
func (l *Lab) AddRouter(ctx context.Context) (*Router, error) {
	l.buildMu.Lock()
	defer l.buildMu.Unlock()
	l.mu.Lock()
	closed, has := l.closed, l.router != nil
	l.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if has {
		return nil, errors.New("lab: the lab already has a router")
	}
	r, err := l.addRouter(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab: add router: %w", err)
	}
	l.mu.Lock()
	l.router = r
	l.mu.Unlock()
	return r, nil
}

func (l *Lab) addRouter(ctx context.Context) (*Router, error) {
	dir := runDirPath(l.suffix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	r := &Router{runDir: dir}
	if err := l.addCloser(r, r.close); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	rh, err := l.addHost("router", routerHostNum)
	if err != nil {
		return nil, err
	}
	r.Host = rh
	if err := rh.waitUp(); err != nil {
		return nil, err
	}
	if err := rh.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv6/conf/all/forwarding": "1",
			// ECMP by flow (addresses and ports), not by address
			// pair only, so one client's connections spread over
			// the nodes, as on a real router.
			"net/ipv4/fib_multipath_hash_policy": "1",
			"net/ipv6/fib_multipath_hash_policy": "1",
		})
	}); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if r.Outside, err = l.addOutside(ctx, rh); err != nil {
		return nil, err
	}
	for _, n := range l.nodes {
		for _, rt := range []struct {
			dst netip.Prefix
			via netip.Addr
		}{{outsideV4, rh.IPv4}, {outsideV6, rh.IPv6}} {
			if err := n.nl.RouteReplace(&netlink.Route{Dst: prefixNet(rt.dst), Gw: rt.via.AsSlice()}); err != nil {
				return nil, fmt.Errorf("%s: route to %s via the router: %w", n.Name, rt.dst, err)
			}
		}
	}
	return r, nil
}

// close stops the router's daemons (so that none writes into its directory
// any more) and removes the directory. The lab's Close calls it before
// stopping the remaining processes.
func (r *Router) close() error {
	r.mu.Lock()
	procs := slices.Clone(r.procs)
	r.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(procs) {
		errs = append(errs, p.Stop())
	}
	errs = append(errs, os.RemoveAll(r.runDir))
	return errors.Join(errs...)
}

// track records a daemon process for close.
func (r *Router) track(p *Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
}

// newDaemonDir creates a fresh directory for one daemon instance under the
// router's run directory ("frr1", "bird2", ...).
func (r *Router) newDaemonDir(kind string) (string, error) {
	r.mu.Lock()
	r.seq++
	n := r.seq
	r.mu.Unlock()
	dir := filepath.Join(r.runDir, fmt.Sprintf("%s%d", kind, n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
}

// addOutside creates host "outside" wired to the router by its own veth.
func (l *Lab) addOutside(ctx context.Context, rh *Host) (*Host, error) {
	h := &Host{Name: outsideHost, NS: nsName(l.suffix, outsideHost), IfName: hostIfName, IPv4: outsideAddrV4, IPv6: outsideAddrV6, lab: l}
	if err := l.addNamespace(h.NS); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	l.hosts = append(l.hosts, h)
	fd, err := netns.GetFromName(h.NS)
	if err != nil {
		return nil, fmt.Errorf("host %s: open namespace: %w", h.Name, err)
	}
	h.fd = fd
	if h.nl, err = netlink.NewHandleAt(fd); err != nil {
		return nil, fmt.Errorf("host %s: netlink: %w", h.Name, err)
	}
	noDAD := map[string]string{
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
		"net/ipv6/conf/all/accept_ra":      "0",
		"net/ipv6/conf/default/accept_ra":  "0",
	}
	if err := h.Do(func() error { return writeSysctls(noDAD) }); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: routerOutIf},
		PeerName:      hostIfName,
		PeerNamespace: netlink.NsFd(fd),
	}
	if err := rh.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("host %s: create veth: %w", h.Name, err)
	}
	ends := []struct {
		host  *Host
		ifc   string
		addrs []netip.Prefix
	}{
		{rh, routerOutIf, []netip.Prefix{netip.PrefixFrom(routerOutsideV4, outsideV4.Bits()), netip.PrefixFrom(routerOutsideV6, outsideV6.Bits())}},
		{h, hostIfName, []netip.Prefix{netip.PrefixFrom(outsideAddrV4, outsideV4.Bits()), netip.PrefixFrom(outsideAddrV6, outsideV6.Bits())}},
	}
	for _, e := range ends {
		lo, err := e.host.nl.LinkByName("lo")
		if err != nil {
			return nil, fmt.Errorf("host %s: find lo: %w", e.host.Name, err)
		}
		if err := e.host.nl.LinkSetUp(lo); err != nil {
			return nil, fmt.Errorf("host %s: lo up: %w", e.host.Name, err)
		}
		link, err := e.host.nl.LinkByName(e.ifc)
		if err != nil {
			return nil, fmt.Errorf("host %s: find %s: %w", e.host.Name, e.ifc, err)
		}
		for _, p := range e.addrs {
			if err := e.host.nl.AddrAdd(link, nlAddr(p)); err != nil {
				return nil, fmt.Errorf("host %s: add %s: %w", e.host.Name, p, err)
			}
		}
		if err := e.host.nl.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("host %s: %s up: %w", e.host.Name, e.ifc, err)
		}
		if e.host == h {
			h.MAC = link.Attrs().HardwareAddr
		}
	}
	for _, gw := range []netip.Addr{routerOutsideV4, routerOutsideV6} {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if gw.Is6() {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if err := h.nl.RouteReplace(&netlink.Route{Dst: prefixNet(dst), Gw: gw.AsSlice()}); err != nil {
			return nil, fmt.Errorf("host %s: default route via %s: %w", h.Name, gw, err)
		}
	}
	for _, e := range ends {
		if err := e.host.waitActive(ctx, e.ifc); err != nil {
			return nil, err
		}
	}
	// Prove the link both ways and in both families, as New does for the
	// LAN: an address resolution lost while the link settles would
	// otherwise cost the first user of the link a second.
	for _, gw := range []netip.Addr{routerOutsideV4, routerOutsideV6} {
		var err error
		for range 5 {
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = h.Ping(pctx, gw)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return h, nil
}

// waitActive waits until the kernel has activated link ifc of the host:
// operationally up and with its real queueing discipline attached. Until the
// deferred link-watch work does the latter (see "Link state" in the package
// doc), the link drops every packet, and a lost first ARP request costs a
// second.
func (h *Host) waitActive(ctx context.Context, ifc string) error {
	deadline := time.Now().Add(linkWait)
	for {
		link, err := h.nl.LinkByName(ifc)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		up := link.Attrs().OperState == netlink.OperUp
		if up {
			qs, err := h.nl.QdiscList(link)
			if err != nil {
				return fmt.Errorf("host %s: qdiscs of %s: %w", h.Name, ifc, err)
			}
			if !slices.ContainsFunc(qs, func(q netlink.Qdisc) bool { return q.Type() == "noop" }) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: %s not active after %v", h.Name, ifc, linkWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// prefixNet is p as a *net.IPNet.
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// RouteNextHops returns the next hops of the host's kernel route to exactly
// dst in its main table, sorted: one for a plain route, several for an ECMP
// (multipath) route, none if there is no such route. Routing daemons install
// what they learn here, so this is what forwarding actually uses.
func (h *Host) RouteNextHops(dst netip.Prefix) ([]netip.Addr, error) {
	dst = dst.Masked()
	fam := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	routes, err := h.nl.RouteListFiltered(fam, &netlink.Route{Dst: prefixNet(dst), Table: 254}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("%s: routes to %s: %w", h.Name, dst, err)
	}
	var hops []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			hops = append(hops, a.Unmap())
		}
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := netipPrefix(r.Dst); !ok || p != dst {
			continue
		}
		add(r.Gw)
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return slices.Compact(hops), nil
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
