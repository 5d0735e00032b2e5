package labnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// svcIP is the service IP the tests put on nodes' lo; it is in the LAN's
// prefix, as a Layer 2 LoadBalancer IP would be.
var svcIP = netip.MustParseAddr("198.51.100.200")

const arpWindow = 300 * time.Millisecond

func macStrings(macs []net.HardwareAddr) []string {
	s := make([]string, len(macs))
	for i, m := range macs {
		s[i] = m.String()
	}
	slices.Sort(s)
	return s
}

func TestTopology(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{})
	ctx := t.Context()

	if got := len(l.Nodes()); got != 3 {
		t.Fatalf("%d nodes, want 3 by default", got)
	}
	want := map[string]string{"cp": "198.51.100.2", "node-1": "198.51.100.11", "node-2": "198.51.100.12", "node-3": "198.51.100.13", "client": "198.51.100.100"}
	for _, h := range l.Hosts() {
		if h.IPv4.String() != want[h.Name] {
			t.Errorf("%s has %s, want %s", h.Name, h.IPv4, want[h.Name])
		}
		if !strings.HasPrefix(h.NS, "ironlb-"+l.Suffix()+"-") {
			t.Errorf("%s's namespace %q lacks the lab's prefix", h.Name, h.NS)
		}
		// Seen by iproute2 inside the namespace: the address, not
		// tentative, and the MAC the lab reports.
		out, err := h.Run(ctx, "ip", "-o", "addr", "show", "dev", h.IfName)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{h.IPv4, h.IPv6} {
			if !strings.Contains(string(out), a.String()+"/") {
				t.Errorf("%s: ip addr lacks %s:\n%s", h.Name, a, out)
			}
		}
		if strings.Contains(string(out), "tentative") {
			t.Errorf("%s: an address is tentative (DAD should be off):\n%s", h.Name, out)
		}
		link, err := h.Run(ctx, "ip", "-o", "link", "show", "dev", h.IfName)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(link), h.MAC.String()) {
			t.Errorf("%s: ip link does not show MAC %s:\n%s", h.Name, h.MAC, link)
		}
		// Nothing is reachable outside the lab: no default route.
		for _, fam := range []string{"-4", "-6"} {
			out, err := h.Run(ctx, "ip", fam, "route", "show", "default")
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.TrimSpace(string(out)); s != "" {
				t.Errorf("%s has a default route: %s", h.Name, s)
			}
		}
	}

	client, node2 := l.Client(), l.Node(2)
	for _, target := range []netip.Addr{node2.IPv4, node2.IPv6, l.CP().IPv4} {
		if _, err := client.Ping(ctx, target); err != nil {
			t.Errorf("client cannot ping %s: %v", target, err)
		}
	}
	macs, err := client.ARPRequest(ctx, "", node2.IPv4, arpWindow)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{node2.MAC.String()}, macStrings(macs)); diff != "" {
		t.Errorf("ARP answers for node-2's %s (-want +got):\n%s", node2.IPv4, diff)
	}
	macs, err = client.NDPSolicit(ctx, "", node2.IPv6, arpWindow)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{node2.MAC.String()}, macStrings(macs)); diff != "" {
		t.Errorf("NDP answers for node-2's %s (-want +got):\n%s", node2.IPv6, diff)
	}
	macs, err = client.ARPRequest(ctx, "", netip.MustParseAddr("198.51.100.250"), arpWindow)
	if err != nil || len(macs) != 0 {
		t.Errorf("ARP for an unused address: %v, %v; want no answer", macs, err)
	}
}

func TestServiceIPHTTP(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{})
	ctx := t.Context()
	node2 := l.Node(2)
	if err := node2.AddServiceIP(svcIP); err != nil {
		t.Fatal(err)
	}
	srv, err := node2.ServeHTTP(ctx, svcIP, 80)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.AddrPortFrom(svcIP, 80); srv.Addr != want {
		t.Errorf("server bound to %s, want %s", srv.Addr, want)
	}

	// From Go, the way tests will.
	resp, err := l.Client().HTTPClient().Get("http://198.51.100.200/")
	if err != nil {
		t.Fatalf("GET from client: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(body)); got != "node-2" {
		t.Errorf("GET answered %q, want node-2", got)
	}
	// And from a real program run inside the client namespace.
	out, err := l.Client().Run(ctx, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://198.51.100.200/")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "node-2" {
		t.Errorf("curl got %q, want node-2", got)
	}

	if err := srv.Close(); err != nil {
		t.Errorf("close server: %v", err)
	}
	c := l.Client().HTTPClient()
	c.Timeout = time.Second
	if _, err := c.Get("http://198.51.100.200/"); err == nil {
		t.Error("GET succeeded after the server was closed")
	}
}

// TestStrictARP shows what kube-proxy's strictARP is for: with the kernel
// defaults every node holding a service IP on lo answers ARP for it; with
// strictARP none does, and only an announcer (ironlb) can make it reachable.
func TestStrictARP(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("StrictARP=%v", strict), func(t *testing.T) {
			t.Parallel()
			l := NewForTest(t, Options{StrictARP: strict})
			ctx := t.Context()
			var wantMACs []net.HardwareAddr
			for _, n := range l.Nodes() {
				if err := n.AddServiceIP(svcIP); err != nil {
					t.Fatal(err)
				}
				if _, err := n.ServeHTTP(ctx, svcIP, 80); err != nil {
					t.Fatal(err)
				}
				wantMACs = append(wantMACs, n.MAC)
				// Set inside the namespace (Do), read by a program run
				// in it: the sysctl landed in the right namespace.
				out, err := n.Run(ctx, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore")
				if err != nil {
					t.Fatal(err)
				}
				want := map[bool]string{false: "0", true: "1"}[strict]
				if got := strings.TrimSpace(string(out)); got != want {
					t.Errorf("%s: arp_ignore = %s, want %s", n.Name, got, want)
				}
			}
			if strict {
				wantMACs = nil
			}
			macs, err := l.Client().ARPRequest(ctx, "", svcIP, arpWindow)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(macStrings(wantMACs), macStrings(macs)); diff != "" {
				t.Errorf("ARP answers for %s on every node's lo (-want +got):\n%s", svcIP, diff)
			}
			if !strict {
				return
			}
			// What an announcement from node-3 would do: the client
			// sends to node-3, which accepts traffic for its lo address.
			if err := l.Client().SetNeighbor(svcIP, l.Node(3).MAC); err != nil {
				t.Fatal(err)
			}
			if mac, err := l.Client().Neighbor(svcIP); err != nil || mac.String() != l.Node(3).MAC.String() {
				t.Errorf("client's neighbor entry for %s = %v, %v; want %s", svcIP, mac, err, l.Node(3).MAC)
			}
			out, err := l.Client().Run(ctx, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://198.51.100.200/")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != "node-3" {
				t.Errorf("GET answered %q, want node-3", got)
			}
		})
	}
}

func TestLinkDown(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 2})
	ctx := t.Context()
	client, node1 := l.Client(), l.Node(1)
	if _, err := client.Ping(ctx, node1.IPv4); err != nil {
		t.Fatalf("before LinkDown: %v", err)
	}
	if err := node1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if err := client.FlushNeighbors(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := client.Ping(short, node1.IPv4); err == nil {
		t.Error("node-1 answers ping after LinkDown")
	}
	if macs, err := client.ARPRequest(ctx, "", node1.IPv4, arpWindow); err != nil || len(macs) != 0 {
		t.Errorf("ARP for node-1 after LinkDown: %v, %v; want no answer", macs, err)
	}
	if _, err := client.Ping(ctx, l.Node(2).IPv4); err != nil {
		t.Errorf("node-2 unreachable while node-1 is cut off: %v", err)
	}
	// The host saw its carrier drop, as with a pulled cable.
	out, err := node1.Run(ctx, "ip", "-o", "link", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "NO-CARRIER") {
		t.Errorf("node-1's eth0 still has a carrier:\n%s", out)
	}

	if err := node1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	// The client's failed resolution of node-1 is retried on the
	// kernel's schedule (a second apart); start afresh instead.
	if err := client.FlushNeighbors(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{node1.IPv4, node1.IPv6} {
		if _, err := client.Ping(ctx, a); err != nil {
			t.Errorf("after LinkUp, %s: %v", a, err)
		}
	}
}

func TestDoRunsInNamespaceAndRestores(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1})
	self, err := statNS("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		for _, h := range l.Hosts() {
			wg.Go(func() {
				want, err := statNS(h.NSPath())
				if err != nil {
					t.Error(err)
					return
				}
				err = h.Do(func() error {
					got, err := statNS("/proc/thread-self/ns/net")
					if err != nil {
						return err
					}
					if got != want {
						return fmt.Errorf("thread is in namespace %v, want %v", got, want)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	// Every thread the runtime has (or now creates) is back in ours.
	for range 4 * len(l.Hosts()) {
		wg.Go(func() {
			got, err := statNS("/proc/thread-self/ns/net")
			if err == nil && got != self {
				t.Errorf("a thread was left in namespace %v", got)
			}
			time.Sleep(time.Millisecond)
		})
	}
	wg.Wait()

	// A panic inside Do comes back to the caller.
	func() {
		defer func() {
			if recover() != "boom" {
				t.Error("panic in Do was not re-raised")
			}
		}()
		l.Node(1).Do(func() error { panic("boom") })
	}()
	// A listener made inside Do stays in the namespace.
	var ln net.Listener
	if err := l.Node(1).Do(func() (err error) { ln, err = net.Listen("tcp", "198.51.100.11:0"); return err }); err != nil {
		t.Fatalf("listen on node-1's address inside node-1: %v", err)
	}
	defer ln.Close()
	// Accepting from any goroutine still serves node-1's address.
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	conn, err := l.Client().DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial node-1's listener from client: %v", err)
	}
	defer conn.Close()
	if b, err := io.ReadAll(conn); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v; want hello", b, err)
	}
}
