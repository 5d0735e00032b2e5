package apiclient

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func TestKeyOf(t *testing.T) {
	svc := corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: "default", Name: "web", UID: "u1", ResourceVersion: "10"}
	pool := &corev1.ObjectReference{Kind: "IPPool", APIVersion: "ironlb.io/v1alpha1", Name: "pool", UID: "u2"}
	base := eventsv1.Event{Regarding: svc, Type: "Normal", Reason: "Announced", Action: "Announce", Note: "192.0.2.1 from node-a"}
	for _, tc := range []struct {
		name   string
		change func(*eventsv1.Event)
		same   bool
	}{
		{"identical", func(*eventsv1.Event) {}, true},
		{"another resourceVersion", func(e *eventsv1.Event) { e.Regarding.ResourceVersion = "11" }, true},
		{"another name and time", func(e *eventsv1.Event) { e.Name = "web.2"; e.EventTime = metav1.NowMicro() }, true},
		{"another uid", func(e *eventsv1.Event) { e.Regarding.UID = "u3" }, false},
		{"another object", func(e *eventsv1.Event) { e.Regarding.Name = "db" }, false},
		{"a related object", func(e *eventsv1.Event) { e.Related = pool }, false},
		{"another type", func(e *eventsv1.Event) { e.Type = "Warning" }, false},
		{"another reason", func(e *eventsv1.Event) { e.Reason = "Withdrawn" }, false},
		{"another action", func(e *eventsv1.Event) { e.Action = "Withdraw" }, false},
		{"another note", func(e *eventsv1.Event) { e.Note = "192.0.2.2 from node-a" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := base.DeepCopy()
			tc.change(ev)
			if got := keyOf(ev) == keyOf(&base); got != tc.same {
				t.Errorf("same series = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestSeriesPatch(t *testing.T) {
	at := time.Date(2026, 12, 7, 2, 30, 0, 123456789, time.UTC)
	got, err := seriesPatch(eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(at)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"series":{"count":3,"lastObservedTime":"2026-12-07T02:30:00.123456Z"}}`
	if string(got) != want {
		t.Errorf("seriesPatch = %s, want %s", got, want)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"longer one", 6, "longer"},
		{"añb", 2, "a"}, // ñ is two bytes: cut, not split
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// fakeSink records the writes of a Recorder.
type fakeSink struct {
	mu        sync.Mutex
	writes    []string // "create <note>" or "patch <name> <patch>"
	createErr error
	patchErr  error
}

func (f *fakeSink) create(_ context.Context, ev *eventsv1.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := "create " + ev.Note
	if ev.Series != nil {
		w += " with series"
	}
	f.writes = append(f.writes, w)
	return f.createErr
}

func (f *fakeSink) patch(_ context.Context, ev *eventsv1.Event, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, "patch "+ev.Note+" "+seriesCount(string(data)))
	return f.patchErr
}

// seriesCount picks the count out of a series patch.
func seriesCount(patch string) string {
	_, after, _ := strings.Cut(patch, `"count":`)
	n, _, _ := strings.Cut(after, ",")
	return n
}

func (f *fakeSink) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRecorderSeries follows one series through time: created, its first
// repeat written at once, later ones batched per flush, ended after the
// window, and started again.
func TestRecorderSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{}
		r := newRecorder(newScheme(t), sink, "ironlb.io/speaker", "node-a", discard())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r.Start(ctx)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "u1"}}
		step := func(name string, want []string) {
			t.Helper()
			synctest.Wait()
			if diff := cmp.Diff(want, sink.take()); diff != "" {
				t.Errorf("%s: writes (-want +got):\n%s", name, diff)
			}
		}

		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "a")
		step("first", []string{"create a"})
		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "a")
		step("first repeat", []string{"patch a 2"})
		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "a")
		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "a")
		step("later repeats", nil)
		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "b")
		step("another note", []string{"create b"})
		time.Sleep(flushInterval)
		step("flush", []string{"patch a 4"})
		time.Sleep(flushInterval)
		step("nothing new", nil)
		time.Sleep(seriesWindow)
		step("ended", nil)
		r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s", "a")
		step("after the window", []string{"create a"})
	})
}

// TestRecorderGoneEvent recreates an Event that expired on the API server.
func TestRecorderGoneEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{patchErr: apierrors.NewNotFound(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "x")}
		r := newRecorder(newScheme(t), sink, "ironlb.io/speaker", "node-a", discard())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r.Start(ctx)
		pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool", UID: "u2"}}
		r.Eventf(pool, nil, corev1.EventTypeWarning, "Invalid", "Validate", "bad")
		r.Eventf(pool, nil, corev1.EventTypeWarning, "Invalid", "Validate", "bad")
		synctest.Wait()
		want := []string{"create bad", "patch bad 2", "create bad with series"}
		if diff := cmp.Diff(want, sink.take()); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
}

// TestRecorderDrops checks what Eventf refuses without blocking: an
// unknown type, an object of a kind not in the scheme, a full queue.
func TestRecorderDrops(t *testing.T) {
	sink := &fakeSink{}
	r := newRecorder(newScheme(t), sink, "ironlb.io/speaker", "node-a", discard())
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	r.Eventf(svc, nil, "Odd", "R", "A", "n")
	r.Eventf(&metav1.Status{}, nil, corev1.EventTypeNormal, "R", "A", "n")
	r.Eventf((*corev1.Service)(nil), nil, corev1.EventTypeNormal, "R", "A", "n")
	if n := len(r.queue); n != 0 {
		t.Errorf("%d events queued, want 0", n)
	}
	for range queueSize + 10 { // not started: the queue fills and Eventf must not block
		r.Eventf(svc, nil, corev1.EventTypeNormal, "R", "A", "n")
	}
	if n := len(r.queue); n != queueSize {
		t.Errorf("%d events queued, want %d", n, queueSize)
	}
}

func TestEventfFields(t *testing.T) {
	r := newRecorder(newScheme(t), &fakeSink{}, "ironlb.io/speaker", "node-a", discard())
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "n1", ResourceVersion: "7"}}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool", UID: "u2"}}
	r.Eventf(node, pool, corev1.EventTypeWarning, "Conflict", "Probe", "%s is also at %s", "192.0.2.1", strings.Repeat("x", 2000))
	ev := <-r.queue
	if !strings.HasPrefix(ev.Name, "node-a.") || ev.Namespace != "default" {
		t.Errorf("event %s/%s, want default/node-a.<hex>", ev.Namespace, ev.Name)
	}
	if len(ev.Note) != noteLimit {
		t.Errorf("note of %d bytes, want %d", len(ev.Note), noteLimit)
	}
	if ev.EventTime.IsZero() {
		t.Error("no eventTime")
	}
	got := []any{ev.ReportingController, ev.ReportingInstance, ev.Type, ev.Reason, ev.Action, ev.Regarding, *ev.Related}
	want := []any{"ironlb.io/speaker", "node-a", "Warning", "Conflict", "Probe",
		corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: "node-a", UID: "n1", ResourceVersion: "7"},
		corev1.ObjectReference{Kind: "IPPool", APIVersion: "ironlb.io/v1alpha1", Name: "pool", UID: "u2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event fields (-want +got):\n%s", diff)
	}
}
