package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/records"
)

// serviceReconciler gives one LoadBalancer Service its addresses and writes
// them, with the IPAllocated condition, to its status. The ledger decides;
// the reconciler reads the Service's record, writes what the ledger
// decided, and requeues what the ledger says a change concerns (wake). It
// keeps no mutable state of its own, so its workers (Options.Workers) run
// Reconcile concurrently, for different Services.
type serviceReconciler struct {
	client   client.Client
	services *records.Store[*svcRecord]
	// patchStatus applies a strategic merge patch to a Service's status
	// (see statusPatch).
	patchStatus func(ctx context.Context, nn types.NamespacedName, patch []byte) error
	ledger      *ledger
	recorder    events.EventRecorder
	log         *slog.Logger
	class       string
	metrics     *metrics
	// queue is this controller's work queue, for Services woken by an
	// address another one freed; configQueue the config controller's, for
	// pool status and finalizers.
	queue, configQueue *workQueue
}

// Services are listed and watched into the record store (svcstore.go) and
// their status patched (serviceAPI.patchStatus); Namespaces are read
// through the cache. Events go through the events.k8s.io API
// (controller-runtime's GetEventRecorder), which patches an event's
// series when it repeats.
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *serviceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := r.ledger.waitRestored(ctx); err != nil {
		return reconcile.Result{}, err
	}
	key := req.String()
	svc, ok := r.services.Get(req.NamespacedName)
	if !ok {
		r.release(key)
		r.metrics.forget(key)
		return reconcile.Result{}, nil
	}
	if svc.deleting {
		r.release(key)
		return reconcile.Result{}, nil
	}
	if !svc.ours(r.class) {
		r.release(key)
		if !svc.isLB {
			return reconcile.Result{}, r.clearStatus(ctx, svc)
		}
		return reconcile.Result{}, nil
	}

	si := serviceInfo{key: key, namespace: svc.nn.Namespace, labels: svc.labels}
	var ns corev1.Namespace
	if err := r.client.Get(ctx, types.NamespacedName{Name: svc.nn.Namespace}, &ns); err == nil {
		si.nsLabels = ns.Labels
	}

	out, heldBack, w := r.ledger.decide(si, svc.req, svc.reqErr, svc.ingress)
	r.wake(w)
	patch, changed := statusPatch(svc, out, time.Now())
	if !changed {
		r.metrics.done(key, "")
		return reconcile.Result{}, nil
	}
	if err := r.patchStatus(ctx, svc.nn, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Our store is behind; the newer object brings a new event.
			return reconcile.Result{RequeueAfter: 50 * time.Millisecond}, nil
		}
		return reconcile.Result{}, fmt.Errorf("write service status: %w", err)
	}
	if heldBack {
		// The status no longer shows what the Service gave up.
		r.wake(r.ledger.statusWritten(key))
	}
	r.metrics.done(key, out.reason)
	if ingressChanged, condChanged, _ := statusDiff(svc, out); ingressChanged || condChanged {
		r.report(svc, out) // not for a write of annotationStatusSharing alone
	}
	return reconcile.Result{}, nil
}

// release frees key's addresses and wakes whom that concerns (see
// ledger.release).
func (r *serviceReconciler) release(key string) {
	r.wake(r.ledger.release(key))
}

// wake acts on what a change to the ledger asks: the Services that may
// take a freed address go to this controller's queue; a pool being deleted
// that may be free sends the config controller its key at once, a change
// of pool usage after poolStatusInterval (the ledger reports only the
// first change since the config reconciler last read the usage, so a
// burst costs one write every interval).
func (r *serviceReconciler) wake(w wakeups) {
	for _, k := range w.services {
		r.queue.add(serviceRequest(k))
	}
	switch {
	case w.deletedPool:
		r.configQueue.add(configKey)
	case w.poolUsage:
		r.configQueue.addAfter(configKey, poolStatusInterval)
	}
}

// clearStatus removes ironlb's addresses and condition from a Service that
// is no longer of type LoadBalancer.
func (r *serviceReconciler) clearStatus(ctx context.Context, svc *svcRecord) error {
	if !svc.hasCond {
		return nil
	}
	if err := r.patchStatus(ctx, svc.nn, clearPatch(svc)); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("clear service status: %w", err)
	}
	return nil
}

// report logs the decision and records an event the operator sees in
// `kubectl describe svc`. svc is the Service as it was before the write.
func (r *serviceReconciler) report(svc *svcRecord, out outcome) {
	key := svc.nn.String()
	if out.reason == v1alpha1.ReasonAllocated {
		r.log.Info("service addresses", "service", key, "ips", out.ips, "message", out.message)
		// A fresh Service's first address is plain to see in its status
		// (EXTERNAL-IP) and condition; an event there would double the API
		// writes of a burst and the memory of the event cache. Events are
		// for what needs explaining: recovery from a failure, a change, an
		// address left outside its pool.
		if !svc.hasCond && !svc.hadIngress {
			return
		}
		eventType, reason := corev1.EventTypeNormal, "IPAllocated"
		if out.warning != "" {
			eventType, reason = corev1.EventTypeWarning, out.warning
		}
		r.recorder.Eventf(svc.object(), nil, eventType, reason, "Allocate", "%s", capitalize(out.message))
		return
	}
	r.log.Info("service pending", "service", key, "reason", out.reason, "message", out.message)
	r.recorder.Eventf(svc.object(), nil, corev1.EventTypeWarning, "AllocationFailed", "Allocate", "%s", out.message)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
