package speaker

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/kubecr"
)

func TestSessionName(t *testing.T) {
	for _, tt := range []struct {
		node, peer string
		prefix     string // the readable part
	}{
		{"node-1", "router", "node-1-router-"},
		{"node-1.example.com", "tor-a", "node-1-example-com-tor-a-"},
		{"node-1", "peers[0]", "node-1-peers-0-"},
		{"Node_1", "--", "node-1-"},
		{"", "!!", "session-"},
		{strings.Repeat("n", 253), "router", strings.Repeat("n", 54) + "-"},
		{strings.Repeat("n", 53) + ".x", "router", strings.Repeat("n", 53) + "-"},
	} {
		got := sessionName(tt.node, tt.peer)
		if !strings.HasPrefix(got, tt.prefix) || len(got) != len(tt.prefix)+8 {
			t.Errorf("sessionName(%q, %q) = %q, want %q and 8 hex digits", tt.node, tt.peer, got, tt.prefix)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("sessionName(%q, %q) = %q: not a DNS label: %v", tt.node, tt.peer, got, errs)
		}
		if again := sessionName(tt.node, tt.peer); again != got {
			t.Errorf("sessionName(%q, %q) is not deterministic: %q, then %q", tt.node, tt.peer, got, again)
		}
	}
	// "-" belongs to both names, so the readable parts may be equal; the
	// hash keeps the names apart.
	if a, b := sessionName("a", "b-c"), sessionName("a-b", "c"); a == b {
		t.Errorf("node a with peer b-c and node a-b with peer c share the name %q", a)
	}
}

func TestLabelValue(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "": hashed
	}{
		{"node-1", "node-1"},
		{"node-1.example.com", "node-1.example.com"},
		{"Router_A", "Router_A"},
		{"peers[0]", ""},
		{strings.Repeat("n", 64), ""},
	} {
		got := labelValue(tt.in)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("labelValue(%q) = %q: not a label value: %v", tt.in, got, errs)
		}
		switch {
		case tt.want != "" && got != tt.want:
			t.Errorf("labelValue(%q) = %q, want it unchanged", tt.in, got)
		case tt.want == "" && got == tt.in:
			t.Errorf("labelValue(%q) unchanged", tt.in)
		}
	}
}

func TestNeedsWrite(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	up := v1alpha1.BGPSessionStateStatus{Node: "node-1", Peer: "router", PeerAddress: "192.0.2.1",
		State: v1alpha1.BGPStateEstablished, PrefixesSent: 3, LastTransitionTime: metav1.NewTime(t0)}
	change := func(f func(*v1alpha1.BGPSessionStateStatus)) v1alpha1.BGPSessionStateStatus {
		s := up
		f(&s)
		return s
	}
	for _, tt := range []struct {
		name  string
		want  v1alpha1.BGPSessionStateStatus
		since time.Duration // since the last write
		write bool
	}{
		{"unchanged", up, time.Hour, false},
		{"same time, other location", change(func(s *v1alpha1.BGPSessionStateStatus) {
			s.LastTransitionTime = metav1.NewTime(t0.In(time.FixedZone("x", 3600)))
		}), 0, false},
		{"goes down", change(func(s *v1alpha1.BGPSessionStateStatus) {
			s.State, s.LastError = v1alpha1.BGPStateActive, "connection refused"
		}), 0, true},
		{"reset: established anew", change(func(s *v1alpha1.BGPSessionStateStatus) {
			s.LastTransitionTime = metav1.NewTime(t0.Add(time.Minute))
		}), 0, true},
		{"BFD state", change(func(s *v1alpha1.BGPSessionStateStatus) { s.BFDState = v1alpha1.BFDStateDown }), 0, true},
		{"peer address", change(func(s *v1alpha1.BGPSessionStateStatus) { s.PeerAddress = "192.0.2.2" }), 0, true},
		{"prefixes, just written", change(func(s *v1alpha1.BGPSessionStateStatus) { s.PrefixesSent = 4 }), time.Second, false},
		{"prefixes, written a while ago", change(func(s *v1alpha1.BGPSessionStateStatus) { s.PrefixesSent = 4 }), sessionCoalesce, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(time.Hour)
			if got := needsWrite(&up, &tt.want, now.Add(-tt.since), now); got != tt.write {
				t.Errorf("needsWrite = %v, want %v", got, tt.write)
			}
		})
	}

	// States a failing session cycles through are coalesced too.
	active := change(func(s *v1alpha1.BGPSessionStateStatus) { s.State, s.PrefixesSent = v1alpha1.BGPStateActive, 0 })
	idle := change(func(s *v1alpha1.BGPSessionStateStatus) { s.State, s.PrefixesSent = v1alpha1.BGPStateIdle, 0 })
	if needsWrite(&active, &idle, t0, t0.Add(time.Second)) {
		t.Error("Active to Idle a second after a write: written at once, want coalesced")
	}
	if !needsWrite(&active, &idle, t0, t0.Add(sessionCoalesce)) {
		t.Error("Active to Idle: not written after the coalescing interval")
	}
}

func TestSessionStatus(t *testing.T) {
	now := time.Date(2025, 1, 1, 10, 0, 30, 500, time.UTC)
	since := time.Date(2025, 1, 1, 9, 0, 0, 700, time.UTC)
	p := bgp.PeerStatus{Name: "router", Address: netip.MustParseAddr("192.0.2.1"), State: bgp.StateEstablished,
		Since: since, PrefixesSent: 2, BFD: "Up"}
	got := sessionStatus("node-1", p, nil, now)
	want := v1alpha1.BGPSessionStateStatus{Node: "node-1", Peer: "router", PeerAddress: "192.0.2.1",
		State: v1alpha1.BGPStateEstablished, BFDState: v1alpha1.BFDStateUp, PrefixesSent: 2,
		LastTransitionTime: metav1.NewTime(since.Truncate(time.Second))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("established (-want +got):\n%s", diff)
	}

	// Down: the transition is now, and stays when the state does.
	p = bgp.PeerStatus{Name: "router", Address: p.Address, State: bgp.StateActive, LastError: strings.Repeat("é", 600)}
	down := sessionStatus("node-1", p, &got, now)
	if !down.LastTransitionTime.Time.Equal(now.Truncate(time.Second)) {
		t.Errorf("went down at %v, want %v", down.LastTransitionTime, now.Truncate(time.Second))
	}
	if len(down.LastError) > maxLastError || !strings.HasPrefix(strings.Repeat("é", 600), down.LastError) {
		t.Errorf("lastError of %d bytes, want at most %d whole characters", len(down.LastError), maxLastError)
	}
	later := sessionStatus("node-1", p, &down, now.Add(time.Minute))
	if !later.LastTransitionTime.Equal(&down.LastTransitionTime) {
		t.Errorf("still Active a minute later: transition time moved from %v to %v", down.LastTransitionTime, later.LastTransitionTime)
	}
}

func TestJanitor(t *testing.T) {
	v := announce.View{Nodes: map[string]announce.Node{"node-1": {Name: "node-1"}, "node-2": {Name: "node-2", Ready: true}, "node-3": {Name: "node-3", Ready: true}}}
	if got := janitor(v); got != "node-2" {
		t.Errorf("janitor %q, want node-2 (node-1 is not Ready)", got)
	}
	v.Alive = map[string]bool{"node-1": true, "node-3": true}
	if got := janitor(v); got != "node-3" {
		t.Errorf("janitor %q, want node-3 (node-2 is not alive)", got)
	}
}

// peersSource is a BGP speaker's Status as the test sets it.
type peersSource struct {
	mu    sync.Mutex
	peers []bgp.PeerStatus
	reads int
}

func (s *peersSource) set(p ...bgp.PeerStatus) {
	s.mu.Lock()
	s.peers = p
	s.mu.Unlock()
}

func (s *peersSource) status() []bgp.PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return append([]bgp.PeerStatus(nil), s.peers...)
}

// TestSessionWriter runs the writer against a fake API: it adopts what
// an earlier speaker of its node wrote, deletes what is stale, writes
// news at once and prefix counts coalesced, cleans up after nodes that
// are gone, and marks its sessions Idle when it stops.
func TestSessionWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ns = "ironlb-system"
		obj := func(node, peer string, st v1alpha1.BGPState) *v1alpha1.BGPSessionState {
			return &v1alpha1.BGPSessionState{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sessionName(node, peer),
					Labels: map[string]string{v1alpha1.LabelNode: node, v1alpha1.LabelPeer: peer}},
				Status: v1alpha1.BGPSessionStateStatus{Node: node, Peer: peer, PeerAddress: "192.0.2.1", State: st},
			}
		}
		var mu sync.Mutex
		writes := map[string]int{} // by name: creates and updates
		count := func(o client.Object) {
			mu.Lock()
			writes[o.GetName()]++
			mu.Unlock()
		}
		c := fake.NewClientBuilder().WithScheme(kubecr.Scheme()).
			WithObjects(
				obj("node-1", "router", v1alpha1.BGPStateEstablished), // adopted
				obj("node-1", "old-router", v1alpha1.BGPStateActive),  // its peer is gone
				obj("node-2", "router", v1alpha1.BGPStateEstablished), // another node's
				obj("node-9", "router", v1alpha1.BGPStateEstablished), // a node that is gone
			).
			WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
					count(o)
					return c.Create(ctx, o, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
					count(o)
					return c.Update(ctx, o, opts...)
				},
			}).Build()
		get := func(node, peer string) *v1alpha1.BGPSessionState {
			t.Helper()
			var o v1alpha1.BGPSessionState
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sessionName(node, peer)}, &o); err != nil {
				return nil
			}
			return &o
		}
		written := func(node, peer string) int {
			mu.Lock()
			defer mu.Unlock()
			return writes[sessionName(node, peer)]
		}
		adopted := get("node-1", "router")

		w := newSessionWriter(sessionWriterOptions{Client: crAccess{c}, Namespace: ns, Node: "node-1", Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()

		// Nothing happens before the first sync says what there is.
		synctest.Wait()
		if get("node-1", "old-router") == nil {
			t.Fatal("stale object deleted before the first sync")
		}

		router := netip.MustParseAddr("192.0.2.1")
		since := time.Now().Add(-time.Minute)
		src := &peersSource{}
		src.set(bgp.PeerStatus{Name: "router", Address: router, State: bgp.StateEstablished, Since: since, PrefixesSent: 1},
			bgp.PeerStatus{Name: "peers[1]", Address: netip.MustParseAddr("192.0.2.2"), State: bgp.StateActive,
				LastError: "dial tcp 192.0.2.2:179: i/o timeout (no answer: ...)"})
		w.set(src.status, nil)
		synctest.Wait()

		got := get("node-1", "router")
		if got == nil || got.UID != adopted.UID {
			t.Fatalf("node-1's session with router: %+v, want the earlier object (UID %s) updated", got, adopted.UID)
		}
		if got.Status.PrefixesSent != 1 || !got.Status.LastTransitionTime.Time.Equal(since.Truncate(time.Second)) {
			t.Errorf("status %+v, want 1 prefix, established at %v", got.Status, since.Truncate(time.Second))
		}
		legacy := get("node-1", "peers[1]")
		if legacy == nil || legacy.Status.LastError == "" || legacy.Labels[v1alpha1.LabelPeer] != labelValue("peers[1]") {
			t.Errorf("node-1's session with peers[1]: %+v, want created with its error and a valid peer label", legacy)
		}
		if get("node-1", "old-router") != nil {
			t.Error("the object of a peer no longer selected is still there")
		}
		if get("node-2", "router") == nil || get("node-9", "router") == nil {
			t.Error("deleted another node's object, though this node is not the janitor")
		}

		// A burst of prefixes: one write now (the first change), then at
		// most one per sessionCoalesce.
		base := written("node-1", "router")
		for i := range 20 {
			src.set(bgp.PeerStatus{Name: "router", Address: router, State: bgp.StateEstablished, Since: since, PrefixesSent: 2 + i})
			time.Sleep(250 * time.Millisecond) // 5 s in all
			synctest.Wait()
		}
		time.Sleep(sessionCoalesce)
		synctest.Wait()
		if n := written("node-1", "router") - base; n < 2 || n > 4 {
			t.Errorf("%d writes for 20 prefix counts over 5 s, want 2 to 4", n)
		}
		if got := get("node-1", "router"); got.Status.PrefixesSent != 21 {
			t.Errorf("prefixes %d after the burst, want 21", got.Status.PrefixesSent)
		}

		// Going down is news: written at the next poll, not coalesced.
		src.set(bgp.PeerStatus{Name: "router", Address: router, State: bgp.StateIdle, LastError: "hold timer expired"})
		time.Sleep(sessionPollMin)
		synctest.Wait()
		if got := get("node-1", "router"); got.Status.State != v1alpha1.BGPStateIdle || got.Status.LastError != "hold timer expired" {
			t.Errorf("after the session went down: %+v", got.Status)
		}
		// Nothing changes: nothing is written.
		base = written("node-1", "router")
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := written("node-1", "router") - base; n != 0 {
			t.Errorf("%d writes in a minute without change", n)
		}
		// A burst of syncs that change nothing for the writer does not
		// make it read the sessions (GoBGP walks its routes for that).
		src.mu.Lock()
		reads := src.reads
		src.mu.Unlock()
		for range 100 {
			w.set(src.status, nil)
		}
		synctest.Wait()
		src.mu.Lock()
		if n := src.reads - reads; n != 0 {
			t.Errorf("100 syncs without change: %d reads of the sessions, want none before the next poll", n)
		}
		src.mu.Unlock()

		// As the janitor, with node-9 gone.
		w.set(src.status, map[string]bool{"node-1": true, "node-2": true})
		synctest.Wait()
		if get("node-9", "router") != nil {
			t.Error("the object of node-9, which is gone, is still there")
		}
		if get("node-2", "router") == nil {
			t.Error("the janitor deleted the object of node-2, which exists")
		}

		// Back up, then the speaker stops: its sessions read Idle.
		src.set(bgp.PeerStatus{Name: "router", Address: router, State: bgp.StateEstablished, Since: time.Now(), PrefixesSent: 3})
		w.set(src.status, nil)
		synctest.Wait()
		if got := get("node-1", "router"); got.Status.State != v1alpha1.BGPStateEstablished {
			t.Fatalf("back up: %+v", got.Status)
		}
		cancel()
		<-done
		if got := get("node-1", "router"); got.Status.State != v1alpha1.BGPStateIdle || got.Status.PrefixesSent != 0 ||
			!strings.Contains(got.Status.LastError, "stopped") {
			t.Errorf("after the speaker stopped: %+v", got.Status)
		}

		// No BGP speaker any more (no peer selects the node): a new
		// writer deletes the node's objects.
		w = newSessionWriter(sessionWriterOptions{Client: crAccess{c}, Namespace: ns, Node: "node-1", Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel = context.WithCancel(t.Context())
		defer cancel()
		go w.run(ctx)
		w.set(nil, nil)
		synctest.Wait()
		var left v1alpha1.BGPSessionStateList
		if err := c.List(context.Background(), &left, client.MatchingLabels{v1alpha1.LabelNode: "node-1"}); err != nil || len(left.Items) != 0 {
			t.Errorf("node-1's objects after BGP went away: %d (error %v), want none", len(left.Items), err)
		}
	})
}
