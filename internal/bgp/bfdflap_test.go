package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// TestBFDDownWhileSessionDown has BIRD close one node's session and stop its
// BFD session for a few seconds, as an operator disabling the neighbour or
// a router restarting its BGP would. GoBGP's BFD then fails while the BGP
// session is already down, and GoBGP 4.8.0 queues a Cease for the session
// that only the next established session reads: that session is reset the
// moment it comes up, its BFD fails again, and so on for ever (see
// Speaker.clearQueuedResets). The test checks that the session comes back
// and stays up, with its route in BIRD, for several BFD detection times and
// reconnection times, and that the other nodes' sessions are not touched.
func TestBFDDownWhileSessionDown(t *testing.T) {
	t.Parallel()
	const hold = 9 * time.Second
	bl := newBFDLab(t, "bird", hold)
	bird := bl.daemon.(*labnet.BIRD)
	bl.waitEstablished(t, 20*time.Second)
	eventually(t, 10*time.Second, "BFD up", func() error {
		for _, n := range bl.nodes {
			s, err := n.peerStatus("router")
			if err != nil {
				return err
			}
			if s.BFD != "Up" || s.State != StateEstablished {
				return fmt.Errorf("%s: %+v", n.host.Name, s)
			}
		}
		return nil
	})
	all := nodeAddrs(bl.nodes, false)
	bl.waitNextHops(t, 10*time.Second, svcAll, all...)
	before := map[string]PeerStatus{}
	for _, n := range bl.nodes {
		s, err := n.peerStatus("router")
		if err != nil {
			t.Fatal(err)
		}
		before[n.host.Name] = s
	}

	// BIRD closes node-1's session (a Cease) and ends its BFD session;
	// GoBGP's BFD fails a detection time later, with BGP down.
	n1 := bl.nodes[0]
	proto := birdProto(n1.host.IPv4)
	if _, err := bird.Command(t.Context(), "disable", proto); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	eventually(t, 5*time.Second, "node-1's BFD down", func() error {
		s, err := n1.peerStatus("router")
		if err == nil && (s.State == StateEstablished || s.BFD == "Up") {
			err = fmt.Errorf("%+v", s)
		}
		return err
	})
	time.Sleep(3 * time.Second)
	if _, err := bird.Command(t.Context(), "enable", proto); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	took := eventually(t, 20*time.Second, "node-1 re-established", func() error {
		s, err := n1.peerStatus("router")
		if err == nil && (s.State != StateEstablished || s.BFD != "Up") {
			err = fmt.Errorf("%+v", s)
		}
		return err
	})
	t.Logf("node-1 established, BFD up, %v after BIRD enabled it", took.Round(time.Millisecond))
	bl.waitNextHops(t, 5*time.Second, svcAll, all...)

	// Stable: longer than a few BFD detection times (0.9 s), GoBGP's
	// reconnection (idle hold 2 s, connect retry 2 s here) and a keepalive.
	up, err := n1.peerStatus("router")
	if err != nil {
		t.Fatal(err)
	}
	const stable = 12 * time.Second
	for deadline := time.Now().Add(stable); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		s, err := n1.peerStatus("router")
		if err != nil {
			t.Fatal(err)
		}
		if s.State != StateEstablished || !s.Since.Equal(up.Since) {
			t.Fatalf("node-1's session went down again %v after BIRD enabled it: %+v", time.Since(start).Round(time.Millisecond), s)
		}
	}
	ns, err := bird.Neighbors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range ns {
		if nb.State != "Established" {
			t.Errorf("BIRD: session with %s is %s (%s)", nb.Address, nb.State, nb.Info)
		}
	}
	r, err := bl.route(t, svcAll)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.NextHops(); !slices.Equal(got, all) {
		t.Errorf("BIRD routes %s via %v, want %v", svcAll, got, all)
	}
	for _, n := range bl.nodes[1:] {
		s, err := n.peerStatus("router")
		if err != nil {
			t.Fatal(err)
		}
		b := before[n.host.Name]
		if s.State != StateEstablished || !s.Since.Equal(b.Since) || s.Drops != b.Drops {
			t.Errorf("%s was reset: before %+v, after %+v", n.host.Name, b, s)
		}
	}
	// The drop counts of replaced GoBGP peers carry over. GoBGP counts a
	// drop only within 30 s of the session coming up (its "flops").
	if b := before[n1.host.Name]; disabled.Sub(b.Since) < 25*time.Second {
		if s, err := n1.peerStatus("router"); err == nil && s.Drops <= b.Drops {
			t.Errorf("node-1's drop count %d did not grow from %d", s.Drops, b.Drops)
		}
	}
}

// birdProto is the name of the lab's BIRD protocol for neighbour a.
func birdProto(a netip.Addr) string {
	return "n_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}
