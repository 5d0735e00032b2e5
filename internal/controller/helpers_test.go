package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/kubecr"
)

var env *apiservertest.Env

// controllerCount numbers the controllers tests start (tests run one at a
// time), so each has its own metric labels.
var controllerCount int

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	apiservertest.Main(m, &env, apiservertest.Options{
		Scheme: kubecr.Scheme(),
		// Dual-stack service CIDRs, so Services can ask for both families.
		APIServerArgs: map[string]string{"service-cluster-ip-range": "10.0.0.0/16,fd00:10::/108"},
	})
}

// startController runs a controller whose legacy ConfigMap lives in ns, and
// stops it when the test ends (or when the returned func is called).
func startController(t *testing.T, ns string) (stop func()) {
	t.Helper()
	return startControllerWith(t, Options{Namespace: ns})
}

func startControllerWith(t *testing.T, opts Options) (stop func()) {
	t.Helper()
	ensureNamespace(t, opts.Namespace)
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	controllerCount++
	opts.instance = fmt.Sprintf("-%d", controllerCount)
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
	c, err := New(env.Config, opts)
	if err != nil {
		t.Fatalf("new controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// cleanupConfig removes every cluster-scoped config object when the test
// ends, finalizers included, so tests sharing the API server start clean.
func cleanupConfig(t *testing.T) {
	t.Cleanup(func() {
		ctx := context.Background()
		var pools v1alpha1.IPPoolList
		if err := env.Client.List(ctx, &pools); err == nil {
			for i := range pools.Items {
				p := &pools.Items[i]
				p.Finalizers = nil
				env.Client.Update(ctx, p)
				env.Client.Delete(ctx, p)
			}
		}
		env.Client.DeleteAllOf(ctx, &v1alpha1.L2Announcement{})
		env.Client.DeleteAllOf(ctx, &v1alpha1.IPReservation{})
	})
}

// cleanupServices deletes the Services of the namespaces when the test ends.
func cleanupServices(t *testing.T, namespaces ...string) {
	t.Cleanup(func() {
		for _, ns := range namespaces {
			var list corev1.ServiceList
			env.Client.List(context.Background(), &list, client.InNamespace(ns))
			for i := range list.Items {
				env.Client.Delete(context.Background(), &list.Items[i])
			}
		}
	})
}

func ipPool(name string, addrs ...string) *v1alpha1.IPPool {
	return &v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.IPPoolSpec{Addresses: addrs},
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// lbService is a LoadBalancer Service with one TCP port per entry of ports.
func lbService(ns, name string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Selector:                      map[string]string{"app": name},
			AllocateLoadBalancerNodePorts: ptr(false),
		},
	}
	if len(ports) == 0 {
		ports = []int32{80}
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: fmt.Sprintf("p%d", p), Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP,
		})
	}
	return svc
}

func ptr[T any](v T) *T { return &v }

// update applies mutate to the latest version of the Service, retrying on
// conflicts as kubectl edit would.
func update(t *testing.T, ns, name string, mutate func(*corev1.Service)) {
	t.Helper()
	for range 20 {
		var svc corev1.Service
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			t.Fatalf("get %s/%s: %v", ns, name, err)
		}
		mutate(&svc)
		err := env.Client.Update(context.Background(), &svc)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("update %s/%s: %v", ns, name, err)
		}
	}
	t.Fatalf("update %s/%s: too many conflicts", ns, name)
}

// svcView is what `kubectl get svc` and `kubectl describe svc` show of the
// allocation.
type svcView struct {
	IPs       []string
	Allocated metav1.ConditionStatus
	Reason    string
	Message   string
}

func view(t *testing.T, ns, name string) svcView {
	t.Helper()
	var svc corev1.Service
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	var v svcView
	for _, in := range svc.Status.LoadBalancer.Ingress {
		v.IPs = append(v.IPs, in.IP)
	}
	if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated); c != nil {
		v.Allocated, v.Reason, v.Message = c.Status, c.Reason, c.Message
	}
	return v
}

// eventually polls cond until it returns "" or the timeout passes; the
// last non-empty answer explains the failure.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v: %s", timeout, last)
}

// waitIPs waits until the Service's status holds exactly ips.
func waitIPs(t *testing.T, ns, name string, ips ...string) svcView {
	t.Helper()
	var v svcView
	eventually(t, 20*time.Second, func() string {
		v = view(t, ns, name)
		if slices.Equal(v.IPs, ips) && (len(ips) == 0 || v.Allocated == metav1.ConditionTrue) {
			return ""
		}
		return fmt.Sprintf("%s/%s: got %+v, want IPs %v", ns, name, v, ips)
	})
	return v
}

// waitPending waits until the Service is refused for reason and returns
// what it shows.
func waitPending(t *testing.T, ns, name, reason string) svcView {
	t.Helper()
	var v svcView
	eventually(t, 20*time.Second, func() string {
		v = view(t, ns, name)
		if v.Allocated == metav1.ConditionFalse && v.Reason == reason && len(v.IPs) == 0 {
			return ""
		}
		return fmt.Sprintf("%s/%s: got %+v, want pending with reason %s", ns, name, v, reason)
	})
	return v
}

// events returns the messages of events about the object, oldest first.
func eventsOf(t *testing.T, ns, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

func waitEvent(t *testing.T, ns, name, substr string) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		evs := eventsOf(t, ns, name)
		for _, e := range evs {
			if strings.Contains(e, substr) {
				return ""
			}
		}
		return fmt.Sprintf("no event on %s/%s containing %q; events: %q", ns, name, substr, evs)
	})
}
