package labnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Host is one machine on the lab's LAN: a network namespace with an eth0 on
// the bridge. The lab owns it; it is valid until the lab's Close.
type Host struct {
	// Name is the host name: "cp", "node-1".., "client".
	Name string
	// NS is the namespace's name, usable with `ip netns exec`; its file is
	// NSPath.
	NS string
	// IfName is the host's LAN interface ("eth0").
	IfName string
	// MAC is the hardware address of IfName.
	MAC net.HardwareAddr
	// IPv4 and IPv6 are IfName's addresses in 198.51.100.0/24 and
	// 2001:db8:1::/64.
	IPv4, IPv6 netip.Addr

	lab  *Lab
	port string // the switch end of the host's veth
	fd   netns.NsHandle
	nl   *netlink.Handle
}

// NSPath is the namespace's file, for tools that take a path.
func (h *Host) NSPath() string { return filepath.Join(netnsDir, h.NS) }

// String is the host name.
func (h *Host) String() string { return h.Name }

// release closes the lab's handles on the namespace, so deleting it frees it.
func (h *Host) release() {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.fd.IsOpen() {
		h.fd.Close()
	}
}

// Do runs f inside the host's network namespace and returns its error. Use
// it to create sockets there: a socket keeps the namespace it was created in,
// so a listener or connection made in f can be used from anywhere once f
// returns.
//
// f runs on a fresh goroutine locked to an OS thread that has entered the
// namespace (a namespace belongs to a thread, not a goroutine), and Do waits
// for it. Hence:
//   - goroutines f starts do not run in the namespace; neither do the
//     internals of libraries that hand work to other goroutines (name
//     resolution, http.Transport's dialing). Create sockets in f itself.
//   - f must not call t.Fatal or t.FailNow (they need the test's
//     goroutine); return an error instead. A panic in f is re-raised in the
//     caller.
//   - f sees the namespace's /proc/sys/net but the caller's /sys: the mount
//     namespace is not changed. Use Run for tools that read /sys/class/net.
//   - if the thread cannot be returned to its original namespace, it is
//     left locked, so Go destroys it instead of reusing it.
func (h *Host) Do(f func() error) error {
	if err := doIn(h.fd, f); err != nil {
		return fmt.Errorf("in %s: %w", h.Name, err)
	}
	return nil
}

// doIn is Do for any namespace handle.
func doIn(target netns.NsHandle, f func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			// setns(2) changes nothing when it fails.
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns: %w", err)}
			return
		}
		var r result
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.panicked, r.value = true, v
				}
			}()
			r.err = f()
		}()
		if err := netns.Set(orig); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("restore netns: %w", err))
			ch <- r
			return // still locked: Go terminates this thread
		}
		runtime.UnlockOSThread()
		ch <- r
	}()
	r := <-ch
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// Sysctl reads a sysctl of the host's namespace, by its path under
// /proc/sys ("net/ipv4/conf/eth0/arp_ignore").
func (h *Host) Sysctl(path string) (string, error) {
	var v string
	err := h.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", path, err)
	}
	return v, nil
}

// SetSysctl writes a sysctl of the host's namespace; path as for Sysctl.
func (h *Host) SetSysctl(path, value string) error {
	return h.Do(func() error { return writeSysctls(map[string]string{path: value}) })
}

// writeSysctls writes sysctls of the calling thread's namespace: the kernel
// resolves /proc/sys/net through the namespace of the task that opens it.
func writeSysctls(kv map[string]string) error {
	for k, v := range kv {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// LinkDown cuts the host off the LAN the way a pulled cable or a dead switch
// port does: it downs the switch end of the host's veth. The host sees its
// carrier drop but keeps its addresses, and its processes keep running, so
// LinkUp restores it exactly. It returns once the kernel reports both ends
// down.
func (h *Host) LinkDown() error {
	if err := h.setPort(false); err != nil {
		return err
	}
	return h.waitOper(func(s netlink.LinkOperState) bool { return s != netlink.OperUp })
}

// LinkUp reconnects a host cut off by LinkDown. It returns once both ends
// of the link pass traffic again, which can take the kernel up to a second
// (see "Link state" in the package doc). As after a real outage, hosts may
// still need a moment more: an address resolution that went unanswered while
// the link was down (on this host, or on one that tried to reach it) is
// retried on the kernel's schedule, one second apart; FlushNeighbors starts
// it afresh. A failover test that times recovery should measure from the
// client, not from this call.
func (h *Host) LinkUp() error {
	if err := h.setPort(true); err != nil {
		return err
	}
	return h.waitUp()
}

func (h *Host) setPort(up bool) error {
	l := h.lab
	port, err := l.swNL.LinkByName(h.port)
	if err != nil {
		return fmt.Errorf("%s: find switch port: %w", h.Name, err)
	}
	set, what := l.swNL.LinkSetDown, "down"
	if up {
		set, what = l.swNL.LinkSetUp, "up"
	}
	if err := set(port); err != nil {
		return fmt.Errorf("%s: switch port %s: %w", h.Name, what, err)
	}
	return nil
}

// AddServiceIP puts addr on the host's lo, the way kube-proxy in IPVS mode
// binds LoadBalancer IPs to a local device, and sets how the kernel answers
// ARP for it from Options.StrictARP: with StrictARP, arp_ignore=1 (answer
// only for addresses of the receiving interface, so never for lo's) and
// arp_announce=2 (never use such an address as an ARP source), which is what
// kube-proxy's strictARP sets; without it, both 0, the kernel defaults, under
// which every host holding addr answers ARP for it. IPv6 addresses on lo are
// never answered by the kernel's NDP either way.
func (h *Host) AddServiceIP(addr netip.Addr) error {
	if addr.Is4() {
		ignore, announce := "0", "0"
		if h.lab.opts.StrictARP {
			ignore, announce = "1", "2"
		}
		kv := map[string]string{}
		for _, dev := range []string{"all", h.IfName} {
			kv["net/ipv4/conf/"+dev+"/arp_ignore"] = ignore
			kv["net/ipv4/conf/"+dev+"/arp_announce"] = announce
		}
		if err := h.Do(func() error { return writeSysctls(kv) }); err != nil {
			return fmt.Errorf("add service IP %s: %w", addr, err)
		}
	}
	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%s: add service IP %s: %w", h.Name, addr, err)
	}
	if err := h.nl.AddrReplace(lo, nlAddr(netip.PrefixFrom(addr, addr.BitLen()))); err != nil {
		return fmt.Errorf("%s: add service IP %s: %w", h.Name, addr, err)
	}
	return nil
}

// RemoveServiceIP takes addr off the host's lo.
func (h *Host) RemoveServiceIP(addr netip.Addr) error {
	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%s: remove service IP %s: %w", h.Name, addr, err)
	}
	if err := h.nl.AddrDel(lo, nlAddr(netip.PrefixFrom(addr, addr.BitLen()))); err != nil {
		return fmt.Errorf("%s: remove service IP %s: %w", h.Name, addr, err)
	}
	return nil
}
