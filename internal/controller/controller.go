package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// Options wire the controller process. The zero value of each field has a
// working default, except that a nil Logger discards logs.
type Options struct {
	// Namespace holds the legacy ConfigMap and the leader-election Lease.
	Namespace string // default "ironlb-system"
	// ConfigMapName is the legacy MetalLB-format ConfigMap.
	ConfigMapName string // default "config"
	// LoadBalancerClass is served besides Services that name no class.
	LoadBalancerClass string // default v1alpha1.DefaultLoadBalancerClass
	// LeaderElection makes the controller take a Lease before it assigns
	// anything, so two replicas never hand out addresses at once.
	LeaderElection bool
	// MetricsAddr and HealthAddr are listen addresses; "0" disables.
	MetricsAddr, HealthAddr string
	// Workers is how many Services are reconciled at once (default 16).
	Workers int
	Logger  *slog.Logger

	// instance suffixes the controllers' names, so tests that run several
	// controllers in one process can tell their metrics apart.
	instance string
}

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=ironlb-system

// Controller is the IPAM controller process: caches, reconcilers, leader
// election, metrics and health endpoints.
type Controller struct {
	mgr manager.Manager
}

// Scheme returns a scheme with the core types and ironlb's CRDs.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail at run time
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// New sets the controller up against the API server at cfg. It starts
// nothing; Run does.
func New(cfg *rest.Config, opts Options) (*Controller, error) {
	if opts.Namespace == "" {
		opts.Namespace = "ironlb-system"
	}
	if opts.ConfigMapName == "" {
		opts.ConfigMapName = "config"
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

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  logr.FromSlogHandler(log.Handler()),
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "ironlb-controller",
		LeaderElectionNamespace: opts.Namespace,
		// Hand the Lease over at once on a clean stop, so a rolling update
		// does not wait a lease duration.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		Cache: cache.Options{
			// managedFields are a third of a Service's size and unused here.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only the one legacy ConfigMap, not every ConfigMap in the cluster.
				&corev1.ConfigMap{}: {
					Namespaces: map[string]cache.Config{opts.Namespace: {}},
					Field:      fields.OneTermEqualSelector("metadata.name", opts.ConfigMapName),
				},
			},
		},
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

	st := newState()
	m := newMetrics(ctrlmetrics.Registry)
	recorder := mgr.GetEventRecorder("ironlb-controller")
	svcWake := make(chan event.TypedGenericEvent[*corev1.Service], 1024)
	cfgWake := make(chan event.GenericEvent, 1)

	wake := func(keys []string) {
		for _, k := range keys {
			ns, name, _ := cutKey(k)
			svcWake <- event.TypedGenericEvent[*corev1.Service]{Object: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
		}
	}
	wakeAll := func(ctx context.Context) {
		var list corev1.ServiceList
		if err := mgr.GetCache().List(ctx, &list); err != nil {
			log.Error("list services to re-evaluate", "error", err)
			return
		}
		for i := range list.Items {
			if list.Items[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
				svcWake <- event.TypedGenericEvent[*corev1.Service]{Object: &list.Items[i]}
			}
		}
	}
	wakeConfig := func() {
		select {
		case cfgWake <- event.GenericEvent{Object: &corev1.ConfigMap{}}:
		default: // one pending wake-up is enough
		}
	}

	svcRec := &serviceReconciler{
		client: mgr.GetClient(), st: st, recorder: recorder, log: log,
		class: opts.LoadBalancerClass, metrics: m, wake: wake,
		poolsChanged: wakeConfig,
	}
	cfgRec := &configReconciler{
		client: mgr.GetClient(), st: st, recorder: recorder, log: log,
		configMap: types.NamespacedName{Namespace: opts.Namespace, Name: opts.ConfigMapName},
		metrics:   m, wakeAll: wakeAll,
	}

	seen := handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(_ context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueSeen(q, m, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueSeen(q, m, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueSeen(q, m, e.Object)
		},
	}
	err = builder.ControllerManagedBy(mgr).
		Named("service"+opts.instance).
		Watches(&corev1.Service{}, seen).
		WatchesRawSource(source.Channel(svcWake, &handler.TypedEnqueueRequestForObject[*corev1.Service]{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(servicesInNamespace(mgr.GetCache()))).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: opts.Workers, SkipNameValidation: &skipNameValidation}).
		Complete(svcRec)
	if err != nil {
		return nil, fmt.Errorf("set up service controller: %w", err)
	}

	toConfig := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{configKey}
	})
	b := builder.ControllerManagedBy(mgr).Named("config"+opts.instance).
		Watches(&corev1.ConfigMap{}, toConfig).
		WatchesRawSource(source.Channel(cfgWake, toConfig)).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &skipNameValidation})
	// Only spec, label and deletion changes matter (deletion bumps a custom
	// resource's generation); the controller's own status and finalizer
	// writes must not wake it again, or pool usage would be rewritten as
	// fast as the API server answers.
	specChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	for _, o := range []client.Object{&v1alpha1.IPPool{}, &v1alpha1.L2Announcement{}, &v1alpha1.BGPPeer{},
		&v1alpha1.BGPAnnouncement{}, &v1alpha1.BFDProfile{}} {
		b = b.Watches(o, toConfig, specChanged)
	}
	if err := b.Complete(cfgRec); err != nil {
		return nil, fmt.Errorf("set up config controller: %w", err)
	}

	restore := &restorer{cache: mgr.GetCache(), st: st, log: log, configMap: cfgRec.configMap, metrics: m, class: opts.LoadBalancerClass}
	if err := mgr.Add(restore); err != nil {
		return nil, err
	}
	// Pool usage changes with every allocation; write it to IPPool status
	// and metrics at most every few seconds rather than per Service.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if svcRec.takePoolsDirty() {
					wakeConfig()
				}
			}
		}
	})); err != nil {
		return nil, err
	}
	return &Controller{mgr: mgr}, nil
}

// Run runs the controller until ctx is done. With leader election it
// assigns nothing until it holds the Lease.
func (c *Controller) Run(ctx context.Context) error {
	return c.mgr.Start(ctx)
}

func enqueueSeen(q workqueue.TypedRateLimitingInterface[reconcile.Request], m *metrics, o client.Object) {
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
	m.saw(req.String())
	q.Add(req)
}

// servicesInNamespace maps a Namespace change (its labels may select pools)
// to its LoadBalancer Services.
func servicesInNamespace(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list corev1.ServiceList
		if err := c.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, s := range list.Items {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
			}
		}
		return out
	}
}

func cutKey(k string) (ns, name string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return "", k, false
}
