package speaker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// report is a ServiceAnnouncement this node should write.
type report struct {
	svc    *corev1.Service // from the cache: read only
	status v1alpha1.ServiceAnnouncementStatus
}

// statusWriter writes ServiceAnnouncements in its own goroutine, so a slow
// API server never delays answering for a new address: sync hands it the
// latest wanted state and goes on; intermediate states are skipped.
type statusWriter struct {
	c    apiAccess
	log  *slog.Logger
	wake chan struct{}

	mu   sync.Mutex
	want map[string]*report
	keep map[string]bool // nil: this node deletes nothing
	have map[string]*v1alpha1.ServiceAnnouncement
}

func newStatusWriter(c apiAccess, log *slog.Logger) *statusWriter {
	return &statusWriter{c: c, log: log, wake: make(chan struct{}, 1)}
}

// observe records the ServiceAnnouncements in the cache (read only).
func (w *statusWriter) observe(items []v1alpha1.ServiceAnnouncement) {
	have := make(map[string]*v1alpha1.ServiceAnnouncement, len(items))
	for i := range items {
		have[items[i].Namespace+"/"+items[i].Name] = &items[i]
	}
	w.mu.Lock()
	w.have = have
	w.mu.Unlock()
}

// set replaces the wanted state.
func (w *statusWriter) set(want map[string]*report, keep map[string]bool) {
	w.mu.Lock()
	w.want, w.keep = want, keep
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx ends. A failed write is retried a second later
// (or at the next change).
func (w *statusWriter) run(ctx context.Context) { writeLoop(ctx, w.wake, w.write) }

// writeLoop calls write at each signal on wake until ctx ends, and again
// a second after a write that reports a failure: the speaker's writers
// of API objects, which take what to write from a field they are woken
// to read.
func writeLoop(ctx context.Context, wake <-chan struct{}, write func(context.Context) bool) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-retry.C:
		}
		if !write(ctx) && ctx.Err() == nil {
			retry.Reset(time.Second)
		}
	}
}

// write makes the API agree with the wanted state, as far as the cache
// shows it; it reports whether every write succeeded.
func (w *statusWriter) write(ctx context.Context) bool {
	w.mu.Lock()
	want, keep, have := w.want, w.keep, w.have
	w.mu.Unlock()
	ok := true
	for key, r := range want {
		old := have[key]
		if old != nil && apiequality.Semantic.DeepEqual(old.Status, r.status) {
			continue
		}
		if err := w.put(ctx, old, r); err != nil && ctx.Err() == nil {
			if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
				w.log.Warn("write ServiceAnnouncement", "service", key, "error", err)
			}
			ok = false
		}
	}
	if keep != nil {
		for key, old := range have {
			if keep[key] {
				continue
			}
			err := w.c.Delete(ctx, old, old.UID)
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
				w.log.Warn("delete ServiceAnnouncement", "service", key, "error", err)
				ok = false
			}
		}
	}
	return ok
}

func (w *statusWriter) put(ctx context.Context, old *v1alpha1.ServiceAnnouncement, r *report) error {
	if old != nil {
		upd := old.DeepCopy()
		upd.Status = r.status
		return w.c.Update(ctx, upd)
	}
	if r.svc == nil {
		return nil
	}
	a := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.svc.Namespace,
			Name:      r.svc.Name,
			// Deleted with its Service by the garbage collector.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: r.svc.Name, UID: r.svc.UID,
			}},
		},
		Status: r.status,
	}
	return w.c.Create(ctx, a)
}
