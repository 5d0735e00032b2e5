package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ingressWatch watches the Services of one namespace from the benchmark's
// side and notes when each first shows an address in
// status.loadBalancer.ingress, which address it shows, and whether it
// ever changes. Its handlers run on the informer's one goroutine; mu
// guards the maps for readers.
type ingressWatch struct {
	mu      sync.Mutex
	first   map[string]time.Time // Service name → when an address was first seen
	ips     map[string]string    // Service name → addresses seen last, comma-separated
	updates map[string]int       // Service name → update events seen
	changed map[string]int       // Service name → times a seen address was replaced
}

// watchIngress starts an informer on ns's Services and returns once it has
// synced. It stops when ctx is done.
func watchIngress(ctx context.Context, cs kubernetes.Interface, ns string) (*ingressWatch, error) {
	w := &ingressWatch{
		first: map[string]time.Time{}, ips: map[string]string{},
		updates: map[string]int{}, changed: map[string]int{},
	}
	inf := cache.NewSharedIndexInformer(
		cache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "services", ns, fields.Everything()),
		&corev1.Service{}, 0, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.see(o, false) },
		UpdateFunc: func(_, o any) { w.see(o, true) },
	}); err != nil {
		return nil, err
	}
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("watch services in %s: %w", ns, context.Cause(ctx))
	}
	return w, nil
}

func (w *ingressWatch) see(o any, update bool) {
	now := time.Now()
	s, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	got := strings.Join(ips, ",")
	w.mu.Lock()
	defer w.mu.Unlock()
	if update {
		w.updates[s.Name]++
	}
	if got == "" {
		return
	}
	if _, ok := w.first[s.Name]; !ok {
		w.first[s.Name] = now
	}
	if prev := w.ips[s.Name]; prev != "" && prev != got {
		w.changed[s.Name]++
	}
	w.ips[s.Name] = got
}

// seenAt returns when name was first seen with an address.
func (w *ingressWatch) seenAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.first[name]
	return t, ok
}

// count is how many Services have been seen with an address.
func (w *ingressWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.first)
}

// snapshot copies the last addresses seen, the update counts and the
// change counts.
func (w *ingressWatch) snapshot() (ips map[string]string, updates, changed map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.ips), maps.Clone(w.updates), maps.Clone(w.changed)
}

// waitUntil polls cond every 20 ms until it holds, ctx is done or timeout
// passes. The times being measured are taken by the watch's handler, so
// the polling period does not show in them.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return fmt.Errorf("not done after %v", timeout)
		case <-tick.C:
		}
	}
	return nil
}
