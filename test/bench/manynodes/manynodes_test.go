package main

import (
	"bytes"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labnet"
)

func TestParseCounters(t *testing.T) {
	// `nft list counters table inet manynodes_gossip`, nftables 1.0.6.
	const listed = `table inet manynodes_gossip {
	counter rx {
		packets 1812 bytes 157003
	}
	counter tx {
		packets 1806 bytes 156812
	}
}
`
	tests := []struct {
		name    string
		in      string
		want    traffic
		wantErr bool
	}{
		{"both", listed, traffic{RxPackets: 1812, RxBytes: 157003, TxPackets: 1806, TxBytes: 156812}, false},
		{"tx missing", "table inet manynodes_gossip {\n\tcounter rx {\n\t\tpackets 1 bytes 2\n\t}\n}\n", traffic{}, true},
		{"empty", "", traffic{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCounters(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCounters: error %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseCounters (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRateBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := traffic{At: t0, TxPackets: 100, TxBytes: 10000, RxPackets: 50, RxBytes: 5000}
	b := traffic{At: t0.Add(2 * time.Second), TxPackets: 300, TxBytes: 30000, RxPackets: 250, RxBytes: 25000}
	want := rate{TxPackets: 100, TxBytes: 10000, RxPackets: 100, RxBytes: 10000}
	if diff := cmp.Diff(want, rateBetween(a, b)); diff != "" {
		t.Errorf("rateBetween (-want +got):\n%s", diff)
	}
	if got := rateBetween(b, b); got != (rate{}) {
		t.Errorf("rateBetween over no time = %+v, want zero", got)
	}
}

func TestViewOf(t *testing.T) {
	ann := func(name string, es ...v1alpha1.Announcer) v1alpha1.ServiceAnnouncement {
		a := v1alpha1.ServiceAnnouncement{}
		a.Name = name
		a.Status.Announcers = es
		return a
	}
	got := viewOf([]v1alpha1.ServiceAnnouncement{
		ann("a", v1alpha1.Announcer{IP: "2001:db8:1::1:2", Node: "node-1"}),
		ann("b", v1alpha1.Announcer{IP: "2001:db8:1::1:1", Node: "node-1"}),
		ann("c", v1alpha1.Announcer{IP: "2001:db8:1::1:3", Node: "node-2"}, v1alpha1.Announcer{IP: "198.51.100.200", Reason: "no node"}),
		ann("d"),
	})
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	want := view{announced: 2, byNode: map[string][]netip.Addr{
		"node-1": addrs("2001:db8:1::1:1", "2001:db8:1::1:2"),
		"node-2": addrs("2001:db8:1::1:3"),
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(view{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("viewOf (-want +got):\n%s", diff)
	}
}

func TestVictim(t *testing.T) {
	nodes := []string{"node-1", "node-2", "node-3", "node-4"}
	ip := netip.MustParseAddr("2001:db8:1::1:1")
	v := view{byNode: map[string][]netip.Addr{"node-1": {ip}, "node-2": {ip}, "node-4": {ip}}}
	tests := []struct {
		i, runs int
		want    string
		ok      bool
	}{
		{0, 2, "node-1", true},
		{1, 2, "node-4", true}, // starts at node-3, which announces nothing
		{1, 4, "node-2", true},
		{3, 4, "node-4", true},
		{5, 4, "node-2", true}, // more runs than nodes wrap around
	}
	for _, tt := range tests {
		got, ok := victim(nodes, v, tt.i, tt.runs)
		if got != tt.want || ok != tt.ok {
			t.Errorf("victim(run %d of %d) = %q, %v; want %q, %v", tt.i, tt.runs, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := victim(nodes, view{}, 0, 1); ok {
		t.Error("victim found a node in a cluster that announces nothing")
	}
}

func TestFigures(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a1, a2, a3 := netip.MustParseAddr("2001:db8:1::1:1"), netip.MustParseAddr("2001:db8:1::1:2"), netip.MustParseAddr("2001:db8:1::1:3")
	rs := []failoverRun{
		{Addresses: []netip.Addr{a1, a2}, Gaps: map[netip.Addr]time.Duration{a1: ms(200), a2: ms(250)},
			Answered: map[netip.Addr]time.Duration{a1: ms(230), a2: ms(260)}},
		{Addresses: []netip.Addr{a3, a1, a2}, Gaps: map[netip.Addr]time.Duration{a3: ms(900)},
			Answered: map[netip.Addr]time.Duration{a3: ms(300), a1: ms(280)}}, // a2 never
		{Addresses: []netip.Addr{a2}, Gaps: map[netip.Addr]time.Duration{a2: ms(220)},
			Answered: map[netip.Addr]time.Duration{a2: ms(240)}},
	}
	got := map[string]float64{}
	for _, m := range failoverFigures(rs) {
		got[m.Name] = m.Value
	}
	want := map[string]float64{
		"manynodes_failover_runs":                     3,
		"manynodes_failover_probed_addresses":         4,
		"manynodes_failover_gap_p50":                  0.22,
		"manynodes_failover_gap_p99":                  0.9,
		"manynodes_failover_gap_max":                  0.9,
		"manynodes_failover_node_addresses_p50":       2,
		"manynodes_failover_runs_all_answered":        2,
		"manynodes_failover_all_answered_p50":         0.24,
		"manynodes_failover_all_answered_p99":         0.26,
		"manynodes_failover_all_answered_max":         0.26,
		"manynodes_failover_addresses_never_answered": 1,
		"target_unplanned_gap_p99":                    0.3,
	}
	approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("failoverFigures (-want +got):\n%s", diff)
	}
	for _, m := range failoverFigures(rs[1:2]) {
		if m.Name == "manynodes_failover_all_answered_p50" && !math.IsNaN(m.Value) {
			t.Errorf("%s = %v with no run answered in full, want NaN", m.Name, m.Value)
		}
	}

	r := rest{
		Window:  30 * time.Second,
		CPU:     map[string]float64{"node-1": 10, "node-2": 30, "node-3": 20},
		RSS:     map[string]int64{"node-1": 40 << 20, "node-2": 50 << 20, "node-3": 45 << 20},
		PeakRSS: map[string]int64{"node-1": 41 << 20, "node-2": 52 << 20, "node-3": 46 << 20},
		Gossip: map[string]rate{
			"node-1": {TxPackets: 180, TxBytes: 15000, RxPackets: 181, RxBytes: 15100},
			"node-2": {TxPackets: 200, TxBytes: 16000, RxPackets: 190, RxBytes: 15500},
			"node-3": {TxPackets: 190, TxBytes: 15500, RxPackets: 185, RxBytes: 15200},
		},
		ControllerCPU: 1.5,
	}
	got = map[string]float64{}
	for _, m := range restFigures(r) {
		got[m.Name] = m.Value
	}
	want = map[string]float64{
		"manynodes_rest_measured":                    30,
		"manynodes_rest_speaker_cpu_p50":             20,
		"manynodes_rest_speaker_cpu_max":             30,
		"manynodes_rest_speaker_rss_p50":             45,
		"manynodes_rest_speaker_rss_max":             50,
		"manynodes_rest_speaker_peak_rss_p50":        46,
		"manynodes_rest_speaker_peak_rss_max":        52,
		"manynodes_rest_gossip_sent_packets_p50":     190,
		"manynodes_rest_gossip_sent_packets_max":     200,
		"manynodes_rest_gossip_sent_bytes_p50":       15500,
		"manynodes_rest_gossip_sent_bytes_max":       16000,
		"manynodes_rest_gossip_received_packets_p50": 185,
		"manynodes_rest_gossip_received_packets_max": 190,
		"manynodes_rest_gossip_received_bytes_p50":   15200,
		"manynodes_rest_gossip_received_bytes_max":   15500,
		"manynodes_rest_controller_cpu":              1.5,
	}
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("restFigures (-want +got):\n%s", diff)
	}
}

// TestLab runs the benchmark shortened, as `make test` does: a few nodes,
// a few dozen addresses, two failovers and short windows. It holds the
// run to what must hold whatever the machine's load: every node's gossip
// counted, every failed node's addresses answered by another node, and
// no probe silent for more than a second (the target is 300 ms). Needs
// root and `make build`.
func TestLab(t *testing.T) {
	labnet.Require(t)
	ctrllog.SetLogger(logr.Discard())
	o := options{Nodes: 6, Services: 60, Runs: 2, Probes: 2, Settle: 2 * time.Second, Rest: 5 * time.Second,
		SpeakerLogLevel: "info", LogDir: t.ArtifactDir()}
	var out bytes.Buffer
	res, err := run(t.Context(), o, &out, t.Output())
	t.Logf("figures:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rest.Gossip) != o.Nodes {
		t.Errorf("gossip counted on %d nodes, want %d", len(res.Rest.Gossip), o.Nodes)
	}
	for n, g := range res.Rest.Gossip {
		if g.TxPackets == 0 || g.RxPackets == 0 {
			t.Errorf("%s: no gossip counted at rest: %+v", n, g)
		}
	}
	if len(res.Runs) != o.Runs {
		t.Fatalf("%d failovers, want %d", len(res.Runs), o.Runs)
	}
	const bound = time.Second
	for i, r := range res.Runs {
		if _, ok := r.allAnswered(); !ok {
			t.Errorf("run %d: %d of %s's %d addresses answered by another node", i+1, len(r.Answered), r.Victim, len(r.Addresses))
		}
		for ip, gap := range r.Gaps {
			if gap > bound {
				t.Errorf("run %d: %s silent for %v after %s failed, want at most %v", i+1, ip, gap, r.Victim, bound)
			}
		}
	}
}
