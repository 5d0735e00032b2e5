package controller

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/internal/records"
	"github.com/ironlb/ironlb/internal/version"
)

// Options wire the controller process. The zero value of each field has a
// working default, except that a nil Logger discards logs.
type Options struct {
	// Namespace holds the legacy ConfigMap and the leader-election Lease.
	Namespace string // default kube.DefaultNamespace
	// ConfigMapName is the legacy MetalLB-format ConfigMap.
	ConfigMapName string // default kube.DefaultConfigMapName
	// MemberlistSecret is the Secret in Namespace holding the speakers'
	// memberlist key, which the controller creates if it is missing
	// (memberlistkey.go).
	MemberlistSecret string // default kube.DefaultMemberlistSecret
	// LoadBalancerClass is served besides Services that name no class.
	LoadBalancerClass string // default v1alpha1.DefaultLoadBalancerClass
	// LeaderElection makes the controller take a Lease before it assigns
	// anything, so two replicas never hand out addresses at once.
	LeaderElection bool
	// MetricsAddr and HealthAddr are listen addresses; "0" disables.
	// Metrics are served over HTTPS to authorized callers only
	// (kubecr.MetricsServer); health over plain HTTP, for the kubelet.
	MetricsAddr, HealthAddr string
	// PprofAddr is the listen address of net/http/pprof; "" (the default)
	// or "0" disables it. Profiles reveal memory contents, so bind it to
	// localhost.
	PprofAddr string
	// Workers is how many Services are reconciled at once (default 16).
	Workers int
	Logger  *slog.Logger

	// instance suffixes the controllers' names, so tests that run several
	// controllers in one process can tell their metrics apart.
	instance string
}

// Leader election reads, creates and renews one Lease (leaseName; create
// cannot be limited to a name). The metrics endpoint authenticates and
// authorizes its callers with TokenReviews and SubjectAccessReviews
// (kubecr.MetricsServer).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=create,namespace=ironlb-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;update,resourceNames=ironlb-controller,namespace=ironlb-system
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Controller is the IPAM controller process: caches, reconcilers, leader
// election, metrics and health endpoints.
type Controller struct {
	mgr            manager.Manager
	identity       string // in leader election and the user agent
	leaderElection bool
	log            *slog.Logger
}

// New sets the controller up against the API server at cfg. It starts
// nothing; Run does.
func New(cfg *rest.Config, opts Options) (*Controller, error) {
	if opts.Namespace == "" {
		opts.Namespace = kube.DefaultNamespace
	}
	if opts.ConfigMapName == "" {
		opts.ConfigMapName = kube.DefaultConfigMapName
	}
	if opts.MemberlistSecret == "" {
		opts.MemberlistSecret = kube.DefaultMemberlistSecret
	}
	if opts.LoadBalancerClass == "" {
		opts.LoadBalancerClass = v1alpha1.DefaultLoadBalancerClass
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.HealthAddr == "" {
		opts.HealthAddr = "0"
	}
	log := opts.Logger

	identity, err := newIdentity()
	if err != nil {
		return nil, err
	}
	fence := newWriteFence(identity, opts.LeaderElection)
	cfg = rest.CopyConfig(cfg)
	// The identity in the user agent tells replicas apart in the API
	// server's audit log.
	cfg.UserAgent = fmt.Sprintf("ironlb-controller/%s (%s)", version.Version, identity)
	// Every client below is made from cfg (the manager's, and through
	// mgr.GetConfig the Service API's), so every write passes the fence.
	cfg.Wrap(fence.wrap)
	var lease *resourcelock.LeaseLock
	var lock resourcelock.Interface
	if opts.LeaderElection {
		if lease, err = newLeaseLock(cfg, opts.Namespace, leaseName, identity); err != nil {
			return nil, err
		}
		lock = fence.lock(lease)
	}

	disableDeepCopy := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  kubecr.Scheme(),
		Logger:                  logr.FromSlogHandler(log.Handler()),
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        leaseName,
		LeaderElectionNamespace: opts.Namespace,
		// Our own lock, so that its renewals open the write fence.
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       new(leaseDuration),
		RenewDeadline:                       new(renewDeadline),
		RetryPeriod:                         new(retryPeriod),
		// Hand the Lease over at once on a clean stop, so a rolling update
		// does not wait a lease duration.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       kubecr.MetricsServer(opts.MetricsAddr),
		HealthProbeBindAddress:        opts.HealthAddr,
		PprofBindAddress:              opts.PprofAddr,
		Cache: cache.Options{
			// managedFields are unused here. (Services, whose size matters,
			// are not in this cache at all: see svcRecord.)
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only the one legacy ConfigMap, not every ConfigMap in the cluster.
				&corev1.ConfigMap{}: {
					Namespaces: map[string]cache.Config{opts.Namespace: {}},
					Field:      fields.OneTermEqualSelector("metadata.name", opts.ConfigMapName),
				},
				// Every reconcile reads its Service's namespace labels and
				// nothing else of a Namespace, never modifying them: keep
				// only metadata and hand out the cached object uncopied.
				&corev1.Namespace{}: {
					Transform:             namespaceMetadataOnly,
					UnsafeDisableDeepCopy: &disableDeepCopy,
				},
			},
		},
		// Services live in our own store of records (recordStore), not in the
		// manager's cache; should anything read one through the manager's
		// client, it reads it from the API server rather than silently
		// starting a second, full cache of every Service.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Service{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}

	// One process may build the controller more than once (tests restart
	// it in-process); the name check only guards against two controllers
	// sharing metric names, and ours share them on purpose.
	skipNameValidation := true

	ledger := newLedger()
	m := newMetrics(ctrlmetrics.Registry)
	recorder := mgr.GetEventRecorder("ironlb-controller")
	if lease != nil {
		lease.LockConfig.EventRecorder = leaseEvents{recorder}
	}
	svcAPI, err := newServiceAPI(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	services := svcAPI.recordStore()
	if err := mgr.Add(serviceRecordsRunnable{store: services}); err != nil {
		return nil, err
	}
	// The two controllers' queues, which each reconciler also reaches for
	// the other's keys (see workQueue).
	svcQueue, cfgQueue := &workQueue{}, &workQueue{}

	svcRec := &serviceReconciler{
		client: mgr.GetClient(), services: services, patchStatus: svcAPI.patchStatus, ledger: ledger, recorder: recorder, log: log,
		class: opts.LoadBalancerClass, metrics: m, queue: svcQueue, configQueue: cfgQueue,
	}
	saved := &lastGood{reader: mgr.GetAPIReader(), client: mgr.GetClient(), namespace: opts.Namespace, log: log}
	cfgRec := &configReconciler{
		client: mgr.GetClient(), ledger: ledger, recorder: recorder, log: log,
		configMap: types.NamespacedName{Namespace: opts.Namespace, Name: opts.ConfigMapName},
		metrics:   m, services: services, serviceQueue: svcQueue, lastGood: saved,
	}

	err = builder.ControllerManagedBy(mgr).
		Named("service"+opts.instance).
		// Every Service in the store as it starts, then every change: this
		// covers any wake-up asked before the queue existed.
		WatchesRawSource(svcQueue.source(enqueueServices(services, m))).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(servicesInNamespace(services))).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: opts.Workers, SkipNameValidation: &skipNameValidation}).
		Complete(svcRec)
	if err != nil {
		return nil, fmt.Errorf("set up service controller: %w", err)
	}

	toConfig := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{configKey}
	})
	b := builder.ControllerManagedBy(mgr).Named("config"+opts.instance).
		// One run as it starts, whatever config objects exist: it writes
		// the restored pool usage, and covers any wake-up asked before the
		// queue existed.
		WatchesRawSource(cfgQueue.source(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(configKey)
			return nil
		})).
		Watches(&corev1.ConfigMap{}, toConfig).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &skipNameValidation})
	// Only spec, label and deletion changes matter (deletion bumps a custom
	// resource's generation); the controller's own status and finalizer
	// writes must not wake it again, or pool usage would be rewritten as
	// fast as the API server answers.
	specChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	for _, o := range []client.Object{&v1alpha1.IPPool{}, &v1alpha1.IPReservation{}, &v1alpha1.L2Announcement{}, &v1alpha1.BGPPeer{},
		&v1alpha1.BGPAnnouncement{}, &v1alpha1.BFDProfile{}} {
		b = b.Watches(o, toConfig, specChanged)
	}
	if err := b.Complete(cfgRec); err != nil {
		return nil, fmt.Errorf("set up config controller: %w", err)
	}

	restore := &restorer{cache: mgr.GetCache(), services: services, ledger: ledger, log: log, configMap: cfgRec.configMap, class: opts.LoadBalancerClass, lastGood: saved}
	if err := mgr.Add(restore); err != nil {
		return nil, err
	}
	key := &memberlistKey{reader: mgr.GetAPIReader(), client: mgr.GetClient(),
		name: types.NamespacedName{Namespace: opts.Namespace, Name: opts.MemberlistSecret}, log: log}
	if err := mgr.Add(key); err != nil {
		return nil, err
	}
	return &Controller{mgr: mgr, identity: identity, leaderElection: opts.LeaderElection, log: log}, nil
}

// Run runs the controller until ctx is done. With leader election it
// assigns nothing until it holds the Lease.
func (c *Controller) Run(ctx context.Context) error {
	c.log.Info("controller identity", "identity", c.identity, "leaderElection", c.leaderElection)
	return c.mgr.Start(ctx)
}

// servicesInNamespace maps a Namespace change (its labels may select pools)
// to its LoadBalancer Services.
func servicesInNamespace(services *records.Store[*svcRecord]) handler.MapFunc {
	return func(_ context.Context, o client.Object) []reconcile.Request {
		var out []reconcile.Request
		for _, s := range selectRecords(services, func(s *svcRecord) bool { return s.isLB && s.nn.Namespace == o.GetName() }) {
			out = append(out, reconcile.Request{NamespacedName: s.nn})
		}
		return out
	}
}

// namespaceMetadataOnly is the cache transform for Namespaces: the
// controller reads only their labels.
func namespaceMetadataOnly(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil // a tombstone
	}
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Generation: ns.Generation,
		CreationTimestamp: ns.CreationTimestamp, DeletionTimestamp: ns.DeletionTimestamp, Labels: ns.Labels,
	}}, nil
}

func cutKey(k string) (ns, name string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return "", k, false
}
