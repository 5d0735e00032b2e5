package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labnet"
)

// The lab router's AS and the nodes' in the BGP tests.
const routerASN, nodeASN = 64500, 64512

// startFRR adds the lab's router running FRR, peered with every node (each
// neighbour as tweak, if not nil, leaves it), and creates what the BGP
// tests announce from: the namespace "shop" and the IPPool "routed"
// (203.0.113.96/28).
func (c *cluster) startFRR(tweak func(*labnet.RouterNeighbor)) (*labnet.Router, *labnet.FRR) {
	t := c.t
	t.Helper()
	r, err := c.Lab.AddRouter(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rc := labnet.RouterConfig{ASN: routerASN}
	for _, h := range c.Lab.Nodes() {
		n := labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN}
		if tweak != nil {
			tweak(&n)
		}
		rc.Neighbors = append(rc.Neighbors, n)
	}
	frr, err := r.StartFRR(t.Context(), rc)
	if err != nil {
		t.Fatal(err)
	}
	c.namespace("shop")
	c.apply(&v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "routed"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.96/28"}},
	})
	return r, frr
}

// TestBGP is BGP mode end to end: FRR in the lab's router peers with the
// three speakers; a Service's address reaches the router with one next
// hop per node (ECMP), a client behind the router reaches it, and with
// externalTrafficPolicy: Local only the node with the endpoint announces.
func TestBGP(t *testing.T) {
	c := newCluster(t, 3)
	ctx := t.Context()
	r, frr := c.startFRR(nil)
	var nodeIPs []netip.Addr
	for _, h := range c.Lab.Nodes() {
		nodeIPs = append(nodeIPs, h.IPv4)
	}
	c.apply(&v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Spec:       v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: r.Host.IPv4.String()},
	})
	c.apply(&v1alpha1.BGPAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "routed"},
		Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}, Communities: []string{"64512:100"}},
	})

	hops := func(p netip.Prefix) ([]netip.Addr, error) {
		routes, err := frr.Routes(ctx)
		if err != nil {
			return nil, err
		}
		for _, rt := range routes {
			if rt.Prefix == p {
				return rt.NextHops(), nil
			}
		}
		return nil, nil
	}
	waitHops := func(p netip.Prefix, want []netip.Addr) {
		t.Helper()
		slices.SortFunc(want, netip.Addr.Compare)
		c.eventually(60*time.Second, fmt.Sprintf("router's next hops for %s", p), func() error {
			got, err := hops(p)
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("next hops %v, want %v", got, want)
			}
			return err
		})
	}

	// Every node announces; the client outside reaches the Service.
	web := service("shop", "web", 80)
	web.Spec.LoadBalancerIP = "203.0.113.100"
	c.apply(web)
	ip := netip.MustParseAddr("203.0.113.100")
	c.waitIPs("shop", "web", ip.String())
	c.backends(ip)
	waitHops(netip.PrefixFrom(ip, 32), slices.Clone(nodeIPs))
	hc := r.Outside.HTTPClient()
	hc.Timeout = 2 * time.Second
	c.eventually(30*time.Second, "HTTP from outside to "+ip.String(), func() error {
		resp, err := hc.Get("http://" + ip.String() + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if n := len(c.resolve(ip)); n != 0 {
		t.Errorf("%s, a BGP address, answered on the LAN by %d ARP replies; want none", ip, n)
	}

	// externalTrafficPolicy: Local: only the endpoint's node.
	local := service("shop", "local", 80)
	local.Spec.LoadBalancerIP = "203.0.113.101"
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	c.apply(local)
	lip := netip.MustParsePrefix("203.0.113.101/32")
	c.waitIPs("shop", "local", lip.Addr().String())
	c.endpoints("shop", "local", "node-2")
	waitHops(lip, []netip.Addr{c.host("node-2").IPv4})
	c.endpoints("shop", "local", "node-3")
	waitHops(lip, []netip.Addr{c.host("node-3").IPv4})

	// The Service goes: the route is withdrawn.
	if err := c.c.Delete(context.Background(), web); err != nil {
		t.Fatal(err)
	}
	waitHops(netip.PrefixFrom(ip, 32), nil)
}
