package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/internal/kube"
)

// checkLayer2 reports how the Layer 2 addresses are spread over the
// nodes, as the speakers' ServiceAnnouncements say: a cordoned node (or
// one labelled ironlb.io/maintenance) that still announces addresses
// other nodes could take warns, since its planned handovers normally
// take about a second; an uneven spread is reported, as the speakers
// even it out one address at a time.
func checkLayer2(f clusterFacts) []finding {
	const check = "layer2"
	if f.ServicesErr != nil || f.NodesErr != nil {
		return nil // checkServices and checkPools report them
	}
	perNode := map[string]map[string]bool{} // node -> addresses
	for _, r := range f.Services {
		for _, a := range r.Announcers {
			if a.Node == "" {
				continue
			}
			if perNode[a.Node] == nil {
				perNode[a.Node] = map[string]bool{}
			}
			perNode[a.Node][a.IP] = true
		}
	}
	if len(perNode) == 0 {
		return nil
	}
	var out []finding
	counts := map[string]int{}
	var draining []string
	for _, n := range f.Nodes {
		if kube.Excluded(n.Labels) {
			continue
		}
		counts[n.Name] = len(perNode[n.Name])
		if kube.Draining(&n) && counts[n.Name] > 0 {
			draining = append(draining, n.Name)
			out = append(out, finding{check, sevWarn,
				fmt.Sprintf("node %s is cordoned or in maintenance but still announces %s: its planned handovers take about a second, unless no other node may announce them", n.Name, plural(counts[n.Name], "address")),
				fmt.Sprintf("%s status -o wide shows which; other nodes must be selected by the address's L2Announcement, Ready, run a speaker, and hold an endpoint of each externalTrafficPolicy: Local Service using it", f.CLI)})
		}
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(draining, name) {
			parts = append(parts, fmt.Sprintf("%s %d", name, counts[name]))
		}
	}
	spread := strings.Join(parts, ", ")
	lo, hi := -1, 0
	for name, n := range counts {
		if slices.Contains(draining, name) {
			continue
		}
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	msg := "Layer 2 addresses per node: " + spread
	if hi-lo > 1 {
		msg += "; the speakers move one address at a time (every 10 s by default, --rebalance-interval) until no two nodes that could swap one differ by more than one, within each L2Announcement's most preferred nodes"
	}
	return append(out, finding{check, sevOK, msg, ""})
}
