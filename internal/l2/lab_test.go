package l2

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Service addresses for the lab tests, inside the lab's LAN prefixes.
var (
	vip4a = netip.MustParseAddr("198.51.100.200")
	vip4b = netip.MustParseAddr("198.51.100.201")
	vip4c = netip.MustParseAddr("198.51.100.202")
	vip6a = netip.MustParseAddr("2001:db8:1::200")
	vip6b = netip.MustParseAddr("2001:db8:1::201")
)

// askTimeout is how long the client waits for answers to one request: far
// more than an answer takes, so that "no answer" means none.
const askTimeout = 300 * time.Millisecond

// startResponder opens a Responder on h's LAN interface (inside h's
// namespace, where its sockets then stay), gives it addrs and runs it until
// the test ends.
func startResponder(t testing.TB, h *labnet.Host, opts Options, addrs ...netip.Addr) *Responder {
	t.Helper()
	var r *Responder
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		r, err = New(ifi, opts)
		return err
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !bytes.Equal(r.HardwareAddr(), h.MAC) {
		t.Fatalf("responder on %s has MAC %s, want %s", h, r.HardwareAddr(), h.MAC)
	}
	if err := r.SetAddrs(addrs); err != nil {
		t.Fatalf("SetAddrs: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run on %s: %v", h, err)
		}
	})
	return r
}

// ask has the client resolve addr with ARP or NDP and returns every MAC
// that answered.
func ask(t testing.TB, client *labnet.Host, addr netip.Addr) []net.HardwareAddr {
	t.Helper()
	var (
		macs []net.HardwareAddr
		err  error
	)
	if addr.Is4() {
		macs, err = client.ARPRequest(t.Context(), "", addr, askTimeout)
	} else {
		macs, err = client.NDPSolicit(t.Context(), "", addr, askTimeout)
	}
	if err != nil {
		t.Fatalf("resolve %s: %v", addr, err)
	}
	return macs
}

// wantAnswer checks that exactly the given hosts answer for addr (none if
// no host is given).
func wantAnswer(t testing.TB, client *labnet.Host, addr netip.Addr, hosts ...*labnet.Host) {
	t.Helper()
	got := ask(t, client, addr)
	var want []string
	for _, h := range hosts {
		want = append(want, h.MAC.String())
	}
	var gotS []string
	for _, m := range got {
		gotS = append(gotS, m.String())
	}
	if len(gotS) != len(want) || (len(want) > 0 && !equalStrings(gotS, want)) {
		t.Errorf("answers for %s: got %v, want %v", addr, gotS, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestLabAnswersOnlyOwned(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr netip.Addr
	}{{"ARP", vip4a}, {"NDP", vip6a}} {
		t.Run(tc.name, func(t *testing.T) {
			l := labnet.NewForTest(t, labnet.Options{Nodes: 2})
			node1, client := l.Node(1), l.Client()
			r := startResponder(t, node1, Options{}, tc.addr)

			wantAnswer(t, client, tc.addr, node1)
			group := "33:33:ff:00:02:00" // the solicited-node group of ::200
			if tc.addr.Is6() && !inGroup(t, node1, group) {
				t.Errorf("%s's eth0 is not in %s", node1, group)
			}
			if err := r.SetAddrs(nil); err != nil {
				t.Fatal(err)
			}
			wantAnswer(t, client, tc.addr)
			if tc.addr.Is6() && inGroup(t, node1, group) {
				t.Errorf("%s's eth0 is still in %s", node1, group)
			}
			if err := r.SetAddrs([]netip.Addr{tc.addr}); err != nil {
				t.Fatal(err)
			}
			wantAnswer(t, client, tc.addr, node1)

			st := r.Stats()
			c := st.ARP
			if tc.addr.Is6() {
				c = st.NDP
			}
			if c.Replies != 2 || c.Requests < 3 || c.Announcements == 0 {
				t.Errorf("stats %+v: want 2 replies, >= 3 requests, some announcements", c)
			}
		})
	}
}

// inGroup reports whether h's LAN interface accepts the Ethernet multicast
// group mac ("ip maddr").
func inGroup(t testing.TB, h *labnet.Host, mac string) bool {
	t.Helper()
	out, err := h.Run(t.Context(), "ip", "maddr", "show", "dev", h.IfName)
	if err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	return bytes.Contains(out, []byte("link  "+mac+"\n"))
}

func TestLabTwoResponders(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 2})
	node1, node2, client := l.Node(1), l.Node(2), l.Client()
	startResponder(t, node1, Options{}, vip4a, vip6a)
	startResponder(t, node2, Options{}, vip4b, vip6b)

	for _, tc := range []struct {
		addr netip.Addr
		want []*labnet.Host
	}{
		{vip4a, []*labnet.Host{node1}},
		{vip4b, []*labnet.Host{node2}},
		{vip4c, nil},
		{vip6a, []*labnet.Host{node1}},
		{vip6b, []*labnet.Host{node2}},
		// The nodes' own addresses are the kernel's business.
		{node1.IPv4, []*labnet.Host{node1}},
		{node2.IPv6, []*labnet.Host{node2}},
	} {
		wantAnswer(t, client, tc.addr, tc.want...)
	}
}

// TestLabAnnouncementMovesClient is a failover seen from the client: its
// neighbor entry for a service IP moves from node-1's MAC to node-2's on
// node-2's announcements alone, with no request from the client.
func TestLabAnnouncementMovesClient(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 2, StrictARP: true})
	node1, node2, client := l.Node(1), l.Node(2), l.Client()
	for _, vip := range []netip.Addr{vip4a, vip6a} {
		for _, n := range []*labnet.Host{node1, node2} {
			// As kube-proxy in IPVS mode would, so the client's pings
			// get answers; strictARP keeps the kernel from answering ARP.
			if err := n.AddServiceIP(vip); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range []*labnet.Host{node1, node2} {
		waitLocalRoute(t, n, vip6a)
	}
	// No periodic announcements, so that only the burst can move the client.
	opts := Options{ReannounceInterval: -1}
	r1 := startResponder(t, node1, opts, vip4a, vip6a)
	r2 := startResponder(t, node2, opts)

	for _, vip := range []netip.Addr{vip4a, vip6a} {
		if _, err := client.Ping(t.Context(), vip); err != nil {
			t.Fatalf("ping %s: %v", vip, err)
		}
		if mac := neighbor(t, client, vip); !bytes.Equal(mac, node1.MAC) {
			t.Fatalf("client resolves %s to %s, want node-1's %s", vip, mac, node1.MAC)
		}
	}

	if err := r1.SetAddrs(nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r2.SetAddrs([]netip.Addr{vip4a, vip6a}); err != nil {
		t.Fatal(err)
	}
	for _, vip := range []netip.Addr{vip4a, vip6a} {
		for {
			mac := neighbor(t, client, vip)
			if bytes.Equal(mac, node2.MAC) {
				t.Logf("client moved %s to node-2 after %v", vip, time.Since(start))
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("client still resolves %s to %s, want node-2's %s", vip, mac, node2.MAC)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := r2.Stats(); got.ARP.Announcements == 0 || got.NDP.Announcements == 0 {
		t.Errorf("node-2 stats %+v: want announcements of both families", got)
	}
	for _, vip := range []netip.Addr{vip4a, vip6a} {
		if _, err := client.Ping(t.Context(), vip); err != nil {
			t.Errorf("ping %s after failover: %v", vip, err)
		}
	}
}

// waitLocalRoute waits until h's kernel treats addr as its own. For an
// IPv6 address that is not at once: even without duplicate address
// detection the kernel installs the local route from a work queue, and a
// packet that arrives before then counts as Ip6InNoRoutes.
func waitLocalRoute(t testing.TB, h *labnet.Host, addr netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := h.Run(t.Context(), "ip", "-6", "route", "show", "table", "local", addr.String())
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if len(bytes.TrimSpace(out)) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no local route for %s", h, addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func neighbor(t testing.TB, h *labnet.Host, addr netip.Addr) net.HardwareAddr {
	t.Helper()
	mac, err := h.Neighbor(addr)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// TestLabLinkFlap checks that a Responder survives its link going down and
// up, as in a failover test that cuts a node off.
func TestLabLinkFlap(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 1})
	node1, client := l.Node(1), l.Client()
	r := startResponder(t, node1, Options{}, vip4a, vip6a)
	wantAnswer(t, client, vip4a, node1)
	if err := node1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := node1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	wantAnswer(t, client, vip4a, node1)
	wantAnswer(t, client, vip6a, node1)
	t.Logf("stats after the flap: %+v", r.Stats())
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLabStop checks, on real sockets, that Run stops promptly on Close
// and on the end of its ctx although its readers block in read(2) (see
// readTimeout), and that every socket is released either way, and by
// Close without Run.
func TestLabStop(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 1})
	node1, client := l.Node(1), l.Client()
	// withConns: through NewWithConns on packet.Conns, which read through
	// the Go runtime's network poller, rather than New.
	newResponder := func(withConns bool) *Responder {
		var r *Responder
		err := node1.Do(func() error {
			ifi, err := net.InterfaceByName(node1.IfName)
			if err != nil {
				return err
			}
			if !withConns {
				r, err = New(ifi, Options{})
				return err
			}
			arpFilter, err := arpRequestFilter()
			if err != nil {
				return err
			}
			nsFilter, err := solicitationFilter()
			if err != nil {
				return err
			}
			arpConn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: arpFilter})
			if err != nil {
				return err
			}
			ndpConn, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: nsFilter})
			if err != nil {
				arpConn.Close()
				return err
			}
			r, err = NewWithConns(Conns{HardwareAddr: ifi.HardwareAddr, IPv6Source: linkLocal(ifi), ARP: arpConn, NDP: ndpConn}, Options{})
			return err
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if err := r.SetAddrs([]netip.Addr{vip4a, vip6a}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Generous against a loaded machine; a reader notices within
	// readTimeout.
	const prompt = 2 * time.Second

	for _, tc := range []struct {
		name      string
		withConns bool
		stop      func(r *Responder, cancel context.CancelFunc)
		want      error
	}{
		{"Close", false, func(r *Responder, _ context.CancelFunc) { r.Close() }, ErrClosed},
		{"cancel", false, func(_ *Responder, cancel context.CancelFunc) { cancel() }, nil},
		{"ConnsClose", true, func(r *Responder, _ context.CancelFunc) { r.Close() }, ErrClosed},
		{"ConnsCancel", true, func(_ *Responder, cancel context.CancelFunc) { cancel() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			r := newResponder(tc.withConns)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			wantAnswer(t, client, vip4a, node1)
			wantAnswer(t, client, vip6a, node1)
			start := time.Now()
			tc.stop(r, cancel)
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("Run: %v, want %v", err, tc.want)
				}
				t.Logf("Run returned %v after stopping", time.Since(start))
			case <-time.After(prompt):
				t.Fatalf("Run still running %v after stopping", prompt)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d file descriptors open after Run, %d before New", after, before)
			}
		})
	}

	t.Run("CloseWithoutRun", func(t *testing.T) {
		before := openFDs(t)
		r := newResponder(false)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if after := openFDs(t); after != before {
			t.Errorf("%d file descriptors open after Close, %d before New", after, before)
		}
	})
}

// TestLabInterfaceDown checks that a Responder survives its own interface
// going down and up, which fails a pending read with ENETDOWN (packet(7)),
// unlike a cut link (TestLabLinkFlap).
func TestLabInterfaceDown(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 1})
	node1, client := l.Node(1), l.Client()
	r := startResponder(t, node1, Options{}, vip4a)
	wantAnswer(t, client, vip4a, node1)
	for _, state := range []string{"down", "up"} {
		if out, err := node1.Run(t.Context(), "ip", "link", "set", "dev", node1.IfName, state); err != nil {
			t.Fatalf("ip link set %s: %v: %s", state, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ask(t, client, vip4a)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no answer for %s after the interface came back", vip4a)
		}
	}
	wantAnswer(t, client, vip4a, node1)
	if st := r.Stats(); st.ARP.Errors == 0 {
		t.Errorf("stats %+v: want the ENETDOWN counted as an ARP error", st)
	}
}

// TestLabProxyAnswer is a rolling upgrade seen from the client: node-1
// still holds vip4a and vip6a (its kernel takes their traffic) but has no
// responder, as while its speaker restarts, and node-2 answers for them on
// node-1's behalf. The client's kernel resolves both to node-1's MAC from
// node-2's answers alone, and its pings reach node-1.
func TestLabProxyAnswer(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 2, StrictARP: true})
	node1, node2, client := l.Node(1), l.Node(2), l.Client()
	vips := []netip.Addr{vip4a, vip6a}
	for _, vip := range vips {
		// strictARP: node-1's kernel answers no ARP for it, and no kernel
		// answers NDP for an address on lo.
		if err := node1.AddServiceIP(vip); err != nil {
			t.Fatal(err)
		}
	}
	waitLocalRoute(t, node1, vip6a)
	r2 := startResponder(t, node2, Options{})
	proxied := map[netip.Addr]net.HardwareAddr{vip4a: node1.MAC, vip6a: node1.MAC}
	if err := r2.SetProxied(proxied); err != nil {
		t.Fatal(err)
	}
	if !inGroup(t, node2, "33:33:ff:00:02:00") {
		t.Errorf("%s's eth0 is not in the solicited-node group of %s", node2, vip6a)
	}

	for _, vip := range vips {
		// The client's kernel resolves vip for the ping.
		if _, err := client.Ping(t.Context(), vip); err != nil {
			t.Errorf("ping %s: %v", vip, err)
		}
		if mac := neighbor(t, client, vip); !bytes.Equal(mac, node1.MAC) {
			t.Errorf("client resolves %s to %s, want node-1's %s (node-2 is %s)", vip, mac, node1.MAC, node2.MAC)
		}
		// One answer, naming node-1.
		wantAnswer(t, client, vip, node1)
	}

	st := r2.Stats()
	for name, c := range map[string]Counters{"ARP": st.ARP, "NDP": st.NDP} {
		if c.Replies == 0 || c.Announcements != 0 {
			t.Errorf("node-2 %s stats %+v: want replies and no announcements", name, c)
		}
	}
}
