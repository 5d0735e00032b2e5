package bgp

import (
	"fmt"
	"testing"
	"time"
)

// TestBFDStartFRR starts three speakers against FRR with a BFD profile and
// checks that no session flaps as it first comes up. FRR 8.4's bgpd
// registers each BFD session with bfdd again once the BGP session is
// established, and bfdd replaces the session it had, sending a last Down
// on the old one; GoBGP 4.8.0 took that for a failure and reset the BGP
// session a moment after it came up (see Speaker.gateBFD). Each session
// must stay established, unreset, for several BFD detection times and well
// past the speaker's BFD start delay, with BFD up and the routes at the
// router.
func TestBFDStartFRR(t *testing.T) {
	t.Parallel()
	const hold = 9 * time.Second
	bl := newBFDLab(t, "frr", hold)
	took := bl.waitEstablished(t, 20*time.Second)
	t.Logf("sessions established after %v", took.Round(time.Millisecond))
	// A session that flapped before all were up has dropped once.
	first := map[string]PeerStatus{}
	for _, n := range bl.nodes {
		s, err := n.peerStatus("router")
		if err != nil {
			t.Fatal(err)
		}
		if s.Drops != 0 {
			t.Fatalf("%s: session reset as it came up: %+v", n.host.Name, s)
		}
		first[n.host.Name] = s
	}

	// 10 s: many BFD detection times (0.9 s), bfdSettle, GoBGP's idle hold (2 s) and connect retry (2 s here), and
	// three keepalives. A flap shows as a new Since or a higher Drops, or
	// as a session caught down.
	const stable = 10 * time.Second
	bfdUp := time.Duration(-1)
	start := time.Now()
	for time.Since(start) < stable {
		for _, n := range bl.nodes {
			s, err := n.peerStatus("router")
			if err != nil {
				t.Fatal(err)
			}
			f := first[n.host.Name]
			if s.State != StateEstablished || !s.Since.Equal(f.Since) || s.Drops != f.Drops {
				t.Fatalf("%s: session reset %v after all came up: first %+v, now %+v", n.host.Name, time.Since(start).Round(time.Millisecond), f, s)
			}
		}
		if bfdUp < 0 && allBFDUp(bl) == nil {
			bfdUp = time.Since(start)
			t.Logf("BFD up on every session %v after they came up", bfdUp.Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := allBFDUp(bl); err != nil {
		t.Errorf("BFD not up %v after the sessions came up: %v", stable, err)
	}
	bl.waitNextHops(t, 2*time.Second, svcAll, nodeAddrs(bl.nodes, false)...)
	ns, err := bl.daemon.Neighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range ns {
		if nb.State != "Established" {
			t.Errorf("FRR: session with %s is %s (%s)", nb.Address, nb.State, nb.Info)
		}
	}
}

// allBFDUp returns an error unless every node's "router" session has BFD
// up.
func allBFDUp(bl *bgpLab) error {
	for _, n := range bl.nodes {
		s, err := n.peerStatus("router")
		if err != nil {
			return err
		}
		if s.BFD != "Up" {
			return fmt.Errorf("%s: %+v", n.host.Name, s)
		}
	}
	return nil
}
