package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMergeRoutes(t *testing.T) {
	p := netip.MustParsePrefix("203.0.113.100/32")
	lp100, lp200 := uint32(100), uint32(200)
	for _, tc := range []struct {
		name   string
		routes []Route
		want   *announcement
	}{
		{"one", []Route{{Prefix: p, Peers: []string{"b", "a"}, Communities: []uint32{2, 1}}},
			&announcement{peers: []string{"a", "b"}, communities: []uint32{1, 2}}},
		{"peers and communities unite, highest local pref wins",
			[]Route{
				{Prefix: p, Peers: []string{"a"}, LocalPref: &lp100, Communities: []uint32{1}},
				{Prefix: p, Peers: []string{"b", "a"}, LocalPref: &lp200, Communities: []uint32{1, 3}, LargeCommunities: [][3]uint32{{1, 2, 3}}},
			},
			&announcement{peers: []string{"a", "b"}, localPref: &lp200, communities: []uint32{1, 3}, largeCommunities: [][3]uint32{{1, 2, 3}}}},
		{"all peers wins over some",
			[]Route{{Prefix: p, Peers: []string{"a"}}, {Prefix: netip.MustParsePrefix("203.0.113.100/32")}},
			&announcement{}},
		{"host bits are masked",
			[]Route{{Prefix: netip.MustParsePrefix("203.0.113.100/24")}},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeRoutes(slices.Values(tc.routes))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if _, ok := got[netip.MustParsePrefix("203.0.113.0/24")]; !ok || len(got) != 1 {
					t.Errorf("got %v, want only 203.0.113.0/24", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got[p], cmp.AllowUnexported(announcement{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := mergeRoutes(slices.Values([]Route{{}})); err == nil {
		t.Error("a zero prefix is accepted")
	}
}

// TestMergeRoutesShares checks that prefixes announced alike share one
// announcement, and that merging does not depend on the routes' order.
func TestMergeRoutesShares(t *testing.T) {
	p1, p2, p3 := netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("203.0.113.2/32"), netip.MustParsePrefix("203.0.113.3/32")
	lp := uint32(50)
	a := Route{Peers: []string{"b", "a"}, Communities: []uint32{7}}
	b := Route{Peers: []string{"c"}, LocalPref: &lp, LargeCommunities: [][3]uint32{{1, 2, 3}}}
	with := func(r Route, p netip.Prefix) Route { r.Prefix = p; return r }
	got, err := mergeRoutes(slices.Values([]Route{with(a, p1), with(b, p2), with(a, p2), with(a, p3), with(b, p3), with(a, p3)}))
	if err != nil {
		t.Fatal(err)
	}
	if got[p1] == got[p2] {
		t.Errorf("%s and %s share an announcement, but %s has more peers", p1, p2, p2)
	}
	if got[p2] != got[p3] {
		t.Errorf("%s and %s are announced alike but do not share an announcement: %+v, %+v", p2, p3, got[p2], got[p3])
	}
	want := &announcement{peers: []string{"a", "b", "c"}, localPref: &lp, communities: []uint32{7}, largeCommunities: [][3]uint32{{1, 2, 3}}}
	if diff := cmp.Diff(want, got[p3], cmp.AllowUnexported(announcement{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The routes' slices are the caller's: merging leaves them as they were.
	if !slices.Equal(a.Peers, []string{"b", "a"}) {
		t.Errorf("the route's peers changed to %v", a.Peers)
	}
}

func TestValidatePeers(t *testing.T) {
	a1, a2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	ok := Peer{Name: "a", Address: a1, MyASN: 1, PeerASN: 2}
	for _, tc := range []struct {
		name  string
		peers []Peer
		want  string
	}{
		{"fine", []Peer{ok, {Name: "b", Address: a2, MyASN: 1, PeerASN: 1}}, ""},
		{"no name", []Peer{{Address: a1, MyASN: 1, PeerASN: 2}}, "has no name"},
		{"same name", []Peer{ok, {Name: "a", Address: a2, MyASN: 1, PeerASN: 2}}, "name used twice"},
		{"same address", []Peer{ok, {Name: "b", Address: a1, MyASN: 1, PeerASN: 2}}, "already used by peer a"},
		{"no ASN", []Peer{{Name: "a", Address: a1}}, "needs both AS numbers"},
		{"source of another family", []Peer{{Name: "a", Address: a1, MyASN: 1, PeerASN: 2, SourceAddress: netip.MustParseAddr("2001:db8::1")}}, "not of the family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validatePeers(tc.peers)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("validatePeers = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPeerChanges(t *testing.T) {
	base := Peer{Name: "a", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 1, PeerASN: 2, BFD: &BFD{DetectMultiplier: 3}}
	same := base
	same.BFD = &BFD{DetectMultiplier: 3}
	bfd := base
	bfd.BFD = &BFD{DetectMultiplier: 5}
	hold := base
	hold.HoldTime = 3 * time.Second
	if !equalPeers(base, same) {
		t.Error("equal BFD settings behind different pointers differ")
	}
	if equalPeers(base, bfd) || !onlyBFDDiffers(base, bfd) {
		t.Error("a BFD change is not a BFD-only change")
	}
	if equalPeers(base, hold) || onlyBFDDiffers(base, hold) {
		t.Error("a hold time change counts as BFD-only")
	}
}

func TestErrorTap(t *testing.T) {
	errs := &lastErrors{}
	var out strings.Builder
	log := slog.New(&errorTap{next: slog.NewTextHandler(&out, nil), errs: errs})
	peer := log.With(slog.String("Topic", "Peer"), slog.String("Key", "198.51.100.1"))
	peer.Debug("failed to connect", slog.String("Error", "dial tcp: connection refused"))
	if got := errs.get(netip.MustParseAddr("198.51.100.1")); got != "dial tcp: connection refused" {
		t.Errorf("recorded %q", got)
	}
	if strings.Contains(out.String(), "failed to connect") {
		t.Errorf("a debug record reached an info handler: %s", out.String())
	}
	peer.Debug("state changed", slog.String("old", "BGP_FSM_ACTIVE"), slog.String("new", "BGP_FSM_ESTABLISHED"))
	if got := errs.get(netip.MustParseAddr("198.51.100.1")); got != "" {
		t.Errorf("established, but still %q", got)
	}
	peer.Debug("state changed", slog.String("old", "BGP_FSM_ESTABLISHED"), slog.String("new", "BGP_FSM_IDLE"), slog.String("reason", "hold-timer-expired"))
	if got := errs.get(netip.MustParseAddr("198.51.100.1")); got != "session closed: hold-timer-expired" {
		t.Errorf("recorded %q", got)
	}
	log.Info("hello")
	if !strings.Contains(out.String(), "hello") {
		t.Errorf("an info record was dropped: %s", out.String())
	}
}

func TestSpeakerBeforeRun(t *testing.T) {
	if _, err := New(Options{RouterID: netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("an IPv6 router ID is accepted")
	}
	s, err := New(Options{RouterID: netip.MustParseAddr("198.51.100.11")})
	if err != nil {
		t.Fatal(err)
	}
	p := Peer{Name: "tor", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64512, PeerASN: 64500, BFD: &BFD{}}
	if err := s.SetPeers([]Peer{p}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPeers([]Peer{p, p}); err == nil {
		t.Error("duplicate peers are accepted")
	}
	if err := s.SetRoutes(slices.Values([]Route{{Prefix: netip.MustParsePrefix("203.0.113.100/32")}})); err != nil {
		t.Fatal(err)
	}
	want := []PeerStatus{{Name: "tor", Address: p.Address, State: StateIdle, BFD: "Down"}}
	if diff := cmp.Diff(want, s.Status(), cmpAddrs); diff != "" {
		t.Errorf("Status before Run (-want +got):\n%s", diff)
	}
}

// TestSpeakerRunStops starts GoBGP without peers (it opens no socket then:
// it never listens) and stops it.
func TestSpeakerRunStops(t *testing.T) {
	s, err := New(Options{RouterID: netip.MustParseAddr("198.51.100.11")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoutes(slices.Values([]Route{{Prefix: netip.MustParsePrefix("203.0.113.100/32")}, {Prefix: netip.MustParsePrefix("2001:db8:3::1/128")}})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		running, n := s.srv != nil, len(s.haveRoutes)
		s.mu.Unlock()
		if running && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes not in GoBGP: running %v, %d routes", running, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.SetRoutes(slices.Values([]Route(nil))); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := s.Run(t.Context()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestExplain(t *testing.T) {
	if got := explain("dial tcp 0.0.0.0:0->198.51.100.1:179: i/o timeout", Peer{Password: "x"}); !strings.Contains(got, "different TCP MD5 password") {
		t.Errorf("explain = %q", got)
	}
	if got := explain("dial tcp 198.51.100.1:179: connect: connection refused", Peer{}); !strings.Contains(got, "configured as its neighbor") {
		t.Errorf("explain = %q", got)
	}
}
