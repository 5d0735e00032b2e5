package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const (
	// queueSize bounds the events waiting for the writer; Eventf drops
	// beyond it rather than block a caller on a slow API server.
	queueSize = 1000
	// seriesWindow is how long after its last repeat an event still takes
	// repeats into its series (tools/events' finishTime).
	seriesWindow = 6 * time.Minute
	// flushInterval is how often the counts of series repeated since their
	// last write go out. The first repeat is written at once, so that a
	// series shows; later ones are batched to one patch per series per
	// interval, so a flapping condition costs the API server little.
	flushInterval = time.Minute
	// noteLimit is the API server's limit on an Event's note, in bytes.
	noteLimit = 1024
	// createTries bounds the attempts at creating one Event when the API
	// server cannot be reached.
	createTries = 3
)

// Recorder writes events.k8s.io/v1 Events, like client-go's
// tools/events.EventRecorder, whose Eventf it shares so callers keep their
// calls. Repeats of an event are counted in the first one's series, like
// tools/events, so a condition that recurs makes one Event, not one per
// occurrence.
//
// Eventf is safe for concurrent use and never blocks; one goroutine, run by
// Start, does every write and owns the series state.
type Recorder struct {
	scheme     *runtime.Scheme
	sink       eventSink
	controller string
	instance   string
	log        *slog.Logger
	queue      chan *eventsv1.Event
	started    atomic.Bool
}

// eventSink is where a Recorder's writes go: the API server, or a fake in
// tests.
type eventSink interface {
	// create creates ev.
	create(ctx context.Context, ev *eventsv1.Event) error
	// patch applies a JSON merge patch to the Event named like ev.
	patch(ctx context.Context, ev *eventsv1.Event, data []byte) error
}

// NewRecorder returns a recorder writing through c as controller
// (reportingController, a name like "ironlb.io/speaker") and instance
// (reportingInstance, such as the node's name). c's scheme must hold
// events.k8s.io/v1 and the kinds of the objects events are about. Nothing is
// written before Start.
func NewRecorder(c *Client, controller, instance string, log *slog.Logger) *Recorder {
	return newRecorder(c.scheme, clientSink{c}, controller, instance, log)
}

func newRecorder(scheme *runtime.Scheme, sink eventSink, controller, instance string, log *slog.Logger) *Recorder {
	return &Recorder{
		scheme:     scheme,
		sink:       sink,
		controller: controller,
		instance:   instance,
		log:        log,
		queue:      make(chan *eventsv1.Event, queueSize),
	}
}

// Eventf queues an Event about regarding (and related, which may be nil)
// of type eventtype (corev1.EventTypeNormal or EventTypeWarning), with a
// note made by fmt.Sprintf(note, args...). An Event that cannot be made
// (an object of a kind not in the scheme, an unknown type) or that finds the
// queue full is dropped with a log line.
func (r *Recorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	now := time.Now()
	msg := truncate(fmt.Sprintf(note, args...), noteLimit)
	drop := func(why string, attrs ...any) {
		r.log.Error("event dropped: "+why, append(attrs, "type", eventtype, "reason", reason, "note", msg)...)
	}
	if eventtype != corev1.EventTypeNormal && eventtype != corev1.EventTypeWarning {
		drop("unknown type")
		return
	}
	ref, err := reference(r.scheme, regarding)
	if err != nil {
		drop("no reference to the object", "error", err)
		return
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()),
			Namespace: ref.Namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           ref,
		Note:                msg,
		Type:                eventtype,
	}
	if ev.Namespace == "" {
		ev.Namespace = metav1.NamespaceDefault
	}
	if related != nil {
		// An event about its main object is still worth writing.
		if rel, err := reference(r.scheme, related); err == nil {
			ev.Related = &rel
		} else {
			r.log.Warn("event written without its related object", "reason", reason, "error", err)
		}
	}
	select {
	case r.queue <- ev:
	default:
		drop("queue full", "object", ref.Namespace+"/"+ref.Name)
	}
}

// reference returns the ObjectReference of obj, its kind from scheme.
func reference(scheme *runtime.Scheme, obj runtime.Object) (corev1.ObjectReference, error) {
	if v := reflect.ValueOf(obj); !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil() { // a typed nil would panic below
		return corev1.ObjectReference{}, errors.New("nil object")
	}
	gvk, err := objectKind(scheme, obj)
	if err != nil {
		return corev1.ObjectReference{}, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return corev1.ObjectReference{}, err
	}
	apiVersion, kind := gvk.ToAPIVersionAndKind()
	return corev1.ObjectReference{
		Kind:            kind,
		APIVersion:      apiVersion,
		Name:            m.GetName(),
		Namespace:       m.GetNamespace(),
		UID:             m.GetUID(),
		ResourceVersion: m.GetResourceVersion(),
	}, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Start runs the writer until ctx ends, and returns at once. Only the first
// call starts one.
func (r *Recorder) Start(ctx context.Context) {
	if r.started.Swap(true) {
		return
	}
	go r.run(ctx)
}

// objectID identifies an object across its versions (no resourceVersion).
type objectID struct {
	kind, namespace, name string
	uid                   types.UID
}

// seriesKey is what makes two events repeats of one another. Unlike
// tools/events it includes the note, so that events about different
// addresses or peers stay apart, and leaves out the regarding object's
// resourceVersion, which changes with every status write and would break
// every series.
type seriesKey struct {
	regarding, related              objectID
	eventType, reason, action, note string
}

func idOf(ref *corev1.ObjectReference) objectID {
	if ref == nil {
		return objectID{}
	}
	return objectID{kind: ref.Kind, namespace: ref.Namespace, name: ref.Name, uid: ref.UID}
}

func keyOf(ev *eventsv1.Event) seriesKey {
	return seriesKey{
		regarding: idOf(&ev.Regarding),
		related:   idOf(ev.Related),
		eventType: ev.Type,
		reason:    ev.Reason,
		action:    ev.Action,
		note:      ev.Note,
	}
}

// series is one written Event and the repeats seen since.
type series struct {
	ev      *eventsv1.Event // as created, without the server's fields
	count   int32           // occurrences seen, the first included
	last    time.Time       // of the latest occurrence
	written int32           // count the API server has
}

// run writes queued events until ctx ends.
func (r *Recorder) run(ctx context.Context) {
	seen := make(map[seriesKey]*series)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			r.record(ctx, seen, ev)
		case <-tick.C:
			r.flush(ctx, seen)
		}
	}
}

// record writes ev, or counts it into the series it repeats.
func (r *Recorder) record(ctx context.Context, seen map[seriesKey]*series, ev *eventsv1.Event) {
	k := keyOf(ev)
	at := ev.EventTime.Time
	if s, ok := seen[k]; ok && at.Sub(s.last) < seriesWindow {
		s.count++
		s.last = at
		if s.written == 1 {
			r.writeSeries(ctx, s)
		}
		return
	}
	if r.create(ctx, ev) {
		seen[k] = &series{ev: ev, count: 1, last: at, written: 1}
	} else {
		delete(seen, k)
	}
}

// flush writes the counts of series repeated since their last write, and
// forgets series that ended.
func (r *Recorder) flush(ctx context.Context, seen map[seriesKey]*series) {
	now := time.Now()
	for k, s := range seen {
		if s.count > s.written {
			r.writeSeries(ctx, s)
		}
		if now.Sub(s.last) >= seriesWindow {
			delete(seen, k)
		}
	}
}

// create creates ev, trying again a few times while the API server cannot
// be reached (an answer from it, such as a rejection, is final). It
// reports whether ev was created.
func (r *Recorder) create(ctx context.Context, ev *eventsv1.Event) bool {
	for try := 1; ; try++ {
		err := r.sink.create(ctx, ev)
		if err == nil {
			return true
		}
		var status apierrors.APIStatus
		if errors.As(err, &status) || try == createTries || ctx.Err() != nil {
			r.log.Error("event not written", "event", ev.Namespace+"/"+ev.Name, "reason", ev.Reason, "error", err)
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
}

// writeSeries patches s's Event with its count and last occurrence. If the
// Event is gone (it expired on the API server), it is made again with its
// series. A failed patch that may succeed later is left for the next flush,
// which ends with the series.
func (r *Recorder) writeSeries(ctx context.Context, s *series) {
	es := eventsv1.EventSeries{Count: s.count, LastObservedTime: metav1.NewMicroTime(s.last)}
	data, err := seriesPatch(es)
	if err != nil {
		r.log.Error("event series not written", "event", s.ev.Namespace+"/"+s.ev.Name, "error", err)
		s.written = s.count
		return
	}
	err = r.sink.patch(ctx, s.ev, data)
	if apierrors.IsNotFound(err) {
		ev := s.ev.DeepCopy()
		ev.Series = &es
		err = r.sink.create(ctx, ev)
	}
	var status apierrors.APIStatus
	switch {
	case err == nil:
		s.written = s.count
	case errors.As(err, &status):
		r.log.Error("event series not written", "event", s.ev.Namespace+"/"+s.ev.Name, "error", err)
		s.written = s.count
	default:
		r.log.Warn("event series not written, will try again", "event", s.ev.Namespace+"/"+s.ev.Name, "error", err)
	}
}

// seriesPatch returns the JSON merge patch (RFC 7396) that sets an Event's
// series, the only field a repeat changes.
func seriesPatch(es eventsv1.EventSeries) ([]byte, error) {
	return json.Marshal(struct {
		Series eventsv1.EventSeries `json:"series"`
	}{es})
}

// clientSink writes Events with a Client.
type clientSink struct{ c *Client }

func (s clientSink) create(ctx context.Context, ev *eventsv1.Event) error {
	// A copy: the answer must not overwrite the recorder's series state.
	return s.c.Create(ctx, ev.DeepCopy())
}

func (s clientSink) patch(ctx context.Context, ev *eventsv1.Event, data []byte) error {
	target := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ev.Namespace, Name: ev.Name}}
	return s.c.Patch(ctx, target, types.MergePatchType, data)
}
