package announce

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
)

// preferConfig is testConfig's "l2" pool announced by one L2Announcement
// that prefers nodes labelled zone=a, then zone=b.
func preferConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, problems := config.Build(config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "l2", UID: "1"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.80/28"}}}},
		L2: []v1alpha1.L2Announcement{{
			ObjectMeta: metav1.ObjectMeta{Name: "lan", UID: "3"},
			Spec: v1alpha1.L2AnnouncementSpec{NodePreference: []metav1.LabelSelector{
				{MatchLabels: map[string]string{"zone": "a"}},
				{MatchLabels: map[string]string{"zone": "b"}},
			}},
		}},
	}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

func drained(n Node) Node {
	n.Draining = true
	return n
}

// TestPlannedHandover covers who owns an address whose current owner
// stays a candidate: it keeps it, unless drained or moving it
// (View.Moves), and then hands it over (From, Proxy).
func TestPlannedHandover(t *testing.T) {
	three := nodes(ready("node-1"), ready("node-2"), ready("node-3"))
	all := map[string]bool{"node-1": true, "node-2": true, "node-3": true}
	svc := []Service{{Key: "a/x", IPs: []netip.Addr{ip1}}}
	cur := func(n string) map[netip.Addr]string { return map[netip.Addr]string{ip1: n} }
	hrw23 := election.Owner(ip1, []string{"node-2", "node-3"})
	type want struct{ Owner, From, Proxy string }
	tests := []struct {
		name string
		view View
		want want
	}{
		{name: "owner stays", view: View{Nodes: three, Alive: all, Current: cur("node-1"), Services: svc},
			want: want{Owner: "node-1"}},
		{name: "owner drained: planned handover to the best of the others",
			view: View{Nodes: nodes(drained(ready("node-1")), ready("node-2"), ready("node-3")), Alive: all, Current: cur("node-1"), Services: svc},
			want: want{Owner: hrw23, From: "node-1", Proxy: "node-1"}},
		{name: "every node drained: the owner stays",
			view: View{Nodes: nodes(drained(ready("node-1")), drained(ready("node-2"))), Alive: all, Current: cur("node-1"), Services: svc},
			want: want{Owner: "node-1"}},
		{name: "drained and dead: a failover, no handover",
			view: View{Nodes: nodes(drained(ready("node-1")), ready("node-2"), ready("node-3")), Alive: map[string]bool{"node-2": true, "node-3": true}, Current: cur("node-1"), Services: svc},
			want: want{Owner: hrw23}},
		{name: "new address: never on a drained node",
			view: View{Nodes: nodes(drained(ready("node-1")), ready("node-2"), ready("node-3")), Alive: all, Services: svc},
			want: want{Owner: hrw23}},
		{name: "drained owner restarting: keeps it while away",
			view: View{Nodes: nodes(drained(ready("node-1")), ready("node-2"), ready("node-3")), Alive: map[string]bool{"node-2": true, "node-3": true}, Restarting: map[string]bool{"node-1": true}, Current: cur("node-1"), Services: svc},
			want: want{Owner: "node-1", Proxy: hrw23}},
		{name: "a published move", view: View{Nodes: three, Alive: all, Current: cur("node-1"), Moves: map[netip.Addr]Move{ip1: {IP: ip1, From: "node-1", To: "node-3"}}, Services: svc},
			want: want{Owner: "node-3", From: "node-1", Proxy: "node-1"}},
		{name: "a move published by a node that does not announce it: ignored", view: View{Nodes: three, Alive: all, Current: cur("node-2"), Moves: map[netip.Addr]Move{ip1: {IP: ip1, From: "node-1", To: "node-3"}}, Services: svc},
			want: want{Owner: "node-2"}},
		{name: "a move to a node that may not: ignored",
			view: View{Nodes: nodes(ready("node-1"), ready("node-2"), notReady(ready("node-3"))), Alive: all, Current: cur("node-1"), Moves: map[netip.Addr]Move{ip1: {IP: ip1, From: "node-1", To: "node-3"}}, Services: svc},
			want: want{Owner: "node-1"}},
		{name: "a move done: the target is current", view: View{Nodes: three, Alive: all, Current: cur("node-3"), Moves: map[netip.Addr]Move{ip1: {IP: ip1, From: "node-1", To: "node-3"}}, Services: svc},
			want: want{Owner: "node-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.view.Config = testConfig(t)
			d := decide(tt.view)[ip1]
			if diff := cmp.Diff(tt.want, want{d.Owner, d.From, d.Proxy}); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestPreference covers L2Announcement.NodePreference: new and failed
// over addresses go to the best-ranked nodes; a better node coming back
// takes nothing at once.
func TestPreference(t *testing.T) {
	cfg := preferConfig(t)
	svc := []Service{{Key: "a/x", IPs: []netip.Addr{ip1}}}
	ns := nodes(ready("c1", "zone=c"), ready("b1", "zone=b"), ready("b2", "zone=b"), ready("a1", "zone=a"))
	all := map[string]bool{"a1": true, "b1": true, "b2": true, "c1": true}
	noA := map[string]bool{"b1": true, "b2": true, "c1": true}
	tests := []struct {
		name      string
		alive     map[string]bool
		current   string
		owner     string
		preferred []string
	}{
		{name: "new address: the first rank", alive: all, owner: "a1", preferred: []string{"a1"}},
		{name: "first rank dead: the second", alive: noA, current: "a1", owner: election.Owner(ip1, []string{"b1", "b2"}), preferred: []string{"b1", "b2"}},
		{name: "first rank back: nothing moves at once", alive: all, current: "b2", owner: "b2", preferred: []string{"a1"}},
		{name: "unranked nodes last", alive: map[string]bool{"c1": true}, owner: "c1", preferred: []string{"c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := View{Config: cfg, Nodes: ns, Alive: tt.alive, Services: svc, Current: map[netip.Addr]string{}}
			if tt.current != "" {
				v.Current[ip1] = tt.current
			}
			d := decide(v)[ip1]
			if d.Owner != tt.owner || d.From != "" {
				t.Errorf("owner %q from %q, want %q from nobody", d.Owner, d.From, tt.owner)
			}
			if diff := cmp.Diff(tt.preferred, d.Preferred); diff != "" {
				t.Errorf("preferred (-want +got)\n%s", diff)
			}
		})
	}
}

// addrs returns n addresses of testConfig's "l2" pool, and a Service for each.
func addrs(n int) ([]netip.Addr, []Service) {
	var ips []netip.Addr
	var svcs []Service
	ip := netip.MustParseAddr("198.51.100.80")
	for i := range n {
		ips = append(ips, ip)
		svcs = append(svcs, Service{Key: fmt.Sprintf("a/s%d", i), IPs: []netip.Addr{ip}})
		ip = ip.Next()
	}
	return ips, svcs
}

// TestRebalance runs the rebalancing to its end from uneven starts, each
// move applied as the speakers do (the target becomes current), and
// checks where it ends and that it ends.
func TestRebalance(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(testing.TB) *config.Config
		nodes map[string]Node
		// current: the owner of each address, in order, cycling.
		current  []string
		want     map[string]int // addresses per node at the end
		maxMoves int
	}{
		{name: "a node back after a failure", cfg: testConfig, nodes: nodes(ready("node-1"), ready("node-2"), ready("node-3")),
			current: []string{"node-1", "node-2"}, want: map[string]int{"node-1": 4, "node-2": 4, "node-3": 4}, maxMoves: 4},
		{name: "even already: no move", cfg: testConfig, nodes: nodes(ready("node-1"), ready("node-2"), ready("node-3")),
			current: []string{"node-1", "node-2", "node-3"}, want: map[string]int{"node-1": 4, "node-2": 4, "node-3": 4}, maxMoves: 0},
		{name: "two apart: one move", cfg: testConfig, nodes: nodes(ready("node-1"), ready("node-2"), ready("node-3")),
			current: []string{"node-1", "node-2", "node-3", "node-1", "node-2", "node-3", "node-1", "node-2", "node-3", "node-1", "node-1", "node-2"},
			want:    map[string]int{"node-1": 4, "node-2": 4, "node-3": 4}, maxMoves: 1},
		{name: "all on one", cfg: testConfig, nodes: nodes(ready("node-1"), ready("node-2"), ready("node-3")),
			current: []string{"node-2"}, want: map[string]int{"node-1": 4, "node-2": 4, "node-3": 4}, maxMoves: 8},
		{name: "preference: back to the first rank, then even there", cfg: preferConfig,
			nodes:   nodes(ready("a1", "zone=a"), ready("a2", "zone=a"), ready("b1", "zone=b")),
			current: []string{"b1", "a1"}, want: map[string]int{"a1": 6, "a2": 6}, maxMoves: 12},
		{name: "a drained node is not a target", cfg: testConfig, nodes: nodes(ready("node-1"), ready("node-2"), drained(ready("node-3"))),
			current: []string{"node-1"}, want: map[string]int{"node-1": 6, "node-2": 6}, maxMoves: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ips, svcs := addrs(12)
			cur := map[netip.Addr]string{}
			for i, ip := range ips {
				cur[ip] = tt.current[i%len(tt.current)]
			}
			alive := map[string]bool{}
			for n := range tt.nodes {
				alive[n] = true
			}
			moves := 0
			for {
				v := View{Config: tt.cfg(t), Nodes: tt.nodes, Alive: alive, Current: cur, Services: svcs}
				ds := decide(v)
				m, ok := Rebalance(ds)
				if !ok {
					break
				}
				if moves++; moves > tt.maxMoves {
					t.Fatalf("more than %d moves; the last %+v", tt.maxMoves, m)
				}
				// The owner publishes the move; everyone then decides the
				// handover; it ends with the target current.
				v.Moves = map[netip.Addr]Move{m.IP: m}
				if d := decide(v)[m.IP]; d.Owner != m.To || d.From != m.From {
					t.Fatalf("move %+v decided as owner %q from %q", m, d.Owner, d.From)
				}
				if _, again := Rebalance(decide(v)); again {
					t.Fatal("a second move while one is under way")
				}
				cur[m.IP] = m.To
			}
			got := map[string]int{}
			for _, n := range cur {
				got[n]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("addresses per node (-want +got)\n%s", diff)
			}
		})
	}
}
