package l2

import (
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The responder's side of proxy answers (SetProxied); the frames
// themselves are in TestAnswerProxied.

func (f *fakeResponder) setProxied(t *testing.T, proxied map[netip.Addr][macLen]byte) {
	t.Helper()
	m := map[netip.Addr]net.HardwareAddr{}
	for a, hw := range proxied {
		m[a] = mac(hw)
	}
	if err := f.SetProxied(m); err != nil {
		t.Fatalf("SetProxied(%v): %v", m, err)
	}
}

// reply is what one sent ARP reply or Neighbor Advertisement says: the
// address and the MAC named for it.
type reply struct {
	Addr netip.Addr
	MAC  string
}

// replies decodes the ARP replies and Neighbor Advertisements among sent,
// after checking that each is from our Ethernet address.
func replies(t *testing.T, sent []sentFrame) []reply {
	t.Helper()
	var out []reply
	for _, s := range sent {
		f := s.frame
		if got := [macLen]byte(f[6:12]); got != ourMAC {
			t.Errorf("frame from %s, want from ours", mac(got))
		}
		switch len(f) {
		case arpFrameLen:
			out = append(out, reply{netip.AddrFrom4([4]byte(f[etherHdrLen+14:])), mac([macLen]byte(f[etherHdrLen+8:])).String()})
		case naFrameLen:
			out = append(out, reply{netip.AddrFrom16([16]byte(f[icmpOff+8:])), mac([macLen]byte(f[icmpOff+26:])).String()})
		default:
			t.Errorf("unexpected frame %x", f)
		}
	}
	return out
}

// TestResponderAnswersProxied: a Responder answers for proxied addresses
// with the peer's MAC, for owned ones with its own even if proxied too,
// and for a proxied address it stops owning with the peer's again;
// replies are counted as replies.
func TestResponderAnswersProxied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Options{AnnounceCount: -1, ReannounceInterval: -1})
		f.run(t)
		f.setAddrs(t, ownedIP, ownedIP6)
		f.setProxied(t, peerProxies)
		ask := func(addrs ...netip.Addr) []reply {
			t.Helper()
			for _, a := range addrs {
				if a.Is4() {
					f.arp.deliver(arpRequest(a))
				} else {
					f.ndp.deliver(solicitation(a))
				}
			}
			synctest.Wait()
			return replies(t, append(f.arp.takeSent(), f.ndp.takeSent()...))
		}
		all := []netip.Addr{ownedIP, proxiedIP, unownedIP, ownedIP6, proxiedIP6, unowned6}
		ours, peer := mac(ourMAC).String(), mac(peerMAC).String()

		want := []reply{{ownedIP, ours}, {proxiedIP, peer}, {ownedIP6, ours}, {proxiedIP6, peer}}
		if diff := cmp.Diff(want, ask(all...), equateAddrs); diff != "" {
			t.Errorf("replies (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]netip.Addr{ownedIP, ownedIP6}, f.Addrs(), equateAddrs); diff != "" {
			t.Errorf("Addrs() (-want +got):\n%s", diff)
		}

		// No longer owned: proxied again.
		f.setAddrs(t, ownedIP6)
		want = []reply{{ownedIP, peer}, {proxiedIP, peer}, {ownedIP6, ours}, {proxiedIP6, peer}}
		if diff := cmp.Diff(want, ask(all...), equateAddrs); diff != "" {
			t.Errorf("replies after SetAddrs (-want +got):\n%s", diff)
		}

		// No longer proxied: unanswered, the owned ones still answered.
		f.setProxied(t, nil)
		want = []reply{{ownedIP6, ours}}
		if diff := cmp.Diff(want, ask(all...), equateAddrs); diff != "" {
			t.Errorf("replies after SetProxied(nil) (-want +got):\n%s", diff)
		}

		want2 := Stats{
			ARP: Counters{Requests: 9, Replies: 4},
			NDP: Counters{Requests: 9, Replies: 5},
		}
		if diff := cmp.Diff(want2, f.Stats()); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})
}

// TestProxiedNotAnnounced: proxied addresses get no announcements, neither
// when set nor periodically nor through Announce; an address that goes
// from proxied to owned is newly owned and gets its burst, and nothing
// once it is merely proxied again.
func TestProxiedNotAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFake(t, Options{AnnounceCount: 2, AnnounceInterval: 100 * time.Millisecond, ReannounceInterval: 10 * time.Second})
		f.setProxied(t, peerProxies) // before Run
		f.run(t)
		time.Sleep(5 * time.Second)
		f.setProxied(t, map[netip.Addr][macLen]byte{proxiedIP: otherMAC, proxiedIP6: otherMAC, ownedIP: peerMAC})
		f.Announce([]netip.Addr{proxiedIP, proxiedIP6, ownedIP})
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if sent := append(f.arp.takeSent(), f.ndp.takeSent()...); len(sent) != 0 {
			t.Fatalf("%d frames sent for proxied addresses only, want none", len(sent))
		}

		at := time.Since(start)
		f.setAddrs(t, ownedIP)              // proxied until now
		time.Sleep(5500 * time.Millisecond) // past the next periodic announcement, at 30 s
		f.setAddrs(t)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		ms := time.Millisecond
		want := []announcement{{at, ownedIP}, {at + 100*ms, ownedIP}, {30 * time.Second, ownedIP}}
		if diff := cmp.Diff(want, announcements(t, start, f.arp.takeSent()), equateAddrs); diff != "" {
			t.Errorf("announcements (-want +got):\n%s", diff)
		}
		if n := len(f.ndp.takeSent()); n != 0 {
			t.Errorf("%d IPv6 frames sent for proxied addresses, want none", n)
		}
		if got := f.Stats(); got.ARP.Announcements != 3 || got.NDP.Announcements != 0 {
			t.Errorf("Stats() = %+v, want 3 ARP announcements, no NDP ones", got)
		}
	})
}

// TestSetProxied: SetProxied validates like SetAddrs and checks the MACs,
// naming each bad address; a failed call changes nothing; Proxied returns
// a copy of what was set.
func TestSetProxied(t *testing.T) {
	f := newFake(t, Options{})
	defer f.Close()
	f.setAddrs(t, ownedIP)
	mapped := netip.AddrFrom16(proxiedIP.As16())
	good := map[netip.Addr]net.HardwareAddr{mapped: mac(peerMAC), proxiedIP6: mac(otherMAC), ownedIP: mac(peerMAC)}
	if err := f.SetProxied(good); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]net.HardwareAddr{proxiedIP: mac(peerMAC), proxiedIP6: mac(otherMAC), ownedIP: mac(peerMAC)}
	got := f.Proxied()
	if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
		t.Fatalf("Proxied() (-want +got):\n%s", diff)
	}
	got[proxiedIP][0] = 0xee
	delete(got, proxiedIP6)
	if diff := cmp.Diff(want, f.Proxied(), equateAddrs); diff != "" {
		t.Errorf("changing what Proxied() returned changed the set (-want +got):\n%s", diff)
	}
	groups := f.ndp.members()

	for _, tc := range []struct {
		name string
		addr netip.Addr
		hw   net.HardwareAddr
		want error
	}{
		{"nil MAC", proxiedIP, nil, ErrInvalidMAC},
		{"5-byte MAC", proxiedIP, net.HardwareAddr{2, 0, 0, 0, 0}, ErrInvalidMAC},
		{"InfiniBand MAC", proxiedIP6, make(net.HardwareAddr, 20), ErrInvalidMAC},
		{"zero MAC", proxiedIP, mac(zeroMAC), ErrInvalidMAC},
		{"broadcast MAC", proxiedIP, mac(broadcastMAC), ErrInvalidMAC},
		{"multicast MAC", proxiedIP6, mac(allNodesMAC), ErrInvalidMAC},
		{"unspecified address", netip.IPv4Unspecified(), mac(peerMAC), ErrInvalidAddr},
		{"multicast address", netip.MustParseAddr("ff02::1"), mac(peerMAC), ErrInvalidAddr},
		{"zoned address", netip.MustParseAddr("fe80::1%eth0"), mac(peerMAC), ErrInvalidAddr},
		{"loopback", netip.MustParseAddr("127.0.0.1"), mac(peerMAC), ErrInvalidAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := maps.Clone(good)
			bad[tc.addr] = tc.hw
			err := f.SetProxied(bad)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SetProxied with %s at %q: error %v, want %v", tc.addr, tc.hw, err, tc.want)
			}
			if name := tc.addr.String(); tc.addr.IsValid() && !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
			if diff := cmp.Diff(want, f.Proxied(), equateAddrs); diff != "" {
				t.Errorf("a failed SetProxied changed the set (-want +got):\n%s", diff)
			}
			if !slices.Equal(f.Addrs(), []netip.Addr{ownedIP}) || !slices.Equal(f.ndp.members(), groups) {
				t.Errorf("a failed SetProxied changed the owned set to %v or the groups to %v", f.Addrs(), f.ndp.members())
			}
		})
	}

	// One address twice, plain and IPv4-mapped, at two MACs.
	err := f.SetProxied(map[netip.Addr]net.HardwareAddr{proxiedIP: mac(peerMAC), mapped: mac(otherMAC)})
	if !errors.Is(err, ErrInvalidMAC) || !strings.Contains(err.Error(), proxiedIP.String()) {
		t.Errorf("SetProxied with %s at two MACs: error %v, want ErrInvalidMAC naming it", proxiedIP, err)
	}
	// At the same MAC twice is fine.
	if err := f.SetProxied(map[netip.Addr]net.HardwareAddr{proxiedIP: mac(peerMAC), mapped: mac(peerMAC)}); err != nil {
		t.Errorf("SetProxied with %s twice at one MAC: %v", proxiedIP, err)
	}

	v4only, err := NewWithConns(Conns{HardwareAddr: mac(ourMAC), ARP: newFrameConn()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v4only.Close()
	if err := v4only.SetProxied(map[netip.Addr]net.HardwareAddr{proxiedIP6: mac(peerMAC)}); !errors.Is(err, ErrFamily) {
		t.Errorf("IPv6 address without an NDP socket: error %v, want ErrFamily", err)
	}
	if err := v4only.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v4only.SetProxied(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetProxied after Close: error %v, want ErrClosed", err)
	}
}

// TestProxiedSolicitedNodeGroups: the Responder is in the solicited-node
// group of every IPv6 address it answers for, owned or proxied, and leaves
// a group once neither set needs it.
func TestProxiedSolicitedNodeGroups(t *testing.T) {
	f := newFake(t, Options{})
	defer f.Close()
	// ownedIP6 (::200) and shared share a group; proxiedIP6 is ::210.
	shared := netip.MustParseAddr("2001:db8:2::200")
	g200, g210 := "33:33:ff:00:02:00", "33:33:ff:00:02:10"
	for _, step := range []struct {
		name string
		do   func()
		want []string
	}{
		{"owned", func() { f.setAddrs(t, ownedIP6) }, []string{g200}},
		{"proxied too", func() {
			f.setProxied(t, map[netip.Addr][macLen]byte{proxiedIP6: peerMAC, shared: peerMAC, proxiedIP: peerMAC})
		}, []string{g200, g210}},
		{"owned gone, proxied share the group", func() { f.setAddrs(t) }, []string{g200, g210}},
		{"proxied ::200 gone", func() { f.setProxied(t, map[netip.Addr][macLen]byte{proxiedIP6: peerMAC}) }, []string{g210}},
		{"owned ::210 as well", func() { f.setAddrs(t, proxiedIP6) }, []string{g210}},
		{"no proxied", func() { f.setProxied(t, nil) }, []string{g210}},
		{"nothing", func() { f.setAddrs(t) }, nil},
	} {
		step.do()
		if diff := cmp.Diff(step.want, f.ndp.members()); diff != "" {
			t.Errorf("%s: groups (-want +got):\n%s", step.name, diff)
		}
	}
}
