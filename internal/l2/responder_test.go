package l2

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
)

// fakeResponder is a Responder on fake sockets, for tests inside a
// synctest bubble.
type fakeResponder struct {
	*Responder
	arp *frameConn
	ndp *groupConn
}

func newFake(t *testing.T, opts Options) *fakeResponder {
	t.Helper()
	f := &fakeResponder{arp: newFrameConn(), ndp: newGroupConn()}
	r, err := NewWithConns(Conns{HardwareAddr: mac(ourMAC), IPv6Source: ourLL, ARP: f.arp, NDP: f.ndp}, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.Responder = r
	return f
}

// run runs the Responder until the test's end, and then checks that Run
// returned nil and closed the sockets.
func (f *fakeResponder) run(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if !f.arp.isClosed() || !f.ndp.isClosed() {
			t.Errorf("Run returned without closing its sockets")
		}
	})
}

func (f *fakeResponder) setAddrs(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	if err := f.SetAddrs(addrs); err != nil {
		t.Fatalf("SetAddrs(%v): %v", addrs, err)
	}
}

func arpRequest(tpa netip.Addr) []byte {
	return arpFrame(broadcastMAC, arp.OperationRequest, askerMAC, askerIP, zeroMAC, tpa)
}

func solicitation(target netip.Addr) []byte {
	return nsFrame(askerMAC, solicitedNodeMAC(target), askerLL, solicitedNode(target), target, askerMAC[:])
}

func TestResponderAnswersOwned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Options{AnnounceCount: -1, ReannounceInterval: -1})
		f.run(t)
		f.setAddrs(t, ownedIP, ownedIP6)

		for _, frame := range [][]byte{arpRequest(ownedIP), arpRequest(unownedIP), []byte("garbage"),
			arpFrame(ourMAC, arp.OperationReply, askerMAC, askerIP, ourMAC, ownedIP)} {
			f.arp.deliver(frame)
		}
		for _, frame := range [][]byte{solicitation(ownedIP6), solicitation(unowned6), []byte("garbage")} {
			f.ndp.deliver(frame)
		}
		synctest.Wait()
		sent := f.arp.takeSent()
		if len(sent) != 1 {
			t.Fatalf("%d ARP frames sent, want 1 reply", len(sent))
		}
		checkARPReply(t, sent[0].frame, ownedIP, askerMAC, askerIP)
		sent = f.ndp.takeSent()
		if len(sent) != 1 {
			t.Fatalf("%d NDP frames sent, want 1 advertisement", len(sent))
		}
		checkNA(t, sent[0].frame, askerMAC, ourLL, askerLL, ownedIP6, naFlagSolicit|naFlagOverride)

		// A new set is in effect for the next frame.
		f.setAddrs(t, unownedIP)
		f.arp.deliver(arpRequest(ownedIP))
		f.arp.deliver(arpRequest(unownedIP))
		f.ndp.deliver(solicitation(ownedIP6))
		synctest.Wait()
		sent = f.arp.takeSent()
		if len(sent) != 1 {
			t.Fatalf("%d ARP frames sent, want 1 reply", len(sent))
		}
		checkARPReply(t, sent[0].frame, unownedIP, askerMAC, askerIP)
		if sent := f.ndp.takeSent(); len(sent) != 0 {
			t.Errorf("answered a solicitation for a removed address")
		}

		want := Stats{
			ARP: Counters{Requests: 4, Replies: 2, Invalid: 1},
			NDP: Counters{Requests: 3, Replies: 1, Invalid: 1},
		}
		if diff := cmp.Diff(want, f.Stats()); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})
}

// announcement is what an announcement frame says, for comparisons.
type announcement struct {
	At   time.Duration // since the test's start
	Addr netip.Addr
}

// announcements decodes the announcements among sent (ARP Announcements
// and unsolicited Neighbor Advertisements, checking each), with their times
// relative to start.
func announcements(t *testing.T, start time.Time, sent []sentFrame) []announcement {
	t.Helper()
	var out []announcement
	for _, s := range sent {
		f := s.frame
		var a netip.Addr
		switch {
		case len(f) == arpFrameLen:
			a = netip.AddrFrom4([4]byte(f[etherHdrLen+14:]))
			want := make([]byte, arpFrameLen)
			announceARP(testSelf(), a, want)
			if !slices.Equal(f, want) {
				t.Errorf("ARP frame %x is not an announcement of %s", f, a)
			}
		case len(f) == naFrameLen:
			a = netip.AddrFrom16([16]byte(f[icmpOff+8:]))
			checkNA(t, f, allNodesMAC, ourLL, netip.MustParseAddr("ff02::1"), a, naFlagOverride)
		default:
			t.Errorf("unexpected frame %x", f)
			continue
		}
		out = append(out, announcement{s.at.Sub(start), a})
	}
	return out
}

func TestAnnouncementBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{AnnounceCount: 3, AnnounceInterval: 100 * time.Millisecond, ReannounceInterval: -1})
		// Set before Run: announced when Run starts.
		f.setAddrs(t, ownedIP)
		f.run(t)
		time.Sleep(time.Second)
		synctest.Wait()
		ms := time.Millisecond
		want := []announcement{{0, ownedIP}, {100 * ms, ownedIP}, {200 * ms, ownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("announcements (-want +got):\n%s", diff)
		}

		// Re-setting an owned address announces nothing; a new one gets
		// its own burst, IPv6 too.
		at := time.Since(start)
		f.setAddrs(t, ownedIP, unownedIP, ownedIP6)
		f.setAddrs(t, ownedIP6, ownedIP, unownedIP)
		time.Sleep(50 * ms)
		f.setAddrs(t, ownedIP6, ownedIP, unownedIP, unowned6)
		time.Sleep(time.Second)
		synctest.Wait()
		want = []announcement{{at, unownedIP}, {at + 100*ms, unownedIP}, {at + 200*ms, unownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv4 announcements (-want +got):\n%s", diff)
		}
		want = []announcement{
			{at, ownedIP6},
			{at + 50*ms, unowned6},
			{at + 100*ms, ownedIP6},
			{at + 150*ms, unowned6},
			{at + 200*ms, ownedIP6},
			{at + 250*ms, unowned6},
		}
		if diff := cmp.Diff(want, announcements(t, start, f.ndp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv6 announcements (-want +got):\n%s", diff)
		}

		// Removed mid-burst: no more announcements for it; re-added: a new
		// burst.
		at = time.Since(start)
		f.setAddrs(t)
		f.setAddrs(t, ownedIP)
		time.Sleep(150 * ms)
		f.setAddrs(t)
		time.Sleep(time.Second)
		synctest.Wait()
		want = []announcement{{at, ownedIP}, {at + 100*ms, ownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("announcements of an address removed mid-burst (-want +got):\n%s", diff)
		}
		if got, want := f.Stats().ARP.Announcements, uint64(8); got != want {
			t.Errorf("Stats().ARP.Announcements = %d, want %d", got, want)
		}
	})
}

func TestReannounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{AnnounceCount: 1, ReannounceInterval: 10 * time.Second})
		f.run(t)
		f.setAddrs(t, ownedIP, ownedIP6)
		time.Sleep(5 * time.Second)
		f.setAddrs(t, ownedIP, ownedIP6, unownedIP)
		time.Sleep(20*time.Second + time.Millisecond)
		synctest.Wait()
		s := time.Second
		want := []announcement{
			{0, ownedIP}, {5 * s, unownedIP},
			{10 * s, ownedIP}, {10 * s, unownedIP},
			{20 * s, ownedIP}, {20 * s, unownedIP},
		}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv4 announcements (-want +got):\n%s", diff)
		}
		want = []announcement{{0, ownedIP6}, {10 * s, ownedIP6}, {20 * s, ownedIP6}}
		if diff := cmp.Diff(want, announcements(t, start, f.ndp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv6 announcements (-want +got):\n%s", diff)
		}
	})
}

// TestAnnounce: Announce starts a new burst for the owned addresses it
// names, and ignores the others.
func TestAnnounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{AnnounceCount: 2, AnnounceInterval: 100 * time.Millisecond, ReannounceInterval: -1})
		f.run(t)
		f.setAddrs(t, ownedIP, ownedIP6)
		time.Sleep(time.Second)
		synctest.Wait()
		f.arp.takeSent()
		f.ndp.takeSent()
		f.Announce([]netip.Addr{ownedIP, unownedIP, netip.AddrFrom16(ownedIP.As16())})
		time.Sleep(time.Second)
		synctest.Wait()
		s := time.Second
		want := []announcement{{s, ownedIP}, {s + 100*time.Millisecond, ownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv4 announcements (-want +got):\n%s", diff)
		}
		if n := len(f.ndp.takeSent()); n != 0 {
			t.Errorf("%d IPv6 announcements, want none: Announce did not name it", n)
		}
	})
}

// TestQuiet: after Quiet, neither a burst in progress, nor a new one, nor
// the periodic re-announcement sends anything.
func TestQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{AnnounceCount: 3, AnnounceInterval: 100 * time.Millisecond, ReannounceInterval: 10 * time.Second})
		f.run(t)
		f.setAddrs(t, ownedIP)
		time.Sleep(150 * time.Millisecond)
		f.Quiet()
		f.setAddrs(t, ownedIP, ownedIP6)
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []announcement{{0, ownedIP}, {100 * time.Millisecond, ownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("IPv4 announcements (-want +got):\n%s", diff)
		}
		if n := len(f.ndp.takeSent()); n != 0 {
			t.Errorf("%d IPv6 announcements after Quiet, want none", n)
		}
	})
}

func TestAnnouncementsDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Options{AnnounceCount: -1, ReannounceInterval: -1})
		f.run(t)
		f.setAddrs(t, ownedIP, ownedIP6)
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(f.arp.takeSent()) + len(f.ndp.takeSent()); n != 0 {
			t.Errorf("%d announcements sent, want none", n)
		}
	})
}

func TestDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{})
		f.run(t)
		f.setAddrs(t, ownedIP)
		time.Sleep(DefaultReannounceInterval + time.Millisecond)
		synctest.Wait()
		var want []announcement
		for i := range DefaultAnnounceCount {
			want = append(want, announcement{time.Duration(i) * DefaultAnnounceInterval, ownedIP})
		}
		want = append(want, announcement{DefaultReannounceInterval, ownedIP})
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("announcements (-want +got):\n%s", diff)
		}
	})
}

func TestSolicitedNodeGroups(t *testing.T) {
	f := newFake(t, Options{})
	defer f.Close()
	// ::200 and 2001:db8:2::200 share a solicited-node group.
	other := netip.MustParseAddr("2001:db8:2::200")
	f.setAddrs(t, ownedIP, ownedIP6, other, unowned6)
	want := []string{"33:33:ff:00:02:00", "33:33:ff:00:02:01"}
	if diff := cmp.Diff(want, f.ndp.members()); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	f.setAddrs(t, ownedIP6)
	if diff := cmp.Diff(want[:1], f.ndp.members()); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	f.setAddrs(t)
	if got := f.ndp.members(); len(got) != 0 {
		t.Errorf("groups %v after the last IPv6 address left, want none", got)
	}

	// A failed join is reported, the set is in effect anyway, and the
	// next SetAddrs tries again.
	f.ndp.fail = errors.New("no room")
	if err := f.SetAddrs([]netip.Addr{ownedIP6}); err == nil {
		t.Errorf("SetAddrs hid a failed join")
	}
	if got := f.Addrs(); !slices.Equal(got, []netip.Addr{ownedIP6}) {
		t.Errorf("Addrs() = %v after a failed join, want the new set", got)
	}
	f.ndp.fail = nil
	f.setAddrs(t, ownedIP6)
	if diff := cmp.Diff(want[:1], f.ndp.members()); diff != "" {
		t.Errorf("groups after retry (-want +got):\n%s", diff)
	}
}

func TestSetAddrs(t *testing.T) {
	f := newFake(t, Options{})
	defer f.Close()
	f.setAddrs(t, ownedIP6, ownedIP, netip.AddrFrom16(unownedIP.As16()), ownedIP)
	if diff := cmp.Diff([]netip.Addr{ownedIP, unownedIP, ownedIP6}, f.Addrs(), equateAddrs); diff != "" {
		t.Errorf("Addrs() (-want +got):\n%s", diff)
	}
	for _, bad := range []netip.Addr{
		{},
		netip.IPv4Unspecified(),
		netip.IPv6Unspecified(),
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("::1"),
		netip.MustParseAddr("224.0.0.1"),
		netip.MustParseAddr("ff02::1"),
		netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("fe80::1%eth0"),
	} {
		err := f.SetAddrs([]netip.Addr{ownedIP, bad})
		if !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("SetAddrs with %q: error %v, want ErrInvalidAddr", bad, err)
		}
	}
	if got := f.Addrs(); len(got) != 3 {
		t.Errorf("a failed SetAddrs changed the set to %v", got)
	}

	v4only, err := NewWithConns(Conns{HardwareAddr: mac(ourMAC), ARP: newFrameConn()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v4only.Close()
	if err := v4only.SetAddrs([]netip.Addr{ownedIP, ownedIP6}); !errors.Is(err, ErrFamily) {
		t.Errorf("IPv6 address without an NDP socket: error %v, want ErrFamily", err)
	}
}

func TestNewWithConnsErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conns Conns
		want  error
	}{
		{"no sockets", Conns{HardwareAddr: mac(ourMAC)}, ErrNoConns},
		{"no MAC", Conns{ARP: nopConn{}}, ErrNotEthernet},
		{"InfiniBand MAC", Conns{HardwareAddr: make(net.HardwareAddr, 20), ARP: nopConn{}}, ErrNotEthernet},
		{"IPv4 source for IPv6", Conns{HardwareAddr: mac(ourMAC), NDP: nopConn{}, IPv6Source: askerIP}, ErrInvalidAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewWithConns(tc.conns, Options{}); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := New(&net.Interface{Name: "lo"}, Options{}); !errors.Is(err, ErrNotEthernet) {
		t.Errorf("New on an interface without MAC: error %v, want ErrNotEthernet", err)
	}
}

func TestRunLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Close during Run stops it with ErrClosed.
		f := newFake(t, Options{})
		done := make(chan error, 1)
		go func() { done <- f.Run(t.Context()) }()
		synctest.Wait()
		if err := f.Run(t.Context()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: %v, want ErrRunning", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close: %v, want ErrClosed", err)
		}
		if err := f.SetAddrs([]netip.Addr{ownedIP}); !errors.Is(err, ErrClosed) {
			t.Errorf("SetAddrs after Close: %v, want ErrClosed", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}

		// Run after Close.
		g := newFake(t, Options{})
		g.Close()
		if err := g.Run(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close: %v, want ErrClosed", err)
		}

		// A cancelled ctx returns nil and closes the sockets.
		h := newFake(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		go func() { done <- h.Run(ctx) }()
		h.setAddrs(t, ownedIP)
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if !h.arp.isClosed() || !h.ndp.isClosed() {
			t.Errorf("sockets left open")
		}
	})
}

// TestTransientReadErrors: a Responder carries on after read errors such as
// ENETDOWN during a link flap, without spinning.
func TestTransientReadErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := &flakyConn{frameConn: newFrameConn(), fails: 5}
		r, err := NewWithConns(Conns{HardwareAddr: mac(ourMAC), ARP: conn}, Options{AnnounceCount: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		if err := r.SetAddrs([]netip.Addr{ownedIP}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.deliver(arpRequest(ownedIP))
		// Backing off 1+2+4+8+16 ms, not spinning.
		if waited := time.Since(start); waited != 31*time.Millisecond {
			t.Errorf("read again after %v of errors, want 31ms", waited)
		}
		synctest.Wait()
		if n := len(conn.takeSent()); n != 1 {
			t.Errorf("%d replies after the errors, want 1", n)
		}
		if got := r.Stats().ARP.Errors; got != 5 {
			t.Errorf("Stats().ARP.Errors = %d, want 5", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
