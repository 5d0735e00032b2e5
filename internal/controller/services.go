package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
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
// them, with the IPAllocated condition, to its status.
type serviceReconciler struct {
	client   client.Client
	services *records.Store[*svcRecord]
	// patchStatus applies a strategic merge patch to a Service's status
	// (see statusPatch).
	patchStatus func(ctx context.Context, nn types.NamespacedName, patch []byte) error
	st          *state
	recorder    events.EventRecorder
	log         *slog.Logger
	class       string
	metrics     *metrics
	// wake re-queues Services; set by the controller setup.
	wake func(keys []string)
	// poolsChanged asks the config reconciler to look at pools again: a
	// pool being deleted may now be free.
	poolsChanged func()

	mu         sync.Mutex
	poolsDirty bool // pool usage changed since the last takePoolsDirty
}

// takePoolsDirty reports whether any allocation changed since the last call.
func (r *serviceReconciler) takePoolsDirty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.poolsDirty
	r.poolsDirty = false
	return d
}

func (r *serviceReconciler) markPoolsDirty() {
	r.mu.Lock()
	r.poolsDirty = true
	r.mu.Unlock()
}

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

func (r *serviceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	select {
	case <-r.st.ready:
	case <-ctx.Done():
		return reconcile.Result{}, ctx.Err()
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

	r.st.mu.Lock()
	out := r.st.decide(si, svc.req, svc.reqErr)
	// In the same critical section, before any other Service can be
	// given what this one just gave up.
	heldBack, freed := r.st.holdBack(key, svc.ingress)
	r.st.mu.Unlock()
	if len(freed) > 0 {
		r.wakeWaiting(freed)
	}

	if out.changed {
		r.markPoolsDirty()
	}
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
		r.st.mu.Lock()
		freed := r.st.alloc.Reserved(key)
		r.st.alloc.Reserve(key, nil)
		r.st.mu.Unlock()
		r.wakeWaiting(freed)
	}
	r.metrics.done(key, out.reason)
	if ingressChanged, condChanged, _ := statusDiff(svc, out); ingressChanged || condChanged {
		r.report(svc, out) // not for a write of annotationStatusSharing alone
	}
	return reconcile.Result{}, nil
}

// release frees key's addresses, held or held back, and, if that freed
// any, wakes the Services waiting for one. It serves Services that are
// gone, being deleted or not ironlb's: Restore disregards what their
// status shows, so nothing need wait for it to be cleared.
func (r *serviceReconciler) release(key string) {
	r.st.mu.Lock()
	freed := append(r.st.alloc.IPs(key), r.st.alloc.Reserved(key)...)
	had := len(freed) > 0
	r.st.alloc.Release(key)
	r.st.alloc.Reserve(key, nil)
	delete(r.st.pending, key)
	delete(r.st.displaced, key)
	delete(r.st.requests, key)
	terminating := len(r.st.terminating) > 0
	waiting := r.st.waitingFor(freed)
	r.st.mu.Unlock()
	if had {
		r.markPoolsDirty()
		if terminating && r.poolsChanged != nil {
			r.poolsChanged()
		}
	}
	if len(waiting) > 0 && r.wake != nil {
		r.wake(waiting)
	}
}

// wakeWaiting wakes the Services that may be waiting for one of freed,
// addresses held back (see state.holdBack) and now let go.
func (r *serviceReconciler) wakeWaiting(freed []netip.Addr) {
	r.st.mu.Lock()
	waiting := r.st.waitingFor(freed)
	r.st.mu.Unlock()
	r.markPoolsDirty()
	if len(waiting) > 0 && r.wake != nil {
		r.wake(waiting)
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
		if strings.Contains(out.message, "outside every pool") {
			eventType, reason = corev1.EventTypeWarning, "AddressOutsidePool"
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
