package l2

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// TestLabProbe probes from node-2 for addresses node-1's kernel holds on
// its LAN interface (so Linux itself answers, as a foreign host would), an
// address node-1's Responder answers for, and addresses nobody holds.
func TestLabProbe(t *testing.T) {
	l := labnet.NewForTest(t, labnet.Options{Nodes: 2})
	node1, node2 := l.Node(1), l.Node(2)
	for _, a := range []string{vip4a.String() + "/24", vip6a.String() + "/64"} {
		args := []string{"addr", "add", a, "dev", node1.IfName}
		if netip.MustParsePrefix(a).Addr().Is6() {
			args = append(args, "nodad")
		}
		if out, err := node1.Run(t.Context(), "ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	startResponder(t, node1, Options{}, vip4c)

	var p *Prober
	err := node2.Do(func() error {
		ifi, err := net.InterfaceByName(node2.IfName)
		if err != nil {
			return err
		}
		p, err = NewProber(ifi, ProbeOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got map[netip.Addr][]net.HardwareAddr
	var took time.Duration
	err = node2.Do(func() (err error) {
		start := time.Now()
		got, err = p.Probe(t.Context(), []netip.Addr{vip4a, vip4b, vip4c, vip6a, vip6b})
		took = time.Since(start)
		return err
	})
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	t.Logf("probe of 5 addresses took %v: %v", took.Round(time.Millisecond), got)
	want := map[netip.Addr]string{vip4a: node1.MAC.String(), vip4c: node1.MAC.String(), vip6a: node1.MAC.String()}
	for _, a := range []netip.Addr{vip4a, vip4b, vip4c, vip6a, vip6b} {
		var macs []string
		for _, m := range got[a] {
			macs = append(macs, m.String())
		}
		switch w, held := want[a]; {
		case held && (len(macs) != 1 || macs[0] != w):
			t.Errorf("%s: claimed by %v, want %s alone", a, macs, w)
		case !held && len(macs) != 0:
			t.Errorf("%s: claimed by %v, want nobody", a, macs)
		}
	}
	if took > 400*time.Millisecond {
		t.Errorf("Probe took %v, want about %v", took, p.Duration())
	}
}
