package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/apiclient"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/l2"
	"github.com/ironlb/ironlb/internal/records"
)

// The speaker lists and watches what it reads (the cache, and the record
// stores of Services and EndpointSlices), and gets single objects only
// where said below. The legacy ConfigMap is cached from ironlb's namespace with a
// field selector on its name (New), so the Role can name it, as it names
// the ConfigMap of last good versions (kube.ReadLastGood, uncached): a
// speaker reads no other ConfigMap. It writes ServiceAnnouncements
// (status.go), events (events.k8s.io, whose series are patched), its
// registry Lease (registry.go), its BGPSessionStates (bgpstatus.go) and
// the AddressConflict condition of Services (conflict.go: a patch of the
// status subresource).
// Secrets: it gets the memberlist key (which the controller creates: a
// speaker may create no Secret, see the controller's memberlistkey.go)
// and the BGP passwords the BGPPeers name, whose names the Role cannot
// know: so any Secret of ironlb's namespace, by name only (no list or
// watch), and none elsewhere. The metrics
// endpoint authenticates and authorizes its callers (kube.MetricsServer).
// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=list;watch,resourceNames=config,namespace=ironlb-system
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get,resourceNames=ironlb-last-good,namespace=ironlb-system
// +kubebuilder:rbac:groups=ironlb.io,resources=ippools;l2announcements;bgppeers;bgpannouncements;bfdprofiles,verbs=list;watch
// +kubebuilder:rbac:groups=ironlb.io,resources=serviceannouncements,verbs=list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=ironlb-system
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Defaults for Options' zero values, and how syncs are paced.
const (
	DefaultHandoverGrace = time.Second
	// minSyncInterval spaces syncs caused by API changes, so a burst of
	// Service updates costs a few syncs, not one per update. Membership
	// changes (the failover path) do not wait for it.
	minSyncInterval = 100 * time.Millisecond
	// syncDuty bounds the share of a CPU that syncs caused by API changes
	// take: after a sync that took d, the next one waits at least
	// d*(1/syncDuty - 1). A sync reads every Service; with tens of
	// thousands of them it takes 100-200 ms, and a cluster that size
	// changes some EndpointSlice many times a second, so syncing every
	// minSyncInterval would keep a CPU busy on every node.
	syncDuty = 0.25
	// resyncInterval is a safety net: a sync runs at least this often.
	resyncInterval = 30 * time.Second
)

// Options configures a Speaker. NodeName is required.
type Options struct {
	NodeName string
	// Namespace holds the legacy ConfigMap and the memberlist Secret.
	Namespace     string
	ConfigMapName string
	// LoadBalancerClass is served besides Services with no class.
	LoadBalancerClass string
	// MemberlistBind is where memberlist listens: "" for the node's
	// InternalIP on election.DefaultPort, "IP:PORT", ":PORT" (node's IP),
	// or "off" to run without membership (node readiness alone decides,
	// so a dead node's addresses move only when the API server marks it
	// NotReady, after about 40 s).
	MemberlistBind string
	// SecretName is the Secret holding the memberlist key, which the
	// controller creates with a random key if it is missing.
	SecretName string
	// Interfaces, if set, are the only interfaces answered on.
	Interfaces []string
	// MetricsAddr and HealthAddr: "" or "0" disables. Metrics are served
	// over HTTPS to authorized callers only (kube.MetricsServer); health
	// over plain HTTP, for the kubelet, and says ok or not only.
	MetricsAddr, HealthAddr string
	// PprofAddr is the listen address of net/http/pprof; "" (the default)
	// disables it. Profiles expose memory: keep it on localhost.
	PprofAddr string
	// HandoverGrace is how long a stopping speaker waits after it has
	// left the membership before it closes its responders and BGP
	// sessions, so the new owners' announcements reach the clients and
	// routers first. It answers no ARP or NDP meanwhile: the new owners
	// do. Default DefaultHandoverGrace.
	HandoverGrace time.Duration
	// RestartHold is how long the others keep this node's Layer 2
	// addresses in place when its speaker stops on a Ready node, for the
	// next speaker to take them up again (restart.go); 0 hands them over
	// at every stop.
	RestartHold time.Duration
	// RebalanceInterval is the least time between two moves of the
	// Layer 2 rebalancing, a third of how long the membership and the
	// nodes must be unchanged before one (rebalance.go); 0 turns
	// rebalancing off (the speaker
	// command's default is DefaultRebalanceInterval).
	RebalanceInterval time.Duration
	// Tuning is the failure detector's tuning (zero: election's LAN
	// defaults).
	Tuning election.Tuning
	// KubeProxyHealthURL is this node's kube-proxy health endpoint, polled
	// to tell whether the node forwards (datapath.go): "" for
	// DefaultKubeProxyHealthURL, "off" to announce whatever kube-proxy's
	// health. It needs the membership.
	KubeProxyHealthURL string
	Logger             *slog.Logger
}

// Speaker makes the Service addresses its node may announce reachable:
// a thin loop (sync) that reads the view of the cluster, hands it to one
// announcer per mode, and lets them report.
type Speaker struct {
	opts  Options
	log   *slog.Logger
	cfg   *rest.Config // for the metrics endpoint's reviews
	kc    *apiclient.Client
	cache *apiclient.Cache
	// informers are the cache's, in the order New adds them: the config's
	// and the Nodes' first, then the ServiceAnnouncements' (watch).
	informers []toolscache.SharedIndexInformer
	rec       *apiclient.Recorder
	reg       *prometheus.Registry
	metrics   *metrics

	// services and slices are what the speaker keeps of the cluster's
	// Services and EndpointSlices (records.go).
	services *records.Store[svcRecord]
	slices   *records.Store[sliceRecord]

	kick  chan struct{} // API objects changed
	links chan struct{} // this host's links or addresses changed (watchLinks)
	// eligible: a Node's readiness or labels changed (nodeEligibility),
	// which moves addresses by the API alone: every speaker syncs at once,
	// not spaced like other API changes, so that the old owner stops as
	// the new one starts.
	eligible chan struct{}
	// leaseKick asks keepLease to write this speaker's Lease now: quorate
	// changed (degraded.go).
	leaseKick chan struct{}
	// quorate is whether this speaker answers as one of a majority of the
	// speakers, as its Lease tells the others (degraded.go); degraded
	// holds what the sync loop knows of degraded mode.
	quorate  atomic.Bool
	degraded degradedState

	// The rest is owned by Start's goroutine, which runs the sync loop.
	config configCache
	// answering runs a responder on each interface this node may answer
	// on; its ifaces are what the Layer 2 announcer answers on and what
	// the membership metadata tells the others. refreshIfaces keeps it up
	// to date.
	answering *ifaceSet
	// answeringStats is answering for the metrics' scrapes, which run on
	// goroutines of their own (ifaceSet.packetStats).
	answeringStats atomic.Pointer[ifaceSet]
	l2             *layer2           // announcers[modeLayer2]
	nodeIP         netip.Addr        // this node's InternalIP (IPv4 preferred)
	members        *election.Members // nil: no membership
	announcers     [numModes]announcer
	standing       standing
	// membersDown is set when members stopped for good: node readiness
	// decides from then on (see Start).
	membersDown atomic.Bool
	synced      atomic.Bool // a sync has run: the readiness check passes

	// rest reaches the API server's health endpoint (watchAPI).
	rest rest.Interface
	// api is this speaker's reach of the API server as watchAPI found it
	// (apicut.go), guarded by apiMu; the sync loop publishes it in the
	// membership metadata (apiPublished). Start sets both once the caches
	// have synced, before anything reads them.
	apiMu        sync.Mutex
	api          apiState
	apiPublished apiState
	// overlay, also guarded by apiMu, are the ServiceAnnouncements read
	// from the API server when it answered again, laid over the cache's
	// until overlayUntil or until the cache catches up (overlaid).
	overlay      map[string]v1alpha1.ServiceAnnouncement
	overlayUntil time.Time
	// joined is when this speaker's membership started (its probation,
	// meta.go), set by the sync loop: its predecessor's on this node if
	// that one stopped to restart (resume, restart.go).
	joined time.Time
	resume restartNote
	// apiCut is the sync loop's: the nodes cut off from the API server at
	// the last sync. wakeAt is when a sync is due with no other change: a
	// node may then be cut off, or a member's probation end.
	apiCut map[string]bool
	wakeAt time.Time
	// dataPath is this node's kube-proxy probe and what the sync loop
	// keeps of the nodes' data paths (datapath.go).
	dataPath dataPathSync
	// balance is the sync loop's part of the rebalancing (rebalance.go).
	balance rebalancing
}

// readyErr is the readiness check: ready once the speaker answers for
// what it owns.
func (s *Speaker) readyErr() error {
	if !s.synced.Load() {
		return errors.New("not synced yet")
	}
	return nil
}

// New checks opts and sets the speaker up against the API server at cfg.
// It makes no request and starts nothing; Run does. A speaker that starts
// while the API server is away (a node rebooted during a control-plane
// outage) runs and waits for it, its caches retrying, rather than
// exiting into the kubelet's crash-loop back-off, which grows to 5
// minutes: it must be running the moment the API server is back.
func New(cfg *rest.Config, opts Options) (*Speaker, error) {
	if opts.NodeName == "" {
		return nil, errors.New("speaker: node name is required (--node-name or $NODE_NAME)")
	}
	if opts.Namespace == "" {
		opts.Namespace = kube.DefaultNamespace
	}
	if opts.ConfigMapName == "" {
		opts.ConfigMapName = kube.DefaultConfigMapName
	}
	if opts.LoadBalancerClass == "" {
		opts.LoadBalancerClass = v1alpha1.DefaultLoadBalancerClass
	}
	if opts.SecretName == "" {
		opts.SecretName = kube.DefaultMemberlistSecret
	}
	if opts.HandoverGrace == 0 {
		opts.HandoverGrace = DefaultHandoverGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", opts.NodeName)
	// Every speaker lists and watches every Service and EndpointSlice.
	// Compressed, each list costs the API server gzip time per speaker,
	// and the speaker as much to inflate it, for bandwidth that a
	// cluster's own network does not lack: at 10,000 Services, gzip was
	// a fifth of a speaker's start-up CPU (test/bench/bgpscale profiles).
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	sch := scheme()
	kc, err := apiclient.New(cfg, sch)
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	// Services and EndpointSlices are read in protobuf (records.ClientConfig).
	rc, err := apiclient.New(records.ClientConfig(cfg), sch)
	if err != nil {
		return nil, fmt.Errorf("records client: %w", err)
	}
	// The API server probe (apicut.go) has a connection of its own, over
	// HTTP/1.1. On an HTTP/2 connection that hangs (as the informers' may
	// after the API server has), a timed-out request leaves the connection
	// open, and every probe hangs on it until HTTP/2's health checks
	// close it, 45 s later: the speaker would tell the others it lost an
	// API server that answers. Over HTTP/1.1 a timed-out request closes
	// its connection, and the next probe dials anew. The custom Dial keeps
	// client-go from sharing the informers' cached transport.
	probeCfg := rest.CopyConfig(cfg)
	probeCfg.Dial = (&net.Dialer{Timeout: apiProbeTimeout}).DialContext
	probeCfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	probeCfg.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	probe, err := rest.UnversionedRESTClientFor(probeCfg)
	if err != nil {
		return nil, fmt.Errorf("API server probe client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Speaker{
		services:  serviceRecords(listWatch(rc, &corev1.ServiceList{}), opts.LoadBalancerClass),
		slices:    sliceRecords(listWatch(rc, &discoveryv1.EndpointSliceList{})),
		opts:      opts,
		log:       log,
		cfg:       cfg,
		kc:        kc,
		cache:     apiclient.NewCache(kc),
		rec:       apiclient.NewRecorder(kc, "ironlb-speaker", "ironlb-speaker-"+opts.NodeName, log),
		reg:       reg,
		metrics:   newMetrics(reg),
		kick:      make(chan struct{}, 1),
		links:     make(chan struct{}, 1),
		eligible:  make(chan struct{}, 1),
		leaseKick: make(chan struct{}, 1),
		standing:  standing{seen: map[string]bool{}, majority: true},
		balance:   rebalancing{interval: max(opts.RebalanceInterval, 0)},
		rest:      probe,
	}
	register(reg, prometheus.Collector(newL2Collector(func() map[string]l2.Stats {
		if a := s.answeringStats.Load(); a != nil {
			return a.packetStats()
		}
		return nil
	})))
	// The cache holds the Nodes, slimmed (slim.go), the legacy ConfigMap,
	// by a field selector on its name so that the Role can name it, the
	// config objects and the ServiceAnnouncements.
	informers := []struct {
		obj  runtime.Object
		opts apiclient.InformerOptions
	}{
		{&corev1.Node{}, apiclient.InformerOptions{Transform: slimTransform}},
		{&corev1.ConfigMap{}, apiclient.InformerOptions{Namespace: opts.Namespace, FieldSelector: fields.OneTermEqualSelector("metadata.name", opts.ConfigMapName).String()}},
		{&v1alpha1.IPPool{}, apiclient.InformerOptions{}},
		{&v1alpha1.L2Announcement{}, apiclient.InformerOptions{}},
		{&v1alpha1.BGPPeer{}, apiclient.InformerOptions{}},
		{&v1alpha1.BGPAnnouncement{}, apiclient.InformerOptions{}},
		{&v1alpha1.BFDProfile{}, apiclient.InformerOptions{}},
		{&v1alpha1.ServiceAnnouncement{}, apiclient.InformerOptions{}},
	}
	for _, i := range informers {
		inf, err := s.cache.Add(i.obj, i.opts)
		if err != nil {
			return nil, fmt.Errorf("watch %T: %w", i.obj, err)
		}
		s.informers = append(s.informers, inf)
	}
	return s, nil
}

// scheme holds the kinds the speaker reads and writes, and no other.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, discoveryv1.AddToScheme, coordinationv1.AddToScheme,
		eventsv1.AddToScheme, v1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // static registration; cannot fail at run time
		}
	}
	return s
}

// Run runs the speaker until ctx ends, then hands its addresses over
// (Leave, HandoverGrace, stop answering) and returns. If any of its parts
// fails (a listen address in use, say), it stops them all and returns
// the error.
func (s *Speaker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cache.Start(ctx)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	run("events", func(ctx context.Context) error { s.rec.Start(ctx); return nil })
	run("services", s.services.Run)
	run("endpoint slices", s.slices.Run)
	run("metrics", func(ctx context.Context) error {
		return kube.ServeMetrics(ctx, s.opts.MetricsAddr, s.cfg, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}), s.log)
	})
	run("health", func(ctx context.Context) error { return serveHTTP(ctx, s.opts.HealthAddr, s.healthHandler()) })
	run("pprof", func(ctx context.Context) error { return serveHTTP(ctx, s.opts.PprofAddr, pprofHandler()) })
	run("speaker", s.Start)
	wg.Wait()
	return errors.Join(errs...)
}

// Start runs once the cache is started (Run). It sets the announcers up, runs the sync loop
// until ctx ends, then hands this node's addresses over.
func (s *Speaker) Start(ctx context.Context) error {
	configSynced, allSynced, err := s.watch()
	if err != nil {
		return err
	}
	// Responders and BGP run until the handover is over, not until ctx
	// ends.
	rctx, stopResponders := context.WithCancel(context.WithoutCancel(ctx))
	mctx, stopMembers := context.WithCancel(context.WithoutCancel(ctx))
	// The link watch serves the sync loop only: it stops with it, or
	// when Start fails.
	lctx, stopLinks := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopLinks()
		stopMembers()
		stopResponders()
		wg.Wait()
	}()
	run := func(f func(context.Context)) { wg.Go(func() { f(rctx) }) }

	bgpA := newBGP(bgpOptions{
		Node: s.opts.NodeName, Namespace: s.opts.Namespace,
		Logger: s.log, Metrics: s.metrics,
		Client: s.kc, Run: run,
		RestartTime: s.opts.RestartHold,
	})
	s.announcers[modeBGP] = bgpA
	// Open the BGP sessions as soon as the configuration is read, with no
	// route yet: a session takes GoBGP a second or two to open, which
	// then overlaps reading the cluster's Services and EndpointSlices
	// rather than following it.
	if !toolscache.WaitForCacheSync(ctx.Done(), configSynced) {
		return errors.New("speaker: caches did not sync")
	}
	s.loadLastGood(ctx)
	if v, err := s.configView(ctx); err != nil {
		s.log.Error("read the configuration", "error", err)
	} else {
		t := &turn{view: v, round: announce.NewRound(v), janitor: janitor(v), nodeIP: s.nodeIP}
		bgpA.announce(ctx, t)
		bgpA.report(t)
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), allSynced) {
		return errors.New("speaker: caches did not sync")
	}
	// The API server has answered the caches' lists, maybe only now: a
	// speaker started while it was away waits here. This speaker reaches
	// it since now, not since it started. Counting from its start, one started
	// during an outage would tell the others, as it joins just after the
	// API server is back, that it has reached it for long, and cut off
	// (apicut.go) the speakers that have not yet seen it come back, up to
	// apiProbeEvery+apiProbeTimeout: their addresses would move (CI and
	// the fault suite's row 1, 2026-12-07).
	s.apiMu.Lock()
	s.api = apiState{since: time.Now()}
	s.apiPublished = s.api
	s.apiMu.Unlock()

	// Watch the links before the first read, so that no change falls
	// between the two.
	wg.Go(func() { watchLinks(lctx, s.log, s.kickLinks) })
	s.answering = newIfaceSet(s.log, openL2(s.log), run)
	s.answeringStats.Store(s.answering)
	defer s.answering.close()
	ifis, err := answerable(s.opts.Interfaces)
	if err != nil {
		return err
	}
	if _, err := s.answering.update(ifis); err != nil {
		return fmt.Errorf("speaker: %w", err)
	}
	if len(s.answering.ifaces()) == 0 {
		s.log.Warn("no interface to answer on yet", "interfaces", s.opts.Interfaces)
	}
	s.log.Info("answering on", "interfaces", s.answering.ifaces())
	s.l2 = newLayer2(layer2Options{
		Node: s.opts.NodeName, Logger: s.log, Metrics: s.metrics,
		Recorder: s.rec, Client: s.kc,
		Services: s.services, Ifaces: s.answering.ifaces(), Responders: s.answering.responders(), Run: run,
		Kick: s.kickSync,
	})
	s.announcers[modeLayer2] = s.l2

	// The speakers registered now are among those this one must reach a
	// majority of before it answers (registry.go); then this one
	// registers, or renews its Lease.
	if leases, err := s.listLeases(ctx); err != nil {
		s.log.Warn("could not tell which speakers run; counting only those heard from", "error", err)
	} else {
		s.readRestartNote(leases)
		names := registered(leases, time.Now())
		for _, n := range names {
			s.standing.seen[n] = true
		}
		s.log.Info("speakers registered", "nodes", names)
	}
	wg.Go(func() { s.keepLease(lctx) })
	wg.Go(func() { s.pollRegistry(lctx) })
	wg.Go(func() { s.watchAPI(lctx) })
	if s.dataPath.probe, err = newDataPathProbe(s.opts.KubeProxyHealthURL, s.log, s.kickLinks); err != nil {
		return fmt.Errorf("speaker: %w", err)
	} else if s.dataPath.probe != nil {
		s.dataPath.published = s.dataPath.probe.state()
		wg.Go(func() { s.dataPath.probe.run(lctx) })
	}

	up := make(chan startedMembers)
	if s.opts.MemberlistBind == "off" {
		s.log.Warn("membership turned off: node readiness alone decides who announces")
	} else {
		wg.Go(func() { s.membership(mctx, lctx, up) })
	}
	s.loop(ctx, up)
	stopLinks()

	// A planned stop on a Ready node keeps its addresses here for the
	// next speaker (restart.go). Otherwise, the planned handover: stop
	// answering, then leave, so the others take
	// the addresses over and announce them. In between, for the time a
	// gossip message takes (tens of milliseconds), nobody answers a new
	// ARP or NDP request (the asker retries); the other order would have
	// two nodes answering for as long. Clients that know this node's MAC
	// keep reaching the address here, on the node, throughout.
	if s.members != nil && s.stopToRestart(context.WithoutCancel(ctx)) {
		// The routers keep this node's BGP routes for as long.
		bgpA.stopToRestart()
		// Answer on, in this node's name as the others will, until they
		// have found this member gone.
		stopMembers()
		time.Sleep(s.opts.HandoverGrace)
	} else if s.members != nil {
		held := 0
		for _, a := range s.announcers {
			held += a.handover()
		}
		if held > 0 {
			s.log.Info("handing over", "addresses", held, "grace", s.opts.HandoverGrace)
			for _, a := range s.announcers {
				a.release()
			}
			if s.degraded.active {
				// Gossip carries no leave now: the others learn of it
				// from the registry (degraded.go).
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				if err := s.dropLease(dctx); err != nil {
					s.log.Warn("delete this speaker's Lease", "error", err)
				}
				cancel()
			}
			if err := s.members.Leave(s.opts.HandoverGrace); err != nil {
				s.log.Warn("leave", "error", err)
			}
			time.Sleep(s.opts.HandoverGrace)
		}
	}
	stopMembers()
	stopResponders()
	return nil
}

// loop syncs on every change until ctx ends. It also applies the changes
// of this host's interfaces (refreshIfaces), here rather than in the
// goroutine that hears of them, since the announcers and the interface
// set are this goroutine's alone.
func (s *Speaker) loop(ctx context.Context, up <-chan startedMembers) {
	var changes <-chan struct{}
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	// One sync when the startup grace ends, in case nothing else happens.
	graceOver := time.After(startupGrace)
	var last time.Time
	var spacing time.Duration
	due := true
	for {
		if due {
			start := time.Now()
			if err := s.sync(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("sync", "error", err)
			}
			last = time.Now()
			spacing = syncSpacing(last.Sub(start))
		}
		due = true
		var wake <-chan time.Time // see wakeAt
		if !s.wakeAt.IsZero() {
			wake = time.After(time.Until(s.wakeAt))
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case st := <-up:
			// The membership starts: from now on this speaker elects
			// among its members (membership).
			s.members = st.m
			var resumed bool
			s.joined, resumed = resumedJoin(s.resume, time.Now())
			if resumed {
				s.log.Info("back from a restart in time: taking this node's addresses up again", "joined", s.joined)
			}
			changes = st.m.Changes()
			// This node's data path as first polled (membership waits
			// for it), not the "up" assumed before.
			s.dataPath.published = s.dataPath.probe.state()
			s.publishMeta()
			close(st.taken)
		case <-changes:
		case <-resync.C:
			// A change the link watch missed shows here at the latest.
			s.refreshIfaces()
		case <-graceOver:
		case <-s.links:
			// Most link changes are pods' veths coming and going, which
			// change nothing the speaker answers on: no sync for those.
			// A change of the interfaces syncs at once, not spaced like
			// API changes: it is rare, and an address may move. So does
			// a change of this speaker's reach of the API server.
			due = s.refreshIfaces()
			due = s.publishDataPath(ctx) || due
			due = s.publishAPI() || due
		case <-s.eligible:
			// A node's readiness or labels changed: no spacing (see
			// Speaker.eligible).
		case <-s.kick:
			// Spread syncs out in a burst of API changes, unless the
			// membership or a node's eligibility changes meanwhile.
			if wait := spacing - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-changes:
				case <-s.eligible:
				case <-t.C:
				}
				t.Stop()
			}
		}
	}
}

// syncSpacing is how long after a sync that took took the next sync caused
// by API changes may start (see syncDuty).
func syncSpacing(took time.Duration) time.Duration {
	return max(minSyncInterval, time.Duration(float64(took)*(1/syncDuty-1)))
}

func (s *Speaker) kickSync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// kickLinks tells the sync loop that this host's links or addresses
// changed; it is called from watchLinks' goroutine.
func (s *Speaker) kickLinks() {
	select {
	case s.links <- struct{}{}:
	default:
	}
}

// metaTimeout bounds how long refreshIfaces waits for the new membership
// metadata to go out; it takes a gossip interval (50 ms by default), and
// holds up the sync loop meanwhile.
const metaTimeout = time.Second

// refreshIfaces reads this host's interfaces again and, if the set this
// speaker may answer on changed (LocalIfaces' rules), applies the change:
// it opens and runs a responder on each new interface and closes those of
// interfaces that went away (ifaceSet.update), hands the Layer 2
// announcer the new set, and publishes it as this node's membership
// metadata, so that the other speakers elect this node for an interface
// it gained and no longer for one it lost. It reports whether the set
// changed; the caller then syncs, which is when the election sees it.
// It runs on the sync loop's goroutine.
func (s *Speaker) refreshIfaces() bool {
	ifis, err := answerable(s.opts.Interfaces)
	if err != nil {
		s.log.Error("read the network interfaces", "error", err)
		return false
	}
	changed, err := s.answering.update(ifis)
	if err != nil {
		s.log.Error("open a responder; trying again at the next change or resync", "error", err)
	}
	if !changed {
		return false
	}
	ifaces := s.answering.ifaces()
	s.log.Info("answering on", "interfaces", ifaces)
	s.l2.setIfaces(ifaces, s.answering.responders())
	s.publishMeta()
	return true
}

// publishAPI publishes this speaker's reach of the API server (apiLost)
// in its membership metadata if it changed, and reports whether it did.
func (s *Speaker) publishAPI() bool {
	if s.apiState() == s.apiPublished {
		return false
	}
	s.publishMeta()
	return true
}

// publishMeta gossips this speaker's metadata: the interfaces it answers
// on, whether it lost the API server and whether its node's data path is
// down (as last published: see publishDataPath).
func (s *Speaker) publishMeta() {
	s.apiPublished = s.apiState()
	if s.members == nil {
		return
	}
	m := memberMeta{api: s.apiPublished, joined: s.joined, dataPath: s.dataPath.published, move: s.balance.told()}
	if err := s.members.SetMeta(encodeMeta(s.answering.ifaces(), m, election.MaxMeta), metaTimeout); err != nil {
		s.log.Warn("publish this speaker's metadata to the others", "error", err)
	}
}

// watch makes every change of an object the speaker reads kick a sync.
// It starts the informers without waiting for them: asking the cache for
// an informer waits until it has listed everything, so asking for each in
// turn listed the cluster's Services, then its EndpointSlices, one after
// the other. It returns whether the informers of the configuration and
// the nodes (what decides the BGP sessions) have synced, and whether all
// have.
func (s *Speaker) watch() (config, all toolscache.InformerSynced, err error) {
	h := toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.kickSync() },
		UpdateFunc: func(old, new any) {
			if nodeEligibilityChanged(old, new) {
				select {
				case s.eligible <- struct{}{}:
				default:
				}
			}
			if slimChanged(old, new) {
				s.kickSync()
			}
		},
		DeleteFunc: func(any) { s.kickSync() },
	}
	var synced []toolscache.InformerSynced
	for _, inf := range s.informers {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, nil, err
		}
		synced = append(synced, inf.HasSynced)
	}
	configKinds := len(s.informers) - 1 // all but the ServiceAnnouncements
	kick := func(types.NamespacedName) { s.kickSync() }
	s.services.Subscribe(kick)
	s.slices.Subscribe(kick)
	synced = append(synced, s.services.HasSynced, s.slices.HasSynced)
	allOf := func(fs []toolscache.InformerSynced) toolscache.InformerSynced {
		return func() bool {
			for _, f := range fs {
				if !f() {
					return false
				}
			}
			return true
		}
	}
	return allOf(synced[:configKinds]), allOf(synced), nil
}
