package controller

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

var (
	randomOps  = flag.Int("random.ops", 2000, "operations in TestRandomized")
	randomSeed = flag.Uint64("random.seed", 0, "seed for TestRandomized (0: time-based, printed)")
)

// TestRandomized interleaves Service creates, updates and deletes, config
// edits and controller restarts on the real API server, and after every
// batch, once the controller has settled, checks the invariants users rely
// on: no address is held by two Services that may not share it, every
// pending Service says why, and no Service's address changed unless its own
// spec did.
func TestRandomized(t *testing.T) {
	ns := "random"
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -random.seed %d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ops := *randomOps
	if testing.Short() {
		ops = 200
	}

	stop := startController(t, ns)
	cleanupConfig(t)
	cleanupServices(t, ns)
	main := ipPool("r-main", "198.51.100.0/28")
	spare := ipPool("r-spare", "198.51.100.16/29")
	spare.Spec.AutoAssign = ptr(false)
	create(t, main, spare)

	w := &world{t: t, ns: ns, rng: rng, last: map[types.UID]snapshot{}, touched: map[string]bool{}}
	const batch = 10
	for done := 0; done < ops; {
		for i := 0; i < batch && done < ops; i++ {
			w.step()
			done++
		}
		if rng.IntN(25) == 0 {
			stop()
			stop = startController(t, ns)
			w.log("restart controller")
		}
		w.settleAndCheck()
		if t.Failed() {
			t.Fatalf("invariant broken after %d operations; recent operations:\n%s", done, strings.Join(w.history, "\n"))
		}
	}
}

type world struct {
	t       *testing.T
	ns      string
	rng     *rand.Rand
	history []string
	// last is each Service's state at the previous settled check.
	last map[types.UID]snapshot
	// touched are the Services whose spec an operation changed since the
	// last check (it may have changed and changed back).
	touched map[string]bool
}

type snapshot struct {
	spec string // what of its own spec decides its addresses
	ips  []string
}

func (w *world) log(format string, args ...any) {
	w.history = append(w.history, fmt.Sprintf(format, args...))
	if len(w.history) > 30 {
		w.history = w.history[1:]
	}
}

func (w *world) name() string { return fmt.Sprintf("s%02d", w.rng.IntN(24)) }

func (w *world) addr() string {
	// Mostly inside the pools, sometimes outside every pool.
	return fmt.Sprintf("198.51.100.%d", w.rng.IntN(26))
}

func (w *world) randomize(s *corev1.Service) {
	r := w.rng
	s.Spec.LoadBalancerIP = ""
	s.Annotations = map[string]string{}
	switch r.IntN(10) {
	case 0, 1, 2:
		s.Spec.LoadBalancerIP = w.addr()
	case 3:
		s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = w.addr()
	case 4:
		s.Annotations[v1alpha1.AnnotationAddressPool] = []string{"r-main", "r-spare", "missing"}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		s.Annotations[v1alpha1.AnnotationAllowSharedIP] = []string{"k1", "k2"}[r.IntN(2)]
	}
	s.Spec.Ports[0].Port = []int32{53, 80, 443}[r.IntN(3)]
	s.Spec.Ports[0].Protocol = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}[r.IntN(2)]
	s.Spec.Selector = map[string]string{"app": []string{"a", "b"}[r.IntN(2)]}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return // externalTrafficPolicy is for externally reachable Services only
	}
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if r.IntN(5) == 0 {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
}

func (w *world) step() {
	ctx := context.Background()
	r := w.rng
	name := w.name()
	var svc corev1.Service
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: name}, &svc)
	exists := err == nil
	w.touched[name] = true
	switch op := r.IntN(20); {
	case !exists:
		s := lbService(w.ns, name, 80)
		w.randomize(s)
		w.must(env.Client.Create(ctx, s), "create "+name)
		w.log("create %s ip=%q ann=%v port=%d/%s", name, s.Spec.LoadBalancerIP, s.Annotations, s.Spec.Ports[0].Port, s.Spec.Ports[0].Protocol)
	case op < 3:
		w.must(client.IgnoreNotFound(env.Client.Delete(ctx, &svc)), "delete "+name)
		w.log("delete %s", name)
	case op < 5:
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			svc.Spec.Type = corev1.ServiceTypeClusterIP
			svc.Spec.AllocateLoadBalancerNodePorts = nil
			svc.Spec.ExternalTrafficPolicy = ""
		} else {
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Spec.AllocateLoadBalancerNodePorts = ptr(false)
		}
		w.must(ignoreConflict(env.Client.Update(ctx, &svc)), "toggle type "+name)
		w.log("type %s -> %s", name, svc.Spec.Type)
	case op < 15:
		w.randomize(&svc)
		w.must(ignoreConflict(env.Client.Update(ctx, &svc)), "update "+name)
		w.log("update %s ip=%q ann=%v port=%d/%s", name, svc.Spec.LoadBalancerIP, svc.Annotations, svc.Spec.Ports[0].Port, svc.Spec.Ports[0].Protocol)
	default:
		w.editConfig()
	}
}

// editConfig grows or shrinks the main pool or flips the spare pool's
// autoAssign. Shrinking must never move an address.
func (w *world) editConfig() {
	ctx := context.Background()
	if w.rng.IntN(2) == 0 {
		p := getPool(w.t, "r-main")
		p.Spec.Addresses = []string{[]string{"198.51.100.0/28", "198.51.100.0/29", "198.51.100.4-198.51.100.15"}[w.rng.IntN(3)]}
		w.must(ignoreConflict(env.Client.Update(ctx, p)), "edit r-main")
		w.log("r-main addresses %v", p.Spec.Addresses)
		return
	}
	p := getPool(w.t, "r-spare")
	p.Spec.AutoAssign = ptr(p.Spec.AutoAssign != nil && !*p.Spec.AutoAssign)
	w.must(ignoreConflict(env.Client.Update(ctx, p)), "edit r-spare")
	w.log("r-spare autoAssign %v", *p.Spec.AutoAssign)
}

func (w *world) must(err error, what string) {
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
}

func ignoreConflict(err error) error {
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// settleAndCheck waits until the Services' status stops changing and every
// LoadBalancer Service carries a current condition, then checks invariants.
func (w *world) settleAndCheck() {
	t := w.t
	var prev string
	stable := 0
	var list corev1.ServiceList
	deadline := time.Now().Add(30 * time.Second)
	for stable < 3 {
		if time.Now().After(deadline) {
			t.Errorf("the controller did not settle within 30s: %s", prev)
			return
		}
		time.Sleep(100 * time.Millisecond)
		if err := env.Client.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		settled := true
		for _, s := range list.Items {
			c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer && (c == nil || c.ObservedGeneration != s.Generation) {
				settled = false
			}
			fmt.Fprintf(&b, "%s %s %v|", s.Name, s.ResourceVersion, c)
		}
		// Services carry no generation to compare a condition with, so
		// "settled" also needs the controllers idle: nothing queued, no
		// reconcile running.
		if !controllersIdle(fmt.Sprintf("-%d", controllerCount)) {
			settled = false
		}
		if cur := b.String(); settled && cur == prev {
			stable++
		} else {
			stable, prev = 0, cur
		}
	}
	w.check(list.Items)
}

func (w *world) check(svcs []corev1.Service) {
	t := w.t
	holders := map[string][]*corev1.Service{}
	next := map[types.UID]snapshot{}
	for i := range svcs {
		s := &svcs[i]
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
			holders[in.IP] = append(holders[in.IP], s)
		}
		lb := s.Spec.Type == corev1.ServiceTypeLoadBalancer
		c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
		switch {
		case !lb && len(ips) > 0:
			t.Errorf("%s is not a LoadBalancer but holds %v", s.Name, ips)
		case lb && len(ips) == 0 && (c == nil || c.Status != metav1.ConditionFalse || c.Message == ""):
			t.Errorf("%s is pending without a reason: %+v", s.Name, c)
		}
		snap := snapshot{spec: specKey(s), ips: ips}
		if old, ok := w.last[s.UID]; ok && !w.touched[s.Name] && old.spec == snap.spec && len(old.ips) > 0 && !slices.Equal(old.ips, ips) {
			t.Errorf("%s changed address %v -> %v though its spec did not change (%s)", s.Name, old.ips, ips, snap.spec)
		}
		next[s.UID] = snap
	}
	w.last = next
	clear(w.touched)
	for ip, hs := range holders {
		for i := 0; i < len(hs); i++ {
			for j := i + 1; j < len(hs); j++ {
				if why := mayNotShare(hs[i], hs[j]); why != "" {
					t.Errorf("%s is held by %s and %s, which may not share it: %s", ip, hs[i].Name, hs[j].Name, why)
				}
			}
		}
	}
}

// specKey is what of a Service's own spec and annotations decides its
// addresses.
func specKey(s *corev1.Service) string {
	return fmt.Sprintf("%s|%s|%v|%v|%s|%v", s.Spec.Type, s.Spec.LoadBalancerIP, s.Annotations, s.Spec.Ports,
		s.Spec.ExternalTrafficPolicy, s.Spec.Selector)
}

// mayNotShare restates the sharing rule independently of the allocator.
func mayNotShare(a, b *corev1.Service) string {
	ka, kb := a.Annotations[v1alpha1.AnnotationAllowSharedIP], b.Annotations[v1alpha1.AnnotationAllowSharedIP]
	if ka == "" || ka != kb {
		return fmt.Sprintf("sharing keys %q and %q", ka, kb)
	}
	for _, pa := range a.Spec.Ports {
		for _, pb := range b.Spec.Ports {
			if pa.Port == pb.Port && pa.Protocol == pb.Protocol {
				return fmt.Sprintf("both use %d/%s", pa.Port, pa.Protocol)
			}
		}
	}
	local := a.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal ||
		b.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if local && fmt.Sprint(a.Spec.Selector) != fmt.Sprint(b.Spec.Selector) {
		return "externalTrafficPolicy Local with different selectors"
	}
	return ""
}

// controllersIdle reports whether the running controller's service and
// config controllers have nothing queued and nothing running, from
// controller-runtime's metrics.
func controllersIdle(instance string) bool {
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return false
	}
	seen := 0
	for _, f := range fams {
		if f.GetName() != "workqueue_depth" && f.GetName() != "controller_runtime_active_workers" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "service"+instance || l.GetValue() == "config"+instance {
					seen++
					if m.GetGauge().GetValue() != 0 {
						return false
					}
				}
			}
		}
	}
	return seen > 0
}
