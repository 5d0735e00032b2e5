package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labcluster"
)

// The annotations the churn sets (ironlb's names; see
// v1alpha1.AnnotationAliasPrefixes).
const (
	annotationPool    = "ironlb.io/address-pool"
	annotationIPs     = "ironlb.io/loadBalancerIPs"
	annotationSharing = "ironlb.io/allow-shared-ip"
	// annotationStatusSharing is the controller's record of the sharing
	// constraints its status write was made under.
	annotationStatusSharing = "ironlb.io/status-sharing"
)

// churn is a set of Services in a namespace of their own, created,
// deleted and changed at random: their type (LoadBalancer or ClusterIP),
// the address they request, their sharing key, a label. Every Service
// names the churn's own pool, which has autoAssign off and no
// L2Announcement: no other Service takes its addresses, and no speaker
// announces them, so the churn leaves the suite's Services and their
// traffic alone. Each Service has a port of its own, so two Services with
// one sharing key may always share.
//
// With announced set before setup, an L2Announcement of the churn's own
// selects its pool: the speakers elect an owner for each churned address,
// answer ARP for it and write its ServiceAnnouncement, the work of a busy
// cluster (the client never sends to those addresses).
type churn struct {
	c         client.Client
	ns        string
	pool      string
	announced bool
	addrs     []netip.Addr // the pool's addresses
	names     []string

	mu     sync.Mutex
	rnd    *rand.Rand
	busy   map[string]bool // names an operation is working on
	counts map[string]int  // successful operations by kind
}

// newChurn returns the churn of n Services in namespace ns, taking
// addresses from pool, which is to hold the addresses of prefix.
func newChurn(c client.Client, ns, pool string, prefix netip.Prefix, n int) *churn {
	ch := &churn{c: c, ns: ns, pool: pool, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14)),
		busy: map[string]bool{}, counts: map[string]int{}}
	for a := prefix.Addr(); prefix.Contains(a); a = a.Next() {
		ch.addrs = append(ch.addrs, a)
	}
	for i := range n {
		ch.names = append(ch.names, fmt.Sprintf("s%02d", i))
	}
	return ch
}

// setup creates the namespace and the pool.
func (ch *churn) setup(ctx context.Context) error {
	first, last := ch.addrs[0], ch.addrs[len(ch.addrs)-1]
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ch.ns}},
		&v1alpha1.IPPool{
			ObjectMeta: metav1.ObjectMeta{Name: ch.pool},
			Spec:       v1alpha1.IPPoolSpec{Addresses: []string{first.String() + "-" + last.String()}, AutoAssign: new(false)},
		},
	}
	if ch.announced {
		objs = append(objs, &v1alpha1.L2Announcement{
			ObjectMeta: metav1.ObjectMeta{Name: ch.pool},
			Spec:       v1alpha1.L2AnnouncementSpec{IPPools: []string{ch.pool}},
		})
	}
	for _, o := range objs {
		if err := ch.c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// cleanup deletes the Services, then the pool once the controller has let
// it go (its finalizer stays while any address is held), then the
// namespace. The lab runs no namespace controller, so the namespace
// stays Terminating, empty.
func (ch *churn) cleanup(ctx context.Context) error {
	err := ch.c.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(ch.ns))
	if err != nil {
		return fmt.Errorf("delete the churn's Services: %w", err)
	}
	if ch.announced {
		l2 := &v1alpha1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: ch.pool}}
		if err := ch.c.Delete(ctx, l2); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete L2Announcement %s: %w", ch.pool, err)
		}
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: ch.pool}}
	if err := ch.c.Delete(ctx, pool); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pool %s: %w", ch.pool, err)
	}
	err = labcluster.Eventually(ctx, 60*time.Second, func() error {
		err := ch.c.Get(ctx, types.NamespacedName{Name: ch.pool}, pool)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("pool %s still there, finalizers %v", ch.pool, pool.Finalizers)
		}
		return err
	})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ch.ns}}
	if err := ch.c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ch.ns, err)
	}
	return nil
}

// run makes ops operations, rate a second at most, from workers
// goroutines, and returns when they are done or ctx ends. Operations the
// API server refused are reported at the end (the first ten), but for
// conflicts that outlast retry.DefaultRetry, which are only skipped.
func (ch *churn) run(ctx context.Context, ops int, rate float64, workers int) error {
	todo := make(chan struct{})
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range todo {
				err := ch.op(ctx)
				if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	func() {
		defer close(todo)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for range ops {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case <-ctx.Done():
				return
			case todo <- struct{}{}:
			}
		}
	}()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("and %d more", len(errs)-10))
	}
	return errors.Join(errs...)
}

// op picks a Service no other operation is working on and changes it:
// creates it if it does not exist, otherwise deletes it, switches its
// type, changes the address it requests or its sharing key, or touches a
// label (which must move nothing).
func (ch *churn) op(ctx context.Context) error {
	ch.mu.Lock()
	var name string
	for name == "" || ch.busy[name] {
		name = ch.names[ch.rnd.IntN(len(ch.names))]
	}
	ch.busy[name] = true
	dice := ch.rnd.Float64()
	ch.mu.Unlock()
	defer func() {
		ch.mu.Lock()
		delete(ch.busy, name)
		ch.mu.Unlock()
	}()

	key := types.NamespacedName{Namespace: ch.ns, Name: name}
	var svc corev1.Service
	err := ch.c.Get(ctx, key, &svc)
	if apierrors.IsNotFound(err) {
		return ch.count("create", ch.c.Create(ctx, ch.newService(name)))
	}
	if err != nil {
		return err
	}
	var kind string
	var change func(*corev1.Service)
	switch {
	case dice < 0.15:
		return ch.count("delete", client.IgnoreNotFound(ch.c.Delete(ctx, &svc)))
	case dice < 0.40:
		kind, change = "type", switchType
	case dice < 0.65:
		ip := ch.randomRequest()
		kind, change = "request", func(s *corev1.Service) { setAnnotation(s, annotationIPs, ip) }
	case dice < 0.80:
		k := ch.randomKey()
		kind, change = "sharing", func(s *corev1.Service) { setAnnotation(s, annotationSharing, k) }
	default:
		v := fmt.Sprint(ch.rnd.IntN(1000))
		kind, change = "label", func(s *corev1.Service) { s.Labels = map[string]string{"churn": v} }
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := ch.c.Get(ctx, key, &svc); err != nil {
			return err
		}
		change(&svc)
		return ch.c.Update(ctx, &svc)
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return ch.count(kind, err)
}

// count counts a successful operation of kind, and returns err.
func (ch *churn) count(kind string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err) // %w: run tells conflicts apart
	}
	ch.mu.Lock()
	ch.counts[kind]++
	ch.mu.Unlock()
	return nil
}

// total is how many operations succeeded, and their kinds.
func (ch *churn) total() (int, map[string]int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := 0
	for _, k := range ch.counts {
		n += k
	}
	return n, maps.Clone(ch.counts)
}

// newService is a new Service called name: LoadBalancer four times in
// five, requesting an address of the pool or sharing a key now and then.
func (ch *churn) newService(name string) *corev1.Service {
	ch.mu.Lock()
	lb := ch.rnd.Float64() < 0.8
	ch.mu.Unlock()
	port := int32(10000 + slices.Index(ch.names, name))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ch.ns, Name: name, Annotations: map[string]string{annotationPool: ch.pool}},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "udp", Port: port, Protocol: corev1.ProtocolUDP}},
		},
	}
	if lb {
		switchType(svc)
	}
	setAnnotation(svc, annotationIPs, ch.randomRequest())
	setAnnotation(svc, annotationSharing, ch.randomKey())
	return svc
}

// randomRequest is an address of the pool one time in three, else ""
// (any address).
func (ch *churn) randomRequest() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.rnd.IntN(3) > 0 {
		return ""
	}
	return ch.addrs[ch.rnd.IntN(len(ch.addrs))].String()
}

// randomKey is a sharing key, "a" or "b", one time in three, else "".
func (ch *churn) randomKey() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return []string{"", "", "", "", "a", "b"}[ch.rnd.IntN(6)]
}

// setAnnotation sets the annotation k to v, or removes it if v is "".
func setAnnotation(s *corev1.Service, k, v string) {
	if v == "" {
		delete(s.Annotations, k)
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[k] = v
}

// switchType makes a LoadBalancer Service a ClusterIP one and the other
// way round, clearing the fields only a LoadBalancer may have.
func switchType(s *corev1.Service) {
	if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.AllocateLoadBalancerNodePorts = nil
		s.Spec.ExternalTrafficPolicy = ""
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 0
		}
		return
	}
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.AllocateLoadBalancerNodePorts = new(false)
}

// held is what the checker keeps of one churned Service.
type held struct {
	name string
	ips  []netip.Addr // status.loadBalancer.ingress, sorted
	// request is what decides which address the Service may have: its
	// type, requested address and sharing key. changed says it changed
	// since the Service got ips.
	request string
	changed bool
	// key is the sharing key as of the last status write (one that
	// changed ips or annotationStatusSharing): the key the controller
	// decided under. Until it writes again, a Service that changed its key
	// still shares with whom it shared.
	key string
	// spec is the sharing key the Service has now. The controller decides
	// under it as soon as it reconciles the Service, which can be before
	// the Service's own status write lands: a Service that gained a key
	// and kept its address may be joined there by another Service of that
	// key whose write lands first. Restore orders such claims by
	// annotationStatusSharing (see the controller's restorer), so the two
	// are sound as they stand.
	spec string
	// statusSharing is annotationStatusSharing.
	statusSharing string
}

// checker watches the churn's Services and reports, as they happen, a
// duplicate (an address in the status of two Services that may not share
// it) and a move (a Service whose address changes, or goes, while what it
// asks for has not changed since it got it).
type checker struct {
	mu       sync.Mutex
	svcs     map[types.UID]*held
	errs     []error
	reported map[string]bool
	events   int
	moves    int
	dups     int
	start    time.Time
}

// watchChurn starts a checker of the Services of ch's namespace; it runs
// until ctx ends.
func watchChurn(ctx context.Context, cs kubernetes.Interface, ns string) (*checker, error) {
	k := &checker{svcs: map[types.UID]*held{}, reported: map[string]bool{}, start: time.Now()}
	list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		k.observe(watch.Added, &list.Items[i])
	}
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				sleep(ctx, 100*time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				svc, ok := ev.Object.(*corev1.Service)
				if !ok {
					if ev.Type == watch.Error {
						// Too old a resourceVersion: the check cannot
						// go on without a gap.
						k.fail(fmt.Errorf("watch of the churn's Services broke: %v", apierrors.FromObject(ev.Object)))
						w.Stop()
						return
					}
					continue
				}
				rv = svc.ResourceVersion
				if ev.Type != watch.Bookmark {
					k.observe(ev.Type, svc)
				}
			}
		}
	}()
	return k, nil
}

func (k *checker) fail(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errs = append(k.errs, err)
}

// observe takes in one event.
func (k *checker) observe(t watch.EventType, svc *corev1.Service) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events++
	if t == watch.Deleted {
		delete(k.svcs, svc.UID)
		return
	}
	at := time.Since(k.start).Round(time.Millisecond)
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, a)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	key := svc.Annotations[annotationSharing]
	request := fmt.Sprintf("%s|%s|%s", svc.Spec.Type, svc.Annotations[annotationIPs], key)
	h, ok := k.svcs[svc.UID]
	if !ok {
		h = &held{name: svc.Name, request: request, key: key, statusSharing: svc.Annotations[annotationStatusSharing], ips: ips}
		k.svcs[svc.UID] = h
	}
	if request != h.request {
		h.request, h.changed = request, true
	}
	if !slices.Equal(ips, h.ips) {
		if len(h.ips) > 0 && !h.changed {
			k.moves++
			k.errs = append(k.errs, fmt.Errorf("%s moved from %v to %v at %s, asking for the same (%s)", svc.Name, h.ips, ips, at, request))
		}
		h.ips, h.changed = ips, false
		h.key = key
	}
	if s := svc.Annotations[annotationStatusSharing]; s != h.statusSharing {
		h.statusSharing, h.key = s, key
	}
	h.spec = key
	for _, a := range h.ips {
		for _, o := range k.svcs {
			if o == h || !slices.Contains(o.ips, a) || mayShare(h.key, o.key) || mayShare(h.spec, o.spec) {
				continue
			}
			pair := []string{h.name, o.name}
			slices.Sort(pair)
			id := a.String() + " " + strings.Join(pair, " ")
			if !k.reported[id] {
				k.reported[id] = true
				k.dups++
				k.errs = append(k.errs, fmt.Errorf("%s held by %s (key %q, written under %q) and %s (key %q, written under %q) at %s",
					a, h.name, h.spec, h.key, o.name, o.spec, o.key, at))
			}
		}
	}
}

// mayShare reports whether two Services of sharing keys a and b may hold
// one address: the churn gives each Service a port of its own, so one
// key is enough.
func mayShare(a, b string) bool { return a != "" && a == b }

// result returns what the checker found so far: its errors, the number of
// moves and duplicates, and the events it saw.
func (k *checker) result() (errs []error, moves, dups, events int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.errs), k.moves, k.dups, k.events
}

// unmet waits up to timeout for every LoadBalancer Service of the churn to
// hold an address where one is to be had, and returns the error of the
// last look if some never did: a Service that asks for any address while
// the pool has a free one or one it may share, or for one address that
// nobody it may not share with holds.
func (ch *churn) unmet(ctx context.Context, timeout time.Duration) error {
	return labcluster.Eventually(ctx, timeout, func() error {
		var list corev1.ServiceList
		if err := ch.c.List(ctx, &list, client.InNamespace(ch.ns)); err != nil {
			return err
		}
		holders := map[netip.Addr][]*corev1.Service{}
		for i := range list.Items {
			s := &list.Items[i]
			for _, in := range s.Status.LoadBalancer.Ingress {
				if a, err := netip.ParseAddr(in.IP); err == nil {
					holders[a] = append(holders[a], s)
				}
			}
		}
		mayHave := func(s *corev1.Service, a netip.Addr) bool {
			for _, o := range holders[a] {
				k := s.Annotations[annotationSharing]
				if k == "" || o.Annotations[annotationSharing] != k {
					return false
				}
			}
			return true
		}
		var errs []error
		for i := range list.Items {
			s := &list.Items[i]
			if s.Spec.Type != corev1.ServiceTypeLoadBalancer || len(s.Status.LoadBalancer.Ingress) > 0 {
				continue
			}
			want := ch.addrs
			if r := s.Annotations[annotationIPs]; r != "" {
				want = []netip.Addr{netip.MustParseAddr(r)}
			}
			for _, a := range want {
				if mayHave(s, a) {
					errs = append(errs, fmt.Errorf("%s has no address although %s is to be had (%s)", s.Name, a, condition(s)))
					break
				}
			}
		}
		return errors.Join(errs...)
	})
}

// condition is the reason and message of ironlb's condition on s.
func condition(s *corev1.Service) string {
	for _, c := range s.Status.Conditions {
		if c.Type == v1alpha1.ServiceConditionIPAllocated {
			return c.Reason + ": " + c.Message
		}
	}
	return "no condition"
}
