package labnet

import (
	"net/netip"
	"testing"
	"time"
)

// TestProbeUDP measures an outage the way failover tests will: the client
// probes a service IP every 10 ms while the node holding it is cut off for
// a while, and the longest gap reflects the cut.
func TestProbeUDP(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 2})
	ctx := t.Context()
	node1 := l.Node(1)
	if err := node1.AddServiceIP(svcIP); err != nil {
		t.Fatal(err)
	}
	if _, err := node1.ServeUDPEcho(ctx, svcIP, 7); err != nil {
		t.Fatal(err)
	}
	p, err := l.Client().ProbeUDP(ctx, netip.AddrPortFrom(svcIP, 7), 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	const cut = 400 * time.Millisecond
	t0 := time.Now()
	if err := node1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cut)
	if err := node1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	// Replies node-1 tried to send as its link went down may leave it
	// resolving the client, retried a second later (as after a real cable
	// pull), so give recovery that long.
	time.Sleep(1500 * time.Millisecond)
	r := p.Stop()
	t.Logf("sent %d, received %d, longest gap %v, by node %v; link cut for %v", r.Sent, r.Received, r.LongestGap, r.ByNode, up.Sub(t0))

	if r.Sent < 150 {
		t.Errorf("sent %d probes in 2.1s, want about 210", r.Sent)
	}
	if r.Received == 0 || r.Received >= r.Sent {
		t.Errorf("received %d of %d; want some lost during the cut, not all", r.Received, r.Sent)
	}
	if r.ByNode["node-1"] != len(r.Replies) {
		t.Errorf("answers by node %v, want all from node-1", r.ByNode)
	}
	if last := r.Replies[len(r.Replies)-1].Received; !last.After(up) {
		t.Errorf("no answer after the link came back")
	}
	if max := up.Sub(t0) + 1200*time.Millisecond; r.LongestGap < cut-20*time.Millisecond || r.LongestGap > max {
		t.Errorf("longest gap %v, want from the %v cut to %v", r.LongestGap, cut, max)
	}
	if again := p.Stop(); again.Sent != r.Sent {
		t.Errorf("second Stop returned a different result")
	}
}
