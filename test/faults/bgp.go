package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// BGP mode: the lab's router runs FRR, peered with every node's speaker
// with BFD, and the BGP Services' addresses reach it as one route each
// with every node as a next hop (ECMP). The client sits behind the
// router (labnet.Router.Outside) and probes them through it; the watch
// samples the router's route to each address instead of ARP/NDP
// (labcluster.WatchOptions.Router). There is no election and no owner:
// every eligible node announces, so a node's failure only takes its
// next hop out of the routes, and a node that comes back only puts it
// back.

// BGPNamespace holds the BGP Services.
const BGPNamespace = "faults-bgp"

// The router's AS and the nodes' (eBGP).
const bgpRouterASN, bgpNodeASN = 64500, 64512

// bgpPeerName is the BGPPeer of the lab's router; the BFDProfile is
// bgpBFDProfile.
const bgpPeerName, bgpBFDProfile = "router", "fast"

// BFD on both ends, as a user who wants fast failover sets it: control
// packets every 100 ms, down after 3 missed. The router drops a dead
// node's routes 300 ms after its last packet, which leaves room under a
// second for the route change and the probe's own interval. The BGP hold
// time stays the default (90 s): BFD is what notices a dead node.
const (
	bgpBFDInterval   = 100 // ms
	bgpBFDMultiplier = 3
)

// BGPServices are the BGP Services, in BGPNamespace: two addresses, so
// that the client's two probe flows likely take different nodes (the
// router hashes each flow to one next hop).
var BGPServices = []Service{
	{"web", netip.MustParseAddr("203.0.113.113")},
	{"api", netip.MustParseAddr("203.0.113.114")},
}

// bgpPool holds the BGP Services' addresses: in 203.0.113.0/24 below
// the outside link (203.0.113.128/25) and clear of the pod ranges
// (203.0.113.16/28 per node up) and of the e2e tests' "routed" pool
// (203.0.113.96/28).
var bgpPool = v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.112/28"}}

// BGPScenarios are the rows that run in BGP mode too, each after
// SetupBGP.
var BGPScenarios = []Scenario{
	{1, "APIServerStoppedBGP", apiServerStoppedBGP},
	{12, "EveryNodeNotReadyBGP", everyNodeNotReadyBGP},
}

// BGPIPs are the BGP Services' addresses.
func BGPIPs() []netip.Addr {
	var out []netip.Addr
	for _, s := range BGPServices {
		out = append(out, s.IP)
	}
	return out
}

// SetupBGP adds the lab's router with FRR peered with every node (BFD
// on), creates the BFDProfile, the BGPPeer, the IPPool and its
// BGPAnnouncement and the BGP Services with backends on every node, and
// waits until the router routes each address to every node.
func (e *Env) SetupBGP(ctx context.Context) error {
	r, err := e.C.Lab.AddRouter(ctx)
	if err != nil {
		return err
	}
	rc := labnet.RouterConfig{
		ASN: bgpRouterASN,
		BFD: labnet.RouterBFD{Interval: bgpBFDInterval * time.Millisecond, Multiplier: bgpBFDMultiplier},
	}
	for _, h := range e.C.Lab.Nodes() {
		rc.Neighbors = append(rc.Neighbors, labnet.RouterNeighbor{Address: h.IPv4, ASN: bgpNodeASN, BFD: true})
	}
	if _, err := r.StartFRR(ctx, rc); err != nil {
		return err
	}
	interval, mult := uint32(bgpBFDInterval), uint32(bgpBFDMultiplier)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: BGPNamespace}},
		&v1alpha1.BFDProfile{
			ObjectMeta: metav1.ObjectMeta{Name: bgpBFDProfile},
			Spec:       v1alpha1.BFDProfileSpec{ReceiveInterval: &interval, TransmitInterval: &interval, DetectMultiplier: &mult},
		},
		&v1alpha1.BGPPeer{
			ObjectMeta: metav1.ObjectMeta{Name: bgpPeerName},
			Spec: v1alpha1.BGPPeerSpec{MyASN: bgpNodeASN, PeerASN: bgpRouterASN, PeerAddress: r.Host.IPv4.String(),
				BFDProfile: bgpBFDProfile},
		},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: BGPNamespace}, Spec: bgpPool},
		&v1alpha1.BGPAnnouncement{
			ObjectMeta: metav1.ObjectMeta{Name: BGPNamespace},
			Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{BGPNamespace}},
		},
	}
	for _, s := range BGPServices {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: BGPNamespace, Name: s.Name},
			Spec: corev1.ServiceSpec{
				Type:                          corev1.ServiceTypeLoadBalancer,
				AllocateLoadBalancerNodePorts: new(bool),
				LoadBalancerIP:                s.IP.String(),
				Ports:                         []corev1.ServicePort{{Name: "udp", Port: labcluster.UDPPort, Protocol: corev1.ProtocolUDP}},
			},
		})
	}
	for _, o := range objs {
		if err := e.C.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	for _, s := range BGPServices {
		if err := e.C.Backends(ctx, s.IP); err != nil {
			return err
		}
	}
	if err := e.SettledBGP(ctx, 60*time.Second); err != nil {
		return err
	}
	// The client behind the router reaches every address.
	out, err := e.C.Host(labnetOutside)
	if err != nil {
		return err
	}
	for _, ip := range BGPIPs() {
		err := labcluster.Eventually(ctx, 10*time.Second, func() error {
			p, err := out.ProbeUDP(ctx, netip.AddrPortFrom(ip, labcluster.UDPPort), 0)
			if err != nil {
				return err
			}
			sleep(ctx, 300*time.Millisecond)
			if res := p.Stop(); res.Received == 0 {
				return fmt.Errorf("%s: none of %d probes from %s answered", ip, res.Sent, out.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// The names of the hosts labnet.Lab.AddRouter adds: the router on the
// LAN and the client behind it.
const labnetRouter, labnetOutside = "router", "outside"

// SettledBGP waits until every node's session with the router is
// established with BFD up (its BGPSessionState says so) and the router
// routes every BGP address to every node.
func (e *Env) SettledBGP(ctx context.Context, timeout time.Duration) error {
	all := e.nodeIPs()
	return labcluster.Eventually(ctx, timeout, func() error {
		if err := e.sessionsUp(ctx); err != nil {
			return err
		}
		hops, err := e.routerHops()
		if err != nil {
			return err
		}
		for _, ip := range BGPIPs() {
			if !slices.Equal(hops[ip], all) {
				return fmt.Errorf("the router routes %s to %v, want every node %v", ip, hops[ip], all)
			}
		}
		return nil
	})
}

// sessionsUp returns an error unless every node's BGPSessionState with
// the router is Established with BFD Up.
func (e *Env) sessionsUp(ctx context.Context) error {
	var list v1alpha1.BGPSessionStateList
	if err := e.C.Client.List(ctx, &list); err != nil {
		return err
	}
	up := map[string]bool{}
	var bad []string
	for _, s := range list.Items {
		st := s.Status
		if st.Peer != bgpPeerName {
			continue
		}
		if st.State == v1alpha1.BGPStateEstablished && st.BFDState == v1alpha1.BFDStateUp {
			up[st.Node] = true
		} else {
			bad = append(bad, fmt.Sprintf("%s: %s, BFD %q %s", st.Node, st.State, st.BFDState, st.LastError))
		}
	}
	for _, n := range e.nodeNames() {
		if !up[n] {
			return fmt.Errorf("%s's session with the router is not established with BFD up: %v", n, bad)
		}
	}
	return nil
}

// nodeIPs are the nodes' IPv4 addresses, sorted: the next hops of a
// route that every node announces.
func (e *Env) nodeIPs() []netip.Addr {
	var out []netip.Addr
	for _, h := range e.C.Lab.Nodes() {
		out = append(out, h.IPv4)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// nodeOf maps the nodes' IPv4 addresses to their names.
func (e *Env) nodeOf() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, h := range e.C.Lab.Nodes() {
		out[h.IPv4] = h.Name
	}
	return out
}

// routerHops returns the next hops of the router's kernel route to each
// BGP address (none where it has no route).
func (e *Env) routerHops() (map[netip.Addr][]netip.Addr, error) {
	r, err := e.C.Host(labnetRouter)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr][]netip.Addr{}
	for _, ip := range BGPIPs() {
		hops, err := r.RouteNextHops(netip.PrefixFrom(ip, ip.BitLen()))
		if err != nil {
			return nil, err
		}
		out[ip] = hops
	}
	return out, nil
}

// runBGP is run for BGP mode: it checks that every node announces every
// address, starts a watch of the BGP addresses from the client behind
// the router, sampling the router's routes, and stops it once f returns.
func (e *Env) runBGP(ctx context.Context, bounds labcluster.Bounds, f func(r *Result)) Result {
	r := Result{Bounds: bounds}
	if err := e.SettledBGP(ctx, 5*time.Second); err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("before the fault: %w", err))
		return r
	}
	router, err := e.C.Host(labnetRouter)
	if r.fail(err) {
		return r
	}
	out, err := e.C.Host(labnetOutside)
	if r.fail(err) {
		return r
	}
	// Routes change within milliseconds of a BFD timeout: sample them
	// finer than ARP.
	w, err := e.C.Watch(labcluster.WatchOptions{IPs: BGPIPs(), From: out, Router: router, SampleEvery: 50 * time.Millisecond})
	if r.fail(err) {
		return r
	}
	sleep(ctx, time.Second)
	f(&r)
	r.Report = w.Stop()
	return r
}

// holdRoutes checks the router's routes every half second for d: each
// address must be routed to exactly one of the sets of next hops want.
// It reports each other set once, and returns the last sets seen.
func (e *Env) holdRoutes(ctx context.Context, d time.Duration, r *Result, want ...[]netip.Addr) map[netip.Addr][]netip.Addr {
	reported := map[string]bool{}
	var hops map[netip.Addr][]netip.Addr
	for t0 := time.Now(); time.Since(t0) < d; sleep(ctx, 500*time.Millisecond) {
		var err error
		if hops, err = e.routerHops(); r.fail(err) {
			return nil
		}
		for _, ip := range BGPIPs() {
			ok := slices.ContainsFunc(want, func(w []netip.Addr) bool { return slices.Equal(hops[ip], w) })
			if key := fmt.Sprint(ip, hops[ip]); !ok && !reported[key] {
				reported[key] = true
				r.fail(fmt.Errorf("the router routes %s to %v %s into the hold, want one of %v", ip, hops[ip], time.Since(t0).Round(100*time.Millisecond), want))
			}
		}
	}
	return hops
}

// probeCarrier returns the node that receives the most UDP datagrams
// over one second, with every node's count: the node the client's probe
// flows go through (100 a second each; the router hashes each flow to
// one next hop), while the speakers' gossip adds a few.
func (e *Env) probeCarrier(ctx context.Context) (string, map[string]uint64, error) {
	read := func() (map[string]uint64, error) {
		out := map[string]uint64{}
		for _, h := range e.C.Lab.Nodes() {
			n, err := udpInDatagrams(h)
			if err != nil {
				return nil, err
			}
			out[h.Name] = n
		}
		return out, nil
	}
	before, err := read()
	if err != nil {
		return "", nil, err
	}
	sleep(ctx, time.Second)
	after, err := read()
	if err != nil {
		return "", nil, err
	}
	delta := map[string]uint64{}
	best := ""
	for _, n := range slices.Sorted(maps.Keys(after)) {
		delta[n] = after[n] - before[n]
		if best == "" || delta[n] > delta[best] {
			best = n
		}
	}
	if delta[best] < 50 {
		return "", delta, fmt.Errorf("no node receives the probes: UDP datagrams in one second %v", delta)
	}
	return best, delta, nil
}

// udpInDatagrams reads the UDP InDatagrams counter of h's network
// namespace (/proc/net/snmp, as seen from a thread inside it).
func udpInDatagrams(h *labnet.Host) (uint64, error) {
	var b []byte
	err := h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return 0, err
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil {
			names = fields
			continue
		}
		if i := slices.Index(names, "InDatagrams"); i >= 0 && i < len(fields) {
			return strconv.ParseUint(fields[i], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no UDP InDatagrams in /proc/net/snmp", h.Name)
}

// apiServerStoppedBGP is row 1 in BGP mode: the API server stopped
// (SIGSTOP) for 10 minutes (2 in make test); at minute 2 (0.5) the node
// that the client's probes flow through dies, at minute 5 (1.25) it
// comes back. The node dies as a node does, silently: its link is cut
// first and its speaker killed after, so no TCP FIN or BGP NOTIFICATION
// reaches the router, and only BFD tells it (killing the speaker first
// would close its session at once, which proves nothing). Traffic must
// flow throughout, failing over within a second; the survivors keep
// announcing without the API server; the returning node announces again
// once it can read its configuration (its speaker waits for the API
// server), and then the routes lead to every node again and nothing else
// changes: no Service's address.
func apiServerStoppedBGP(ctx context.Context, e *Env) Result {
	stop, die, back := 10*time.Minute, 2*time.Minute, 5*time.Minute
	if e.Short {
		stop, die, back = 2*time.Minute, 30*time.Second, 75*time.Second
	}
	var victim string
	var cut time.Time
	all := e.nodeIPs()
	r := e.runBGP(ctx, labcluster.Bounds{}, func(r *Result) {
		var counts map[string]uint64
		var err error
		if victim, counts, err = e.probeCarrier(ctx); r.fail(err) {
			return
		}
		resume, ok := e.pauseAPIServer(r)
		if !ok {
			return
		}
		defer resume()
		start := time.Now()
		sleep(ctx, die)
		h, err := e.C.Host(victim)
		if r.fail(err) {
			return
		}
		e.Logf("API server stopped; %s (UDP datagrams in a second: %v) dies", victim, counts)
		cut = time.Now()
		if r.fail(h.LinkDown()) || r.fail(e.C.Speaker(victim).Kill()) {
			return
		}
		survivors := slices.DeleteFunc(slices.Clone(all), func(a netip.Addr) bool { return a == h.IPv4 })
		err = labcluster.Eventually(ctx, 5*time.Second, func() error {
			hops, err := e.routerHops()
			for ip, hs := range hops {
				if err == nil && !slices.Equal(hs, survivors) {
					err = fmt.Errorf("the router routes %s to %v, want the survivors %v", ip, hs, survivors)
				}
			}
			return err
		})
		if r.fail(err) {
			return
		}
		e.holdRoutes(ctx, back-time.Since(start), r, survivors)
		e.Logf("%s comes back", victim)
		if r.fail(h.LinkUp()) {
			return
		}
		if _, err := e.C.StartSpeaker(victim); r.fail(err) {
			return
		}
		// The survivors keep announcing. The returning speaker cannot
		// read its configuration while the API server is stopped (it
		// waits for it), so it announces nothing yet; should it, the
		// routes lead to every node, which is no fault either.
		during := e.holdRoutes(ctx, stop-time.Since(start), r, survivors, all)
		e.Logf("API server resumed; the router routes to %v", during)
		resume()
		at := time.Now()
		err = labcluster.Eventually(ctx, 60*time.Second, func() error {
			hops, err := e.routerHops()
			for ip, hs := range hops {
				if err == nil && !slices.Equal(hs, all) {
					err = fmt.Errorf("the router routes %s to %v, want every node %v", ip, hs, all)
				}
			}
			return err
		})
		if r.fail(err) {
			return
		}
		e.Logf("routes lead to %s again %s after the API server resumed", victim, time.Since(at).Round(100*time.Millisecond))
		e.holdRoutes(ctx, 5*time.Second, r, all)
	})
	if victim != "" && !cut.IsZero() {
		r.Errs = append(r.Errs, e.failover(r.Report, victim, cut)...)
	}
	return r
}

// failover reports, from a BGP watch's report, how the death of victim at
// cut went: when the router's routes dropped it, and for each address
// whose probes it answered, how long they went unanswered. It returns an
// error if no probe went through victim (the row then proves nothing) or
// one went unanswered for a second or more.
func (e *Env) failover(rep labcluster.Report, victim string, cut time.Time) []error {
	var victimIP netip.Addr
	for ip, n := range e.nodeOf() {
		if n == victim {
			victimIP = ip
		}
	}
	var errs []error
	carried := false
	for _, ip := range slices.SortedFunc(maps.Keys(rep.IPs), netip.Addr.Compare) {
		ir := rep.IPs[ip]
		for _, s := range ir.Samples {
			if s.At.After(cut) && !slices.Contains(s.NextHops, victimIP) {
				e.Logf("%s: the router dropped %s's route %s after its link was cut", ip, victim, s.At.Sub(cut).Round(time.Millisecond))
				break
			}
		}
		// next is the first answer from another node after the cut, last
		// the answer before it (victim's, if the flow went through it; one
		// may still arrive just after the cut).
		var last, next labnet.ProbeReply
		for _, rp := range ir.Probe.Replies {
			if rp.Received.After(cut) && rp.Node != victim {
				next = rp
				break
			}
			last = rp
		}
		if last.Node != victim {
			e.Logf("%s: its probes went through %s, not %s", ip, last.Node, victim)
			continue
		}
		carried = true
		if next.Seq == 0 {
			errs = append(errs, fmt.Errorf("%s: no probe answered after %s died", ip, victim))
			continue
		}
		gap := next.Received.Sub(last.Received)
		e.Logf("%s: failover from %s to %s: %s without an answer", ip, victim, next.Node, gap.Round(time.Millisecond))
		if gap >= time.Second {
			errs = append(errs, fmt.Errorf("%s: failover from %s took %s", ip, victim, gap.Round(time.Millisecond)))
		}
	}
	if !carried {
		errs = append(errs, errors.New("no probe went through "+victim+" when it died: the row measured no failover"))
	}
	return errs
}

// everyNodeNotReadyBGP is row 12 in BGP mode: every Node marked NotReady
// for 60 s, one after the other, then Ready again. The first ones to go
// withdraw their routes (a NotReady node announces nothing) while others
// are Ready; once none is, readiness tells no node apart and is ignored
// (announce.NoneReady), so every node announces again and the routes
// lead to every node for the rest of the minute. When the Nodes return,
// the first one Ready is the only one to announce until the others are
// Ready too. Each change adds or takes a next hop beside others: the
// addresses must never be without a route, nor the probes without an
// answer for a second.
func everyNodeNotReadyBGP(ctx context.Context, e *Env) Result {
	return e.runBGP(ctx, labcluster.Bounds{}, func(r *Result) {
		e.Logf("marking every Node NotReady for 60 s")
		if !e.setAllReady(ctx, r, false) {
			return
		}
		sleep(ctx, 5*time.Second)
		e.holdRoutes(ctx, 55*time.Second, r, e.nodeIPs())
		e.setAllReady(ctx, r, true)
		r.fail(e.SettledBGP(ctx, 10*time.Second))
		e.holdRoutes(ctx, 3*time.Second, r, e.nodeIPs())
	})
}
