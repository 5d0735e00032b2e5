package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/internal/records"
)

// PoolProtectionFinalizer keeps an IPPool whose addresses are still held by
// Services from disappearing: deletion waits until they are released, so no
// Service is ever silently left with an address from a pool that is gone.
const PoolProtectionFinalizer = "ironlb.io/pool-protection"

// Condition types on IPPool status besides Valid.
const (
	// PoolConditionDeleting is True while a deleted pool waits for the
	// Services holding its addresses.
	PoolConditionDeleting = "Deleting"
)

// configKey is the single work-queue key of the config reconciler: config
// is always rebuilt whole, so one key stands for "something changed".
var configKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "config"}}

// configReconciler turns every config object into the Config in force
// (ledger.setConfig) and reports on each object whether it is valid; it
// keeps the pool-protection finalizers, writes pool usage to the IPPools'
// status and whether each IPReservation is bound to its status. It runs with one worker, on one key (configKey): its
// watches, a pool being deleted that may be free, and a change of pool
// usage (see serviceReconciler.wake) all mean "look at the config again".
type configReconciler struct {
	client    client.Client
	ledger    *ledger
	recorder  events.EventRecorder
	log       *slog.Logger
	configMap types.NamespacedName
	metrics   *metrics
	// services and serviceQueue serve requeueServices.
	services     *records.Store[*svcRecord]
	serviceQueue *workQueue
	lastGood     *lastGood

	// Owned by Reconcile (one worker): what the last run saw, to skip work
	// when only pool usage changed.
	lastInput string
}

// The config objects are read through the cache (list, watch); the
// controller writes their status (Status().Update) and an IPPool's
// finalizer (a merge patch of the object).
// The legacy ConfigMap is read through the cache too, which lists and
// watches ironlb's namespace with a field selector on its name
// (controller.go), so the Role can name it: list and watch requests with a
// metadata.name field selector are authorized against resourceNames. The
// name is the default of --config-map.
// +kubebuilder:rbac:groups=ironlb.io,resources=ippools;ipreservations;l2announcements;bgppeers;bgpannouncements;bfdprofiles,verbs=list;watch
// +kubebuilder:rbac:groups=ironlb.io,resources=ippools,verbs=patch
// +kubebuilder:rbac:groups=ironlb.io,resources=ippools/status;ipreservations/status;l2announcements/status;bgppeers/status;bgpannouncements/status;bfdprofiles/status,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=list;watch,resourceNames=config,namespace=ironlb-system

func (r *configReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	if err := r.ledger.waitRestored(ctx); err != nil {
		return reconcile.Result{}, err
	}
	in, err := kube.ReadInput(ctx, kubecr.Reader(r.client), r.configMap)
	if err != nil {
		return reconcile.Result{}, err
	}
	if in.Reservations, err = readReservations(ctx, r.client); err != nil {
		return reconcile.Result{}, err
	}
	fp := kube.InputVersion(in) + reservationsVersion(in.Reservations)
	if fp != r.lastInput {
		problems := r.apply(in)
		if err := r.writeValidity(ctx, in, problems); err != nil {
			return reconcile.Result{}, err
		}
		if err := r.lastGood.save(ctx, in, problems); err != nil {
			return reconcile.Result{}, err
		}
		r.lastInput = fp
		r.requeueServices()
	}
	if err := r.protectPools(ctx, in.Pools); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.writePoolStatus(ctx, in.Pools); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.writeReservationStatus(ctx, in.Reservations, r.ledger.reservationStates())
}

// requeueServices adds every LoadBalancer Service to the service
// controller's queue, so that pending ones see the new pools.
func (r *configReconciler) requeueServices() {
	for _, s := range selectRecords(r.services, func(s *svcRecord) bool { return s.isLB }) {
		r.serviceQueue.add(reconcile.Request{NamespacedName: s.nn})
	}
}

// apply builds the new Config and puts it in force.
func (r *configReconciler) apply(in config.Input) []config.Problem {
	problems := r.ledger.setConfig(in)
	for _, p := range problems {
		r.log.Warn("config problem", "object", p.Object.String(), "field", p.Field, "outcome", p.Outcome.String(), "message", p.Message)
	}
	r.metrics.configProblems.Set(float64(len(problems)))
	return problems
}

// writeValidity sets the Valid condition on every config object and records
// an event for each problem that is new. The legacy ConfigMap has no status,
// so its problems go to events on it and to the log.
func (r *configReconciler) writeValidity(ctx context.Context, in config.Input, problems []config.Problem) error {
	byObj := config.ProblemsByObject(problems)
	if in.ConfigMap != nil {
		ref := config.ObjectRef{Kind: "ConfigMap", Namespace: in.ConfigMap.Namespace, Name: in.ConfigMap.Name}
		for _, p := range byObj[ref] {
			r.recorder.Eventf(in.ConfigMap, nil, corev1.EventTypeWarning, "InvalidConfig", "Validate", "%s", p.Error())
		}
	}
	type statusObj struct {
		obj   client.Object
		conds *[]metav1.Condition
		gen   *int64
	}
	var objs []statusObj
	for i := range in.Pools {
		p := &in.Pools[i]
		objs = append(objs, statusObj{p, &p.Status.Conditions, &p.Status.ObservedGeneration})
	}
	for i := range in.L2 {
		o := &in.L2[i]
		objs = append(objs, statusObj{o, &o.Status.Conditions, &o.Status.ObservedGeneration})
	}
	for i := range in.BGPPeers {
		o := &in.BGPPeers[i]
		objs = append(objs, statusObj{o, &o.Status.Conditions, &o.Status.ObservedGeneration})
	}
	for i := range in.BGPAnnouncements {
		o := &in.BGPAnnouncements[i]
		objs = append(objs, statusObj{o, &o.Status.Conditions, &o.Status.ObservedGeneration})
	}
	for i := range in.BFDProfiles {
		o := &in.BFDProfiles[i]
		objs = append(objs, statusObj{o, &o.Status.Conditions, &o.Status.ObservedGeneration})
	}
	for i := range in.Reservations {
		o := &in.Reservations[i]
		objs = append(objs, statusObj{o, &o.Status.Conditions, &o.Status.ObservedGeneration})
	}
	for _, o := range objs {
		ref := config.ObjectRef{Kind: kindOf(o.obj), Name: o.obj.GetName()}
		cond := validCondition(byObj[ref], o.obj.GetGeneration())
		changed := meta.SetStatusCondition(o.conds, cond)
		if *o.gen != o.obj.GetGeneration() {
			*o.gen, changed = o.obj.GetGeneration(), true
		}
		if !changed {
			continue
		}
		if cond.Status == metav1.ConditionFalse || cond.Reason == v1alpha1.ReasonMissingReference {
			r.recorder.Eventf(o.obj, nil, corev1.EventTypeWarning, cond.Reason, "Validate", "%s", cond.Message)
		}
		if err := r.client.Status().Update(ctx, o.obj); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("write status of %s: %w", ref, err)
		}
	}
	return nil
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *v1alpha1.IPPool:
		return "IPPool"
	case *v1alpha1.L2Announcement:
		return "L2Announcement"
	case *v1alpha1.BGPPeer:
		return "BGPPeer"
	case *v1alpha1.BGPAnnouncement:
		return "BGPAnnouncement"
	case *v1alpha1.BFDProfile:
		return "BFDProfile"
	case *v1alpha1.IPReservation:
		return "IPReservation"
	}
	return fmt.Sprintf("%T", o)
}

// validCondition summarises an object's problems as its Valid condition.
func validCondition(ps []config.Problem, gen int64) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
		Message: "In force", ObservedGeneration: gen}
	var msgs []string
	for _, p := range ps {
		msgs = append(msgs, p.Error())
		if p.Outcome != config.Warning {
			c.Status, c.Reason = metav1.ConditionFalse, p.Reason
		} else if c.Status == metav1.ConditionTrue {
			c.Reason = p.Reason
		}
	}
	if len(msgs) > 0 {
		c.Message = strings.Join(msgs, "; ")
	}
	return c
}

// protectPools adds the pool-protection finalizer to every IPPool and lifts
// it from a deleted pool once no Service holds its addresses.
func (r *configReconciler) protectPools(ctx context.Context, pools []v1alpha1.IPPool) error {
	for i := range pools {
		p := &pools[i]
		deleting := !p.DeletionTimestamp.IsZero()
		has := controllerutil.ContainsFinalizer(p, PoolProtectionFinalizer)
		switch {
		case !deleting && !has:
			patch := client.MergeFrom(p.DeepCopy())
			controllerutil.AddFinalizer(p, PoolProtectionFinalizer)
			if err := r.client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("add finalizer to IPPool/%s: %w", p.Name, err)
			}
		case deleting && has:
			if len(r.ledger.poolUsers(p.Name)) > 0 {
				continue // writePoolStatus says who holds it up
			}
			patch := client.MergeFrom(p.DeepCopy())
			controllerutil.RemoveFinalizer(p, PoolProtectionFinalizer)
			if err := r.client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("remove finalizer from IPPool/%s: %w", p.Name, err)
			}
			r.log.Info("pool released", "pool", p.Name)
		}
	}
	return nil
}

// writePoolStatus writes each IPPool's address counts and, for a pool being
// deleted (in the Config in force, which apply made of the same objects),
// which Services hold it up. Metrics get the same counts.
func (r *configReconciler) writePoolStatus(ctx context.Context, pools []v1alpha1.IPPool) error {
	stats, users := r.ledger.poolUsage()
	r.metrics.setPools(stats)

	for i := range pools {
		p := &pools[i]
		st, ok := stats[p.Name]
		updated := p.DeepCopy()
		if ok {
			updated.Status.IPv4 = counts(st, ipam.IPv4)
			updated.Status.IPv6 = counts(st, ipam.IPv6)
		}
		if u := users[p.Name]; len(u) > 0 {
			meta.SetStatusCondition(&updated.Status.Conditions, metav1.Condition{
				Type: PoolConditionDeleting, Status: metav1.ConditionTrue, Reason: "WaitingForServices",
				Message: fmt.Sprintf("Deletion waits until %d Service(s) release their addresses from this pool: %s. Delete them, switch them away from type LoadBalancer, or give them addresses from another pool.",
					len(u), strings.Join(firstN(u, 10), ", ")),
				ObservedGeneration: p.Generation,
			})
		}
		if equalPoolStatus(p.Status, updated.Status) {
			continue
		}
		if err := r.client.Status().Update(ctx, updated); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("write status of IPPool/%s: %w", p.Name, err)
		}
	}
	return nil
}

func counts(st ipam.Stats, f ipam.Family) *v1alpha1.AddressCounts {
	total, ok := st.Total[f]
	if !ok || total == 0 {
		return nil
	}
	return &v1alpha1.AddressCounts{
		Total:    strconv.FormatUint(total, 10),
		Used:     int64(st.Used[f]),
		Reserved: int64(st.Reserved[f]),
		Free:     strconv.FormatUint(st.Free[f], 10),
	}
}

func equalPoolStatus(a, b v1alpha1.IPPoolStatus) bool {
	eq := func(x, y *v1alpha1.AddressCounts) bool {
		return (x == nil) == (y == nil) && (x == nil || *x == *y)
	}
	if !eq(a.IPv4, b.IPv4) || !eq(a.IPv6, b.IPv6) || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
}
