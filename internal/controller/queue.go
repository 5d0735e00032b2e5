package controller

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// poolStatusInterval is how long a change of pool usage waits to be
// written to the IPPools' status and metrics: usage changes with every
// allocation, and one write every few seconds serves a burst of them.
const poolStatusInterval = 3 * time.Second

// workQueue reaches a controller's own work queue from outside its
// watches: a Reconcile that frees an address adds the Services that may
// take it, a config change adds every Service, and a change of pool usage
// adds the config controller's single key. These are level-based requests
// ("look at this key again"), which is what the queue holds; it merges a
// key added twice, and AddAfter keeps the earliest time asked.
//
// controller-runtime creates the queue when the controller starts and
// hands it only to the controller's sources, so source returns a raw
// source that keeps it. Adds before then are dropped: each controller's
// source makes up for them as it starts (see source).
//
// Concurrency: safe for use by any goroutine; the queue is kept behind an
// atomic pointer, set once by the source.
type workQueue struct {
	q atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
}

// source returns the raw source that keeps the controller's queue, then
// calls start with it. start must add whatever a dropped add stood for
// (every Service, the config key): adds dropped before the queue was kept
// are then covered, and any add after it reaches the queue.
func (w *workQueue) source(start source.Func) source.Source {
	return source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.q.Store(&q)
		return start(ctx, q)
	})
}

// add adds reqs to the queue.
func (w *workQueue) add(reqs ...reconcile.Request) {
	q := w.q.Load()
	if q == nil {
		return
	}
	for _, r := range reqs {
		(*q).Add(r)
	}
}

// addAfter adds req to the queue once d has passed; if req is already
// waiting, it is due at the earlier of the two times.
func (w *workQueue) addAfter(req reconcile.Request, d time.Duration) {
	if q := w.q.Load(); q != nil {
		(*q).AddAfter(req, d)
	}
}

// serviceRequest is the work-queue key of the Service key (namespace/name).
func serviceRequest(key string) reconcile.Request {
	ns, name, _ := cutKey(key)
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}
