package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/internal/labnet"
)

// The testdata files are the daemons' replies on the lab's router (FRR
// 8.4.4 and BIRD 2.0.12, Debian 12) a moment after node-3 died in a
// TestLab run: node-1 and node-2 Established with BFD up, node-3's
// session Idle and its BFD down (FRR counting one drop and one BFD
// session-down event).

// The nodes' addresses in the lab.
var node1, node2, node3 = netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12"), netip.MustParseAddr("198.51.100.13")

// testdata returns the contents of files in testdata/.
func testdata(t *testing.T, names ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestParseFRR(t *testing.T) {
	got := map[netip.Addr]peerState{}
	in := testdata(t, "frr-neighbors.json", "frr-bfd-peers.json", "frr-bfd-counters.json")
	err := parseFRR(in[0], in[1], in[2], got)
	if err != nil {
		t.Fatal(err)
	}
	for a, s := range got {
		s.Info = ""
		got[a] = s
	}
	want := map[netip.Addr]peerState{
		node1: {Established: true, BFDUp: true},
		node2: {Established: true, BFDUp: true},
		node3: {Drops: 1, BFDDowns: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseBIRD(t *testing.T) {
	var lines [][]string
	for _, b := range testdata(t, "bird-protocols.txt", "bird-bfd-sessions.txt") {
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
	}
	byProto := map[string]netip.Addr{}
	for _, a := range []netip.Addr{node1, node2, node3} {
		byProto["n_"+strings.ReplaceAll(a.String(), ".", "_")] = a
	}
	got := map[netip.Addr]peerState{}
	parseBIRD(lines[0], lines[1], byProto, got)
	for a, s := range got {
		s.Info = ""
		got[a] = s
	}
	want := map[netip.Addr]peerState{
		node1: {Established: true, BFDUp: true, Drops: -1, BFDDowns: -1},
		node2: {Established: true, BFDUp: true, Drops: -1, BFDDowns: -1},
		node3: {Drops: -1, BFDDowns: -1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseBFD(t *testing.T) {
	router := netip.MustParseAddr("198.51.100.1")
	// udp is an IPv4 header (no options), a UDP header from node-3 to
	// the router's port dport, with proto as IP protocol, and a BFD
	// header in state.
	udp := func(proto byte, dport uint16, state byte) []byte {
		p := make([]byte, 28+24)
		p[0] = 0x45
		p[9] = proto
		copy(p[12:16], node3.AsSlice())
		copy(p[16:20], router.AsSlice())
		binary.BigEndian.PutUint16(p[20:], 49152)
		binary.BigEndian.PutUint16(p[22:], dport)
		p[28] = 1 << 5 // version 1
		p[29] = state << 6
		return p
	}
	for _, tc := range []struct {
		name string
		p    []byte
		want bfdPacket
		ok   bool
	}{
		{"BFD control, Up", udp(17, 3784, 3), bfdPacket{node3, router, 3}, true},
		{"BFD control, Down", udp(17, 3784, 1), bfdPacket{node3, router, 1}, true},
		{"BFD echo", udp(17, 3785, 3), bfdPacket{}, false},
		{"TCP", udp(6, 3784, 3), bfdPacket{}, false},
		{"short", udp(17, 3784, 3)[:29], bfdPacket{}, false},
		{"IPv6", append([]byte{0x60}, udp(17, 3784, 3)[1:]...), bfdPacket{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseBFD(tc.p)
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseBFD = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFigures(t *testing.T) {
	o := options{BFDInterval: 100 * time.Millisecond, BFDMultiplier: 3}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	rs := []runResult{
		{Withdraw: ms(250), LastBFD: -ms(50), BFDDown: ms(250), TxInterval: ms(100), Startup: startup{Established: ms(2000), BFDUp: ms(4000)}},
		{Withdraw: ms(300), LastBFD: -ms(30), BFDDown: ms(270), TxInterval: ms(100), Startup: startup{Established: ms(2100), BFDUp: ms(4100), BFDDowns: 1}},
		{Withdraw: ms(450), LastBFD: -ms(10), BFDDown: ms(300), TxInterval: ms(100), Dark: true, Stalls: []stall{{Gap: ms(120)}}, Startup: startup{Established: ms(2200), BFDUp: ms(4200), Flaps: 2, Stalls: []stall{{Gap: ms(400)}}}},
	}
	got := map[string]float64{}
	for _, m := range figures(routerFRR, o, rs) {
		got[m.Name] = m.Value
	}
	want := map[string]float64{
		"bgp_withdraw_frr_runs":                       3,
		"bgp_withdraw_frr_p50":                        0.3,
		"bgp_withdraw_frr_p99":                        0.45,
		"bgp_withdraw_frr_max":                        0.45,
		"bgp_withdraw_frr_min":                        0.25,
		"reference_bfd_detection_time":                0.3,
		"bgp_withdraw_frr_p50_vs_bfd_detection_ratio": 1,
		"target_bgp_withdraw":                         0.4,
		"bgp_withdraw_frr_runs_over_target":           1,
		"bgp_withdraw_frr_after_last_bfd_p50":         0.33,
		"bgp_withdraw_frr_after_last_bfd_max":         0.46,
		"bgp_withdraw_frr_runs_with_bfd_down_seen":    3,
		"bgp_withdraw_frr_bfd_detect_p50":             0.3,
		"bgp_withdraw_frr_bfd_detect_max":             0.31,
		"bgp_withdraw_frr_router_work_p50":            0.03,
		"bgp_withdraw_frr_router_work_max":            0.15,
		"bgp_withdraw_frr_withdraw_machine_stalls":    1,
		"bgp_withdraw_frr_last_bfd_before_cut_p50":    0.03,
		"bgp_withdraw_frr_node_bfd_tx_interval_p50":   0.1,
		"bgp_withdraw_frr_runs_without_route":         1,
		"bgp_withdraw_frr_startup_bgp_flaps":          2,
		"bgp_withdraw_frr_startup_bfd_down_events":    1,
		"bgp_withdraw_frr_startup_machine_stalls":     1,
		"bgp_withdraw_frr_startup_established_p50":    2.1,
		"bgp_withdraw_frr_startup_bfd_up_p50":         4.1,
	}
	approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("figures (-want +got):\n%s", diff)
	}
}

// TestLab runs the benchmark shortened, one run against each router with
// a short settle, as `make test` does, and holds it to its claims with
// room for a loaded machine: no session flaps at start-up (unless the
// machine itself stalled), and the dead node's route gone well within a
// second. Needs root and `make build`.
func TestLab(t *testing.T) {
	labnet.Require(t)
	ctrllog.SetLogger(logr.Discard())
	o := options{Runs: 1, Routers: []routerKind{routerFRR, routerBIRD}, BFDInterval: 100 * time.Millisecond, BFDMultiplier: 3,
		Settle: 2 * time.Second, LogDir: t.ArtifactDir()}
	var out bytes.Buffer
	all, err := run(t.Context(), o, &out, t.Output())
	t.Logf("figures:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	const bound = 800 * time.Millisecond // the target, 400 ms, twice
	for _, k := range o.Routers {
		if len(all[k]) != o.Runs {
			t.Errorf("%s: %d runs, want %d", k, len(all[k]), o.Runs)
		}
		for i, r := range all[k] {
			if su := r.Startup; su.Flaps != 0 || su.BFDDowns != 0 {
				// A machine that stalls every process for a third of
				// a second fails BFD at 100 ms x 3 whatever the
				// speakers do.
				report := t.Errorf
				if len(su.Stalls) > 0 {
					report = t.Logf
				}
				report("%s run %d: %d BGP flaps and %d BFD down events at start-up (%d machine stalls): %q", k, i+1, su.Flaps, su.BFDDowns, len(su.Stalls), su.Events)
			}
			if r.Withdraw > bound {
				t.Errorf("%s run %d: the dead node's route went %v after the cut, want within %v", k, i+1, r.Withdraw, bound)
			}
		}
	}
}
