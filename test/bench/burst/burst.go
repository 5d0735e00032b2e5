package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
)

// burstResult is what one burst measured against one allocator.
type burstResult struct {
	// Latency is, per Service, the time from its Create call returning to
	// the benchmark's watch seeing an address in its status.
	Latency []time.Duration
	// Early counts Services whose address was seen before their Create
	// call returned; their latency counts as 0.
	Early int
	// FromIssue is, per Service, the time from its Create call being
	// issued to its address being seen: what a user waits, creation
	// included.
	FromIssue []time.Duration
	// CreateSpan is from the first Create issued to the last one returned.
	CreateSpan time.Duration
	// CreateLatency is, per Service, how long its Create call took.
	CreateLatency []time.Duration
	Retries       int // Create calls retried after a transient error
	// CPU is the allocator's CPU time from the burst's start until it went
	// quiet after the last address was seen.
	CPU     time.Duration
	PeakRSS int64 // bytes, over the process's whole life
	// RSSAnon and RSSFile split the RSS at the end of the burst into heap,
	// stacks and runtime (anonymous) and the mapped binary (file): what a
	// change to the allocator's data can shrink and what it cannot.
	RSSAnon, RSSFile int64
	// OtherCPU is the CPU time the control plane and the benchmark itself
	// used in the same span, by process name.
	OtherCPU map[string]time.Duration
	Wall     time.Duration // the span: burst start until the allocator was quiet
	// Duplicates counts addresses given to more than one Service.
	Duplicates int
	// Updates counts update events the watch saw for the burst's Services.
	Updates int
	// Requests are the API server's requests during the burst, by verb,
	// resource and code, the benchmark's own included.
	Requests []countDiff
	// Writes counts the allocator's writing API requests during the burst
	// (see allocatorWrites).
	Writes float64
	// Events counts Events recorded in the namespace.
	Events int
}

// serviceName names the i-th Service of a burst; serviceIndex reverses it.
func serviceName(i int) string { return fmt.Sprintf("lb-%05d", i) }

func serviceIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "lb-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// newService is the Service every burst creates: type LoadBalancer, one
// TCP port, no node ports, no class, no annotations.
func newService(ns, name string) *corev1.Service {
	noNodePorts := false
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: &noNodePorts,
			Selector:                      map[string]string{"app": "bench"},
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)},
			},
		},
	}
}

// burst creates N Services in ns from o.Creators goroutines as fast as the
// API server takes them, while p allocates, and measures until every one
// shows an address and p has gone quiet. w must watch ns.
func (b *bench) burst(ctx context.Context, p *proc, ns string, w *ingressWatch) (burstResult, error) {
	var res burstResult
	n := b.opts.Services
	start := time.Now()
	reqBefore, err := apiRequests(ctx, b.cs)
	if err != nil {
		return res, err
	}
	cpuBefore, err := p.cpu()
	if err != nil {
		return res, err
	}
	planeBefore := childrenCPU("etcd", "kube-apiserver")
	selfBefore, _ := cpuOf("self")

	issued := make([]time.Time, n)
	returned := make([]time.Time, n)
	var next, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.opts.Creators)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range b.opts.Creators {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || cctx.Err() != nil {
					return
				}
				issued[i] = time.Now()
				r, err := createService(cctx, b.cs, newService(ns, serviceName(i)))
				returned[i] = time.Now()
				retries.Add(int64(r))
				if err != nil {
					errs <- fmt.Errorf("create %s/%s: %w", ns, serviceName(i), err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return res, err
	default:
	}
	if err := waitUntil(ctx, b.opts.Timeout, func() bool { return w.count() >= n }); err != nil {
		return res, fmt.Errorf("%d of %d Services have an address: %w; %s's last log lines:\n%s",
			w.count(), n, err, p.opts.Name, p.logTail())
	}
	if err := p.quiesce(ctx.Done(), 10*time.Second); err != nil {
		return res, err
	}
	cpuAfter, err := p.cpu()
	if err != nil {
		return res, err
	}
	if res.PeakRSS, err = p.peakRSS(); err != nil {
		return res, err
	}
	res.RSSAnon, _ = p.statusKB("RssAnon:")
	res.RSSFile, _ = p.statusKB("RssFile:")
	reqAfter, err := apiRequests(ctx, b.cs)
	if err != nil {
		return res, err
	}
	res.CPU = cpuAfter - cpuBefore
	selfAfter, _ := cpuOf("self")
	res.OtherCPU = map[string]time.Duration{"benchmark": selfAfter - selfBefore}
	for name, d := range childrenCPU("etcd", "kube-apiserver") {
		res.OtherCPU[name] = d - planeBefore[name]
	}
	res.Wall = time.Since(start)
	res.Retries = int(retries.Load())
	res.Requests = reqAfter.since(reqBefore)
	res.Writes = allocatorWrites(res.Requests)

	first, last := issued[0], returned[0]
	for i := range n {
		seen, _ := w.seenAt(serviceName(i))
		d := seen.Sub(returned[i])
		if d < 0 {
			d = 0
			res.Early++
		}
		res.Latency = append(res.Latency, d)
		res.FromIssue = append(res.FromIssue, seen.Sub(issued[i]))
		res.CreateLatency = append(res.CreateLatency, returned[i].Sub(issued[i]))
		if issued[i].Before(first) {
			first = issued[i]
		}
		if returned[i].After(last) {
			last = returned[i]
		}
	}
	res.CreateSpan = last.Sub(first)

	ips, updates, _ := w.snapshot()
	owner := map[string]bool{}
	for name, v := range ips {
		if _, ok := serviceIndex(name); !ok {
			continue
		}
		for _, ip := range strings.Split(v, ",") {
			if owner[ip] {
				res.Duplicates++
			}
			owner[ip] = true
		}
		res.Updates += updates[name]
	}
	if res.Events, err = countEvents(ctx, b.cs, ns); err != nil {
		return res, err
	}
	return res, nil
}

// createService creates svc, retrying a few times on errors that say the
// API server is overloaded rather than that the request is wrong. It
// returns how many times it retried.
func createService(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service) (int, error) {
	for attempt := 0; ; attempt++ {
		_, err := cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
		if err == nil || (attempt > 0 && apierrors.IsAlreadyExists(err)) {
			return attempt, nil
		}
		transient := apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
			utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
		if !transient || attempt == 5 {
			return attempt, err
		}
		select {
		case <-ctx.Done():
			return attempt, ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
}

// createNamespace creates ns if it does not exist.
func createNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// deleteServices deletes every Service in ns and waits until they are
// gone, so the next allocator starts on a clean cluster. Services have no
// DELETECOLLECTION, and deleting the namespace would not do: envtest runs
// no namespace controller.
func deleteServices(ctx context.Context, cs kubernetes.Interface, ns string) error {
	if err := deleteEach(ctx, cs, ns); err != nil {
		return fmt.Errorf("delete services in %s: %w", ns, err)
	}
	return waitUntil(ctx, 5*time.Minute, func() bool {
		l, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(l.Items) == 0
	})
}

func deleteEach(ctx context.Context, cs kubernetes.Interface, ns string) error {
	l, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	names := make(chan string)
	errs := make(chan error, len(l.Items))
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for name := range names {
				if err := cs.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					errs <- err
				}
			}
		})
	}
	for _, s := range l.Items {
		names <- s.Name
	}
	close(names)
	wg.Wait()
	close(errs)
	return <-errs // nil when no delete failed
}

// listIPs reads every Service in ns from the API server: name → its
// status addresses, comma-separated ("" when it has none).
func listIPs(ctx context.Context, cs kubernetes.Interface, ns string) (map[string]string, error) {
	l, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services in %s: %w", ns, err)
	}
	out := make(map[string]string, len(l.Items))
	for _, s := range l.Items {
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		out[s.Name] = strings.Join(ips, ",")
	}
	return out, nil
}

// countEvents counts the Events recorded in ns without reading them all.
func countEvents(ctx context.Context, cs kubernetes.Interface, ns string) (int, error) {
	l, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("count events in %s: %w", ns, err)
	}
	n := len(l.Items)
	if l.RemainingItemCount != nil {
		n += int(*l.RemainingItemCount)
	}
	return n, nil
}
