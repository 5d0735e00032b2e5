package speaker

import (
	"context"
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
	"github.com/ironlb/ironlb/internal/kube"
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
	services := serviceRecords(k8sfake.NewClientset(web).CoreV1(), v1alpha1.DefaultLoadBalancerClass)
	wg.Go(func() { services.Run(ctx) })
	select {
	case <-services.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("records did not sync")
	}

	c := fake.NewClientBuilder().WithScheme(kube.Scheme()).Build()
	rec := events.NewFakeRecorder(10)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	eth0 := &fakeResponder{}
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	l := newLayer2(layer2Options{
		Node: "node-1", Logger: slog.New(slog.DiscardHandler), Metrics: m, Recorder: rec, Client: c,
		Services: services, Ifaces: ifaces, Responders: map[string]responder{"eth0": eth0},
		Run: func(f func(context.Context)) { wg.Go(func() { f(ctx) }) },
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
