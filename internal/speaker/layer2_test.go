package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kubecr"
)

// fakeResponder records what the Layer 2 announcer asks of a responder.
type fakeResponder struct {
	addrs     []netip.Addr
	proxied   map[netip.Addr]net.HardwareAddr
	announced [][]netip.Addr
	quiet     bool
}

func (r *fakeResponder) SetAddrs(a []netip.Addr) error { r.addrs = slices.Clone(a); return nil }
func (r *fakeResponder) SetProxied(a map[netip.Addr]net.HardwareAddr) error {
	r.proxied = maps.Clone(a)
	return nil
}
func (r *fakeResponder) Announce(a []netip.Addr) { r.announced = append(r.announced, slices.Clone(a)) }
func (r *fakeResponder) Quiet()                  { r.quiet = true }

// l2Config has pool "lan" (198.51.100.80/28) announced in Layer 2 on
// every node and interface.
func l2Config(t *testing.T) *config.Config {
	t.Helper()
	cfg, problems := config.Build(config.Input{
		Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.80/28"}}}},
		L2:    []v1alpha1.L2Announcement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{"lan"}}}},
	}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return cfg
}

// TestLayer2Announcer runs the Layer 2 announcer through the turns of a
// takeover, a report, a reclaim, a speaker that may not answer, and a
// handover, on fake responders and a fake API.
func TestLayer2Announcer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	// The Service, as the speaker's records keep it.
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u-web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.88"}}}},
	}
	services := serviceRecords(k8sfake.NewClientset(web).CoreV1().Services(""), v1alpha1.DefaultLoadBalancerClass)
	wg.Go(func() { services.Run(ctx) })
	select {
	case <-services.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("records did not sync")
	}

	c := fake.NewClientBuilder().WithScheme(kubecr.Scheme()).Build()
	rec := events.NewFakeRecorder(10)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	eth0 := &fakeResponder{}
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	l := newLayer2(layer2Options{
		Node: "node-1", Logger: slog.New(slog.DiscardHandler), Metrics: m, Recorder: rec, Client: crAccess{c},
		Services: services, Ifaces: ifaces, Responders: map[string]responder{"eth0": eth0},
		Run:   func(f func(context.Context)) { wg.Go(func() { f(ctx) }) },
		Probe: (&fakeLAN{}).probe,
	})

	ip := netip.MustParseAddr("198.51.100.88")
	cfg := l2Config(t)
	turnOf := func(answer bool, current string, node2Ready bool) *turn {
		v := announce.View{
			Config: cfg,
			Nodes: map[string]announce.Node{
				"node-1": {Name: "node-1", Ready: true},
				"node-2": {Name: "node-2", Ready: node2Ready},
			},
			Ifaces:   map[string][]announce.Iface{"node-1": ifaces},
			Current:  map[netip.Addr]string{},
			Services: []announce.Service{{Key: "shop/web", IPs: []netip.Addr{ip}}},
		}
		if current != "" {
			v.Current[ip] = current
		}
		return &turn{view: v, round: announce.NewRound(v), answer: answer, janitor: janitor(v)}
	}

	// Takeover: node-1 answers (it is the current announcer), says so in
	// an event, and reports it.
	t1 := turnOf(true, "node-1", true)
	l.announce(ctx, t1)
	l.report(t1)
	if diff := cmp.Diff([]netip.Addr{ip}, eth0.addrs, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("eth0's addresses (-want +got):\n%s", diff)
	}
	select {
	case e := <-rec.Events:
		if want := "Normal Announced 198.51.100.88 announced by node-1 on eth0 (02:00:00:00:00:01)"; e != want {
			t.Errorf("event %q, want %q", e, want)
		}
	default:
		t.Error("no Announced event")
	}
	if got := counter(t, reg, "ironlb_speaker_takeovers_total"); got != 1 {
		t.Errorf("takeovers %v, want 1", got)
	}
	want := v1alpha1.ServiceAnnouncementStatus{Mode: v1alpha1.ModeLayer2, Announcers: []v1alpha1.Announcer{
		{IP: "198.51.100.88", Node: "node-1", Interface: "eth0", MAC: "02:00:00:00:00:01"},
	}}
	var ann v1alpha1.ServiceAnnouncement
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &ann)
		if err == nil && cmp.Diff(want, ann.Status) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ServiceAnnouncement (err %v) (-want +got):\n%s", err, cmp.Diff(want, ann.Status))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ann.OwnerReferences) != 1 || ann.OwnerReferences[0].UID != "u-web" {
		t.Errorf("owner references %+v, want the Service", ann.OwnerReferences)
	}

	// node-2, not Ready so not a candidate, is reported announcing the
	// address: node-1 announces it again, once.
	l.announce(ctx, turnOf(true, "node-2", false))
	l.announce(ctx, turnOf(true, "node-2", false))
	if diff := cmp.Diff([][]netip.Addr{{ip}}, eth0.announced, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("announced again (-want +got):\n%s", diff)
	}
	if len(rec.Events) != 0 {
		t.Errorf("%d more events, want none: the address did not move", len(rec.Events))
	}

	// A speaker that may not answer answers for nothing.
	l.announce(ctx, turnOf(false, "node-1", true))
	if len(eth0.addrs) != 0 || l.handover() != 0 {
		t.Errorf("not answering: eth0 has %v, holding %d", eth0.addrs, l.handover())
	}

	// Handover: quiet, and the count of addresses to hand over.
	l.announce(ctx, turnOf(true, "node-1", true))
	eth0.quiet = false
	if n := l.handover(); n != 1 || !eth0.quiet {
		t.Errorf("handover: %d addresses, quiet %v; want 1, true", n, eth0.quiet)
	}

	// node-2's speaker restarts in place while it announces the address:
	// node-1 answers for it naming node-2's MAC, owns nothing, and stops
	// once node-2 is back.
	restarting := func(back bool) *turn {
		t := turnOf(true, "node-2", true)
		t.view.Alive = map[string]bool{"node-1": true, "node-2": back}
		if !back {
			t.view.Restarting = map[string]bool{"node-2": true}
		}
		t.view.Ifaces["node-2"] = []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:02"}}
		t.round = announce.NewRound(t.view)
		return t
	}
	l.announce(ctx, restarting(false))
	node2MAC, _ := net.ParseMAC("02:00:00:00:00:02")
	if diff := cmp.Diff(map[netip.Addr]net.HardwareAddr{ip: node2MAC}, eth0.proxied, cmpopts.EquateComparable(netip.Addr{})); diff != "" || len(eth0.addrs) != 0 {
		t.Errorf("while node-2 restarts: eth0 owns %v, answers for others (-want +got):\n%s", eth0.addrs, diff)
	}
	if got := counter(t, reg, "ironlb_speaker_proxied_addresses"); got != 1 {
		t.Errorf("proxied addresses %v, want 1", got)
	}
	l.announce(ctx, restarting(true))
	if len(eth0.proxied) != 0 || len(eth0.addrs) != 0 {
		t.Errorf("node-2 back: eth0 owns %v, answers for others %v; want nothing", eth0.addrs, eth0.proxied)
	}
	if got := counter(t, reg, "ironlb_speaker_proxied_addresses"); got != 0 {
		t.Errorf("proxied addresses %v, want 0", got)
	}
}

// TestConfigCache checks that a sync builds its Config only when the
// config objects changed (kube.InputVersion).
func TestConfigCache(t *testing.T) {
	in := config.Input{Pools: []v1alpha1.IPPool{{
		ObjectMeta: metav1.ObjectMeta{Name: "lan", Generation: 1},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.80/28"}},
	}}}
	var c configCache
	first := c.get(in)
	if first == nil || first.Pools["lan"] == nil {
		t.Fatalf("config %+v, want pool lan", first)
	}
	if again := c.get(in); again != first {
		t.Error("same input: the Config was built again")
	}
	in.Pools[0].ResourceVersion = "7" // a status write
	if again := c.get(in); again != first {
		t.Error("status write: the Config was built again")
	}
	in.Pools[0].Generation = 2
	in.Pools[0].Spec.Addresses = []string{"198.51.100.96/28"}
	if next := c.get(in); next == first || !next.Pools["lan"].Contains(netip.MustParseAddr("198.51.100.97")) {
		t.Errorf("changed spec: config %+v, want a new one with the new addresses", next)
	}
}

// counter reads the counter or gauge name from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			if g := f.GetMetric()[0].GetGauge(); g != nil {
				return g.GetValue()
			}
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter or gauge %s", name)
	return 0
}

// fakeLAN is a LAN where hosts may claim addresses: its probe returns
// their MACs, as l2.Prober.Probe would, and counts the probes.
type fakeLAN struct {
	mu     sync.Mutex
	claims map[netip.Addr]string
	probes int
}

func (f *fakeLAN) probe(_ context.Context, _ string, addrs []netip.Addr) (map[netip.Addr][]net.HardwareAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes++
	out := map[netip.Addr][]net.HardwareAddr{}
	for _, a := range addrs {
		if m, ok := f.claims[a]; ok {
			hw, _ := net.ParseMAC(m)
			out[a] = []net.HardwareAddr{hw}
		}
	}
	return out, nil
}

func (f *fakeLAN) claim(a netip.Addr, mac string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claims == nil {
		f.claims = map[netip.Addr]string{}
	}
	if mac == "" {
		delete(f.claims, a)
	} else {
		f.claims[a] = mac
	}
}

func (f *fakeLAN) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probes
}

// TestLayer2Conflict: an address another host answers for is not
// answered, and says so (event, condition, ServiceAnnouncement, metrics),
// until the host releases it; then it is answered and announced, and the
// condition goes. Found at the first probe of a new address, and by the
// periodic probe of an answered one; an ironlb node's answer is no
// conflict, and a failover answers at once, unprobed.
func TestLayer2Conflict(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	ip := netip.MustParseAddr("198.51.100.88")
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u-web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip.String()}}}},
	}
	services := serviceRecords(k8sfake.NewClientset(web).CoreV1().Services(""), v1alpha1.DefaultLoadBalancerClass)
	wg.Go(func() { services.Run(ctx) })
	select {
	case <-services.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("records did not sync")
	}
	other := &metav1.Condition{Type: v1alpha1.ServiceConditionIPAllocated, Status: metav1.ConditionTrue, Reason: "Allocated", LastTransitionTime: metav1.Now()}
	stored := web.DeepCopy()
	stored.Status.Conditions = []metav1.Condition{*other}
	c := fake.NewClientBuilder().WithScheme(kubecr.Scheme()).WithObjects(stored).WithStatusSubresource(&corev1.Service{}).Build()
	rec := events.NewFakeRecorder(20)
	reg := prometheus.NewRegistry()
	lan := &fakeLAN{}
	kicks := make(chan struct{}, 1)
	eth0 := &fakeResponder{}
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	l := newLayer2(layer2Options{
		Node: "node-1", Logger: slog.New(slog.DiscardHandler), Metrics: newMetrics(reg), Recorder: rec, Client: crAccess{c},
		Services: services, Ifaces: ifaces, Responders: map[string]responder{"eth0": eth0},
		Run: func(f func(context.Context)) { wg.Go(func() { f(ctx) }) },
		Kick: func() {
			select {
			case kicks <- struct{}{}:
			default:
			}
		},
		Probe: lan.probe,
	})
	l.watch.recheck, l.watch.reprobe = 200*time.Millisecond, 50*time.Millisecond

	cfg := l2Config(t)
	const foreign = "02:00:00:00:00:99"
	doTurn := func(current string) {
		t.Helper()
		v := announce.View{
			Config:   cfg,
			Nodes:    map[string]announce.Node{"node-1": {Name: "node-1", Ready: true}, "node-2": {Name: "node-2", Ready: true}},
			Alive:    map[string]bool{"node-1": true},
			Ifaces:   map[string][]announce.Iface{"node-1": ifaces, "node-2": {{Name: "eth0", MAC: "02:00:00:00:00:02"}}},
			Current:  map[netip.Addr]string{},
			Services: []announce.Service{{Key: "shop/web", IPs: []netip.Addr{ip}}},
		}
		if current != "" {
			v.Current[ip] = current
		}
		tt := &turn{view: v, round: announce.NewRound(v), answer: true, janitor: janitor(v)}
		var ann v1alpha1.ServiceAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &ann); err == nil {
			tt.announcements = []v1alpha1.ServiceAnnouncement{ann}
		}
		l.announce(ctx, tt)
		l.report(tt)
	}
	kicked := func(what string) {
		t.Helper()
		select {
		case <-kicks:
		case <-time.After(5 * time.Second):
			t.Fatalf("no sync asked for: %s", what)
		}
	}
	answered := func(want bool) {
		t.Helper()
		if got := slices.Contains(eth0.addrs, ip); got != want {
			t.Fatalf("eth0 answers %v; want %s answered: %v", eth0.addrs, ip, want)
		}
	}
	event := func(want string) {
		t.Helper()
		select {
		case e := <-rec.Events:
			if e != want {
				t.Errorf("event %q, want %q", e, want)
			}
		default:
			t.Errorf("no event, want %q", want)
		}
	}
	eventually := func(what string, f func() error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	conditions := func() []metav1.Condition {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &svc); err != nil {
			t.Fatal(err)
		}
		return svc.Status.Conditions
	}
	msg := "198.51.100.88 is in use by another host, 02:00:00:00:00:99 on eth0: not announced until the other host releases it"
	// inConflict checks a turn with current found the conflict. The
	// writes come back as the next turns read them, as a speaker's do
	// through its cache: a turn that read the announcement just before
	// the previous write landed hands the writer a stale version, which
	// only a later turn replaces.
	inConflict := func(current string) {
		t.Helper()
		answered(false)
		event("Warning AddressConflict " + msg)
		if got := counter(t, reg, "ironlb_speaker_conflicted_addresses"); got != 1 {
			t.Errorf("conflicted addresses %v, want 1", got)
		}
		eventually("the condition and the announcement", func() error {
			doTurn(current)
			answered(false)
			var ann v1alpha1.ServiceAnnouncement
			if err := c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &ann); err != nil {
				return err
			}
			want := []v1alpha1.Announcer{{IP: ip.String(), Reason: "AddressConflict: " + msg}}
			if diff := cmp.Diff(want, ann.Status.Announcers); diff != "" {
				return fmt.Errorf("announcers (-want +got):\n%s", diff)
			}
			conds := conditions()
			i := slices.IndexFunc(conds, func(c metav1.Condition) bool { return c.Type == v1alpha1.ServiceConditionAddressConflict })
			if i < 0 || conds[i].Status != metav1.ConditionTrue || conds[i].Reason != "AddressConflict" || conds[i].Message != msg {
				return fmt.Errorf("conditions %+v", conds)
			}
			if !slices.ContainsFunc(conds, func(c metav1.Condition) bool { return c.Type == v1alpha1.ServiceConditionIPAllocated }) {
				return fmt.Errorf("the controller's condition is gone: %+v", conds)
			}
			return nil
		})
	}
	freed := func() {
		t.Helper()
		answered(true)
		event("Normal Announced 198.51.100.88 announced by node-1 on eth0 (02:00:00:00:00:01)")
		if got := counter(t, reg, "ironlb_speaker_conflicted_addresses"); got != 0 {
			t.Errorf("conflicted addresses %v, want 0", got)
		}
		// The next turns read the announcement back and clear the
		// condition.
		eventually("the condition cleared", func() error {
			doTurn("")
			conds := conditions()
			if slices.ContainsFunc(conds, func(c metav1.Condition) bool { return c.Type == v1alpha1.ServiceConditionAddressConflict }) {
				return fmt.Errorf("conditions %+v", conds)
			}
			if len(conds) != 1 {
				return fmt.Errorf("conditions %+v, want the controller's alone", conds)
			}
			return nil
		})
	}

	// A new address another host holds: not answered while it is probed,
	// nor after.
	lan.claim(ip, foreign)
	doTurn("")
	answered(false)
	kicked("first probe")
	doTurn("")
	inConflict("")
	if got := counter(t, reg, "ironlb_speaker_address_conflicts_total"); got != 1 {
		t.Errorf("conflicts %v, want 1", got)
	}

	// The host releases it: answered at the next probe.
	lan.claim(ip, "")
	kicked("probe after release")
	doTurn("")
	freed()

	// An ironlb node's answer is no conflict.
	lan.claim(ip, "02:00:00:00:00:02")
	n := lan.count()
	eventually("two periodic probes", func() error {
		if lan.count() < n+2 {
			return fmt.Errorf("%d probes", lan.count()-n)
		}
		return nil
	})
	doTurn("node-1")
	answered(true)

	// Taken while answered: the periodic probe finds it.
	lan.claim(ip, foreign)
	kicked("periodic probe")
	doTurn("node-1")
	inConflict("node-1")
	lan.claim(ip, "")
	kicked("probe after release")
	doTurn("")
	freed()

	// A failover is answered at once, unprobed, whatever the LAN says.
	l.announce(ctx, &turn{answer: false, view: announce.View{Config: cfg}, round: announce.NewRound(announce.View{Config: cfg})})
	answered(false)
	lan.claim(ip, foreign)
	n = lan.count()
	doTurn("node-2")
	answered(true)
	if lan.count() != n {
		t.Errorf("a failover waited for a probe")
	}
}

// TestPlannedHandoverHalves runs both halves of a planned handover
// (handover.go) on fake responders and a fake clock: node-1, cordoned,
// hands its address to node-2.
func TestPlannedHandoverHalves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	services := serviceRecords(k8sfake.NewClientset().CoreV1().Services(""), v1alpha1.DefaultLoadBalancerClass)
	c := fake.NewClientBuilder().WithScheme(kubecr.Scheme()).Build()
	ifaces := map[string][]announce.Iface{
		"node-1": {{Name: "eth0", MAC: "02:00:00:00:00:01"}},
		"node-2": {{Name: "eth0", MAC: "02:00:00:00:00:02"}},
	}
	clock := time.Unix(1000, 0)
	newNode := func(name string) (*layer2, *fakeResponder) {
		r := &fakeResponder{}
		l := newLayer2(layer2Options{
			Node: name, Logger: slog.New(slog.DiscardHandler), Metrics: newMetrics(prometheus.NewRegistry()),
			Recorder: events.NewFakeRecorder(10), Client: crAccess{c}, Services: services,
			Ifaces: ifaces[name], Responders: map[string]responder{"eth0": r},
			Run:   func(f func(context.Context)) { wg.Go(func() { f(ctx) }) },
			Probe: (&fakeLAN{}).probe,
		})
		l.now = func() time.Time { return clock }
		return l, r
	}
	old, oldEth := newNode("node-1")
	next, nextEth := newNode("node-2")

	ip := netip.MustParseAddr("198.51.100.88")
	cfg := l2Config(t)
	turnOf := func(current string, node1Alive bool) *turn {
		v := announce.View{
			Config: cfg,
			Nodes: map[string]announce.Node{
				"node-1": {Name: "node-1", Ready: true, Draining: true},
				"node-2": {Name: "node-2", Ready: true},
			},
			Alive:    map[string]bool{"node-1": node1Alive, "node-2": true},
			Ifaces:   ifaces,
			Current:  map[netip.Addr]string{ip: current},
			Services: []announce.Service{{Key: "shop/web", IPs: []netip.Addr{ip}}},
		}
		return &turn{view: v, round: announce.NewRound(v), answer: true, janitor: janitor(v)}
	}
	step := func(l *layer2, tt *turn) time.Time {
		l.announce(ctx, tt)
		return tt.wake
	}
	mac2, _ := net.ParseMAC("02:00:00:00:00:02")
	naming2 := map[netip.Addr]net.HardwareAddr{ip: mac2}
	eq := cmpopts.EquateComparable(netip.Addr{})

	// node-1 owned it before the cordon.
	oldEth.addrs = []netip.Addr{ip}
	old.owned[ip] = true
	start := clock

	// The cordon: node-1 answers in node-2's name; node-2 waits.
	wakeOld := step(old, turnOf("node-1", true))
	wakeNext := step(next, turnOf("node-1", true))
	if len(oldEth.addrs) != 0 || cmp.Diff(naming2, oldEth.proxied, eq) != "" {
		t.Errorf("handing over: node-1 owns %v, proxies %v; want nothing, %v", oldEth.addrs, oldEth.proxied, naming2)
	}
	if len(nextEth.addrs) != 0 || !wakeNext.Equal(start.Add(handoverDelay)) {
		t.Errorf("taking over: node-2 answers for %v, wakes at %v; want nothing until %v", nextEth.addrs, wakeNext, start.Add(handoverDelay))
	}
	if !wakeOld.Equal(start.Add(handoverLinger)) {
		t.Errorf("node-1 wakes at %v, want %v", wakeOld, start.Add(handoverLinger))
	}

	// node-2 reports itself at once; node-1 lingers, node-2 still waits.
	clock = start.Add(100 * time.Millisecond)
	step(old, turnOf("node-2", true))
	step(next, turnOf("node-2", true))
	if cmp.Diff(naming2, oldEth.proxied, eq) != "" || len(nextEth.addrs) != 0 {
		t.Errorf("reported: node-1 proxies %v, node-2 answers for %v; want %v, nothing", oldEth.proxied, nextEth.addrs, naming2)
	}

	// The delay is over: node-2 answers; node-1 still lingers.
	clock = start.Add(handoverDelay)
	step(next, turnOf("node-2", true))
	step(old, turnOf("node-2", true))
	if cmp.Diff([]netip.Addr{ip}, nextEth.addrs, eq) != "" || cmp.Diff(naming2, oldEth.proxied, eq) != "" {
		t.Errorf("delay over: node-2 answers for %v, node-1 proxies %v", nextEth.addrs, oldEth.proxied)
	}

	// The linger is over (from node-1's last turn seeing the handover).
	clock = start.Add(100*time.Millisecond + handoverLinger)
	step(old, turnOf("node-2", true))
	if len(oldEth.proxied) != 0 {
		t.Errorf("linger over: node-1 still proxies %v", oldEth.proxied)
	}

	// A handover whose old owner dies before the delay is over is a
	// failover: the new owner answers at once.
	other, otherEth := newNode("node-2")
	clock = start.Add(time.Hour)
	step(other, turnOf("node-1", true))
	clock = clock.Add(50 * time.Millisecond)
	step(other, turnOf("node-1", false))
	if cmp.Diff([]netip.Addr{ip}, otherEth.addrs, eq) != "" {
		t.Errorf("old owner dead: node-2 answers for %v, want %v at once", otherEth.addrs, ip)
	}
}
