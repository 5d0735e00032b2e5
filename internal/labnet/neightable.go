package labnet

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's neighbour tables (ARP, and NDP for IPv6) are one per
// machine, not one per network namespace: their limits, gc_thresh1-3,
// exist only in the initial namespace (/proc/sys/net/ipv4/neigh/default),
// and the entries of every namespace count against them together. Past
// gc_thresh2 (512 by default) the kernel evicts entries that were not
// confirmed within 5 s whenever it allocates one; past gc_thresh3 (1024)
// it refuses new entries ("neighbor table overflow", counted as
// table_fulls in /proc/net/stat/arp_cache) and drops the packet that
// needed one. Measured here: two namespaces adding 600 entries each, the
// second got 424.
//
// In a lab every node ends up talking to every other (memberlist probes a
// random member every interval and gossips to random ones), and to cp and
// the client, so the lab alone holds about hosts² entries per family: over
// 10,000 with 100 nodes, and more than the default soft limit from about
// 20. A larger lab raises the machine's limits by that much, on top of
// the defaults left for the rest of the machine. It never lowers them and
// leaves them raised when it closes: they bound the memory the kernel may
// spend on the cache and change nothing else, and another lab may be
// counting on them.

// neighbourHosts is the largest lab, counted in hosts, that leaves the
// machine's neighbour limits alone: 23² entries fit under the default
// gc_thresh2 of 512.
const neighbourHosts = 23

// neighbourLimits are the limits a lab of hosts hosts needs, by sysctl
// name: the kernel's defaults (512 and 1024) plus the lab's own entries,
// twice over below the hard limit so that forced collection never starts
// in a settled lab. Nil if the defaults do.
func neighbourLimits(hosts int) map[string]int {
	if hosts <= neighbourHosts {
		return nil
	}
	lab := hosts * hosts
	return map[string]int{"gc_thresh2": 512 + lab, "gc_thresh3": 1024 + 2*lab}
}

// raiseNeighbourLimits raises the machine's ARP and NDP table limits to
// what a lab of hosts hosts needs (see neighbourLimits), for both IPv4 and
// IPv6, and logs what it changed. It must run in the initial network
// namespace, where the limits live.
func raiseNeighbourLimits(hosts int, log *slog.Logger) error {
	want := neighbourLimits(hosts)
	if want == nil {
		return nil
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		// gc_thresh3 first, so that the soft limit is never above the
		// hard one in between.
		for _, name := range []string{"gc_thresh3", "gc_thresh2"} {
			path := filepath.Join("/proc/sys/net", fam, "neigh/default", name)
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("neighbour table limits: %w", err)
			}
			cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return fmt.Errorf("neighbour table limits: %s: %w", path, err)
			}
			if cur >= want[name] {
				continue
			}
			if err := os.WriteFile(path, []byte(strconv.Itoa(want[name])), 0o644); err != nil {
				return fmt.Errorf("neighbour table limits: %w", err)
			}
			log.Info("raised the machine's neighbour table limit for a large lab", "sysctl", "net."+fam+".neigh.default."+name, "from", cur, "to", want[name])
		}
	}
	return nil
}
