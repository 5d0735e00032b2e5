package speaker

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/internal/announce"
)

// skipPrefixes are interface names that are never the node's LAN: pod
// veths, container bridges, tunnels and kube-proxy's IPVS dummy. Answering
// ARP there would at best be useless and at worst confuse a CNI.
var skipPrefixes = []string{
	"veth", "cni", "docker", "br-", "virbr", "flannel", "cali", "cilium", "lxc",
	"vxlan", "tunl", "tun", "tap", "kube-ipvs", "nodelocaldns", "weave", "genev", "wg",
}

// LocalIfaces lists the interfaces of this host that a speaker may answer
// on: up, with a 6-byte MAC, broadcast-capable, not loopback, carrying at
// least one address, and not named like a pod or tunnel interface. If
// only is not empty, exactly the interfaces named there that qualify are
// returned (the --interfaces flag), whatever their names. The speaker
// reads them again whenever a link or an address changes (see
// watchLinks), so the list is of the moment.
func LocalIfaces(only []string) ([]announce.Iface, error) {
	ifis, err := answerable(only)
	if err != nil {
		return nil, err
	}
	return ifacesOf(ifis), nil
}

// answerable returns the interfaces LocalIfaces lists, in the kernel's
// order (by index), as net.Interfaces: the speaker keeps their index with
// each responder to tell a link deleted and made again under the same
// name from the one its responder's sockets are bound to.
func answerable(only []string) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 ||
			ifi.Flags&net.FlagBroadcast == 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		if len(only) > 0 {
			if !slices.Contains(only, ifi.Name) {
				continue
			}
		} else if slices.ContainsFunc(skipPrefixes, func(p string) bool { return strings.HasPrefix(ifi.Name, p) }) {
			continue
		}
		if addrs, err := ifi.Addrs(); err != nil || len(addrs) == 0 {
			continue
		}
		out = append(out, ifi)
	}
	return out, nil
}

// ifacesOf is ifis as the announce package names them: name and MAC.
func ifacesOf(ifis []net.Interface) []announce.Iface {
	var out []announce.Iface
	for _, ifi := range ifis {
		out = append(out, announce.Iface{Name: ifi.Name, MAC: ifi.HardwareAddr.String()})
	}
	return out
}

// encodeIfaces is the membership metadata a speaker publishes: its
// interfaces as "eth0=aa:bb:cc:dd:ee:ff,eth1=...". Interfaces are dropped
// from the end if the list does not fit in max bytes.
func encodeIfaces(ifaces []announce.Iface, max int) string {
	var b strings.Builder
	for _, i := range ifaces {
		item := i.Name + "=" + i.MAC
		if b.Len() > 0 {
			item = "," + item
		}
		if b.Len()+len(item) > max {
			break
		}
		b.WriteString(item)
	}
	return b.String()
}

// decodeIfaces reads encodeIfaces' output; malformed items are skipped.
func decodeIfaces(s string) []announce.Iface {
	out := []announce.Iface{}
	for item := range strings.SplitSeq(s, ",") {
		name, mac, ok := strings.Cut(item, "=")
		if ok && name != "" {
			out = append(out, announce.Iface{Name: name, MAC: mac})
		}
	}
	return out
}
