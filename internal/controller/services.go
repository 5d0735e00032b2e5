package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// serviceReconciler gives one LoadBalancer Service its addresses and writes
// them, with the IPAllocated condition, to its status.
type serviceReconciler struct {
	client   client.Client
	st       *state
	recorder events.EventRecorder
	log      *slog.Logger
	class    string
	metrics  *metrics
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
	var svc corev1.Service
	if err := r.client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.release(key)
			r.metrics.forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get service: %w", err)
	}
	if !svc.DeletionTimestamp.IsZero() {
		r.release(key)
		return reconcile.Result{}, nil
	}
	if !r.ours(&svc) {
		r.release(key)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			return reconcile.Result{}, r.clearStatus(ctx, &svc)
		}
		return reconcile.Result{}, nil
	}

	si := serviceInfo{key: key, namespace: svc.Namespace, labels: svc.Labels}
	var ns corev1.Namespace
	if err := r.client.Get(ctx, types.NamespacedName{Name: svc.Namespace}, &ns); err == nil {
		si.nsLabels = ns.Labels
	}
	request, reqErr := parseRequest(&svc)

	r.st.mu.Lock()
	out := r.st.decide(si, request, reqErr)
	r.st.mu.Unlock()

	if out.changed {
		r.markPoolsDirty()
	}
	updated := svc.DeepCopy()
	if !setStatus(updated, out) {
		r.metrics.done(key, "")
		return reconcile.Result{}, nil
	}
	if err := r.client.Status().Update(ctx, updated); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Our cache is behind; the newer object brings a new event.
			return reconcile.Result{RequeueAfter: 50 * time.Millisecond}, nil
		}
		return reconcile.Result{}, fmt.Errorf("write service status: %w", err)
	}
	r.metrics.done(key, out.reason)
	r.report(&svc, out)
	return reconcile.Result{}, nil
}

// ours reports whether ironlb serves svc: type LoadBalancer with no
// loadBalancerClass or ours.
func (r *serviceReconciler) ours(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	return svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == r.class
}

// release frees key's addresses and, if that freed any, wakes the Services
// waiting for one.
func (r *serviceReconciler) release(key string) {
	r.st.mu.Lock()
	had := len(r.st.alloc.IPs(key)) > 0
	r.st.alloc.Release(key)
	delete(r.st.pending, key)
	delete(r.st.displaced, key)
	delete(r.st.requests, key)
	terminating := len(r.st.terminating) > 0
	var waiting []string
	if had {
		for k := range r.st.pending {
			waiting = append(waiting, k)
		}
	}
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

// clearStatus removes ironlb's addresses and condition from a Service that
// is no longer of type LoadBalancer.
func (r *serviceReconciler) clearStatus(ctx context.Context, svc *corev1.Service) error {
	if meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) == nil {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	meta.RemoveStatusCondition(&updated.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
	if err := r.client.Status().Update(ctx, updated); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("clear service status: %w", err)
	}
	return nil
}

// report logs the decision and records an event the operator sees in
// `kubectl describe svc`.
func (r *serviceReconciler) report(svc *corev1.Service, out outcome) {
	key := svc.Namespace + "/" + svc.Name
	if out.reason == ReasonAllocated {
		r.log.Info("service addresses", "service", key, "ips", out.ips, "message", out.message)
		// A fresh Service's first address is plain to see in its status
		// (EXTERNAL-IP) and condition; an event there would double the API
		// writes of a burst and the memory of the event cache. Events are
		// for what needs explaining: recovery from a failure, a change, an
		// address left outside its pool.
		if meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) == nil &&
			len(svc.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		eventType, reason := corev1.EventTypeNormal, "IPAllocated"
		if strings.Contains(out.message, "outside every pool") {
			eventType, reason = corev1.EventTypeWarning, "AddressOutsidePool"
		}
		r.recorder.Eventf(svc, nil, eventType, reason, "Allocate", "%s", capitalize(out.message))
		return
	}
	r.log.Info("service pending", "service", key, "reason", out.reason, "message", out.message)
	r.recorder.Eventf(svc, nil, corev1.EventTypeWarning, "AllocationFailed", "Allocate", "%s", out.message)
}

// setStatus writes out into svc's status and reports whether anything changed.
func setStatus(svc *corev1.Service, out outcome) bool {
	vip := corev1.LoadBalancerIPModeVIP
	var ingress []corev1.LoadBalancerIngress
	for _, a := range out.ips {
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: &vip})
	}
	changed := !ingressEqual(svc.Status.LoadBalancer.Ingress, ingress)
	if changed {
		svc.Status.LoadBalancer.Ingress = ingress
	}
	cond := metav1.Condition{
		Type:               v1alpha1.ServiceConditionIPAllocated,
		Status:             metav1.ConditionTrue,
		Reason:             out.reason,
		Message:            capitalize(out.message),
		ObservedGeneration: svc.Generation,
	}
	if out.reason != ReasonAllocated {
		cond.Status = metav1.ConditionFalse
	}
	if meta.SetStatusCondition(&svc.Status.Conditions, cond) {
		changed = true
	}
	return changed
}

func ingressEqual(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == "" && y.Hostname == "" && len(x.Ports) == 0 &&
			(x.IPMode == nil) == (y.IPMode == nil) && (x.IPMode == nil || *x.IPMode == *y.IPMode)
	})
}

// statusIPs reads the addresses in svc's status, ignoring what does not parse.
func statusIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
