package records

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// TestListsInPages checks that the first list arrives in pages of
// PageSize, each asking for the latest state (resourceVersion ""), each
// continuing the one before, and that the store then holds exactly the
// records Reduce kept.
func TestListsInPages(t *testing.T) {
	c, ns := namespace(t)
	want := map[types.NamespacedName]svc{}
	for i := range 50 {
		name := fmt.Sprintf("web-%02d", i)
		if i%5 == 0 {
			create(t, c.Services(ns), service(name, headless, skip(true)))
			continue
		}
		create(t, c.Services(ns), service(name, headless))
		want[types.NamespacedName{Namespace: ns, Name: name}] = svc{port: 80}
	}

	type page struct {
		opts metav1.ListOptions
		next string // the continue token the page returned
	}
	var (
		mu    sync.Mutex
		pages []page
	)
	k := serviceKind(c, ns)
	k.PageSize = 7
	list := k.List
	k.List = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		obj, err := list(ctx, o)
		p := page{opts: o}
		if err == nil {
			p.next = obj.(*corev1.ServiceList).Continue
		}
		mu.Lock()
		defer mu.Unlock()
		pages = append(pages, p)
		return obj, err
	}
	s := New(k)
	start(t, s)
	await(t, s.Synced(), "first list")

	if diff := cmp.Diff(want, contents(t, s), cmp.AllowUnexported(svc{})); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	mu.Lock()
	got := slices.Clone(pages)
	mu.Unlock()
	// The test's namespace alone needs ceil(50/7) pages.
	if len(got) < 8 {
		t.Errorf("%d list requests, want at least 8 pages of 7", len(got))
	}
	cont := ""
	for i, p := range got {
		if diff := cmp.Diff(metav1.ListOptions{Limit: 7, Continue: cont}, p.opts); diff != "" {
			t.Errorf("request %d (-want +got):\n%s", i, diff)
		}
		cont = p.next
	}
}

// TestSynced checks that a store reports itself synced only once its
// first list is in: not before Run, nor while the list is under way.
func TestSynced(t *testing.T) {
	c, ns := namespace(t)
	create(t, c.Services(ns), service("web"))
	k := serviceKind(c, ns)
	listing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	list := k.List
	k.List = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		once.Do(func() { close(listing) })
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return list(ctx, o)
	}
	s := New(k)
	synced := func(when string, want bool) {
		t.Helper()
		if got := s.HasSynced(); got != want {
			t.Errorf("%s: HasSynced() = %v, want %v", when, got, want)
		}
		closed := false
		select {
		case <-s.Synced():
			closed = true
		default:
		}
		if closed != want {
			t.Errorf("%s: Synced() closed = %v, want %v", when, closed, want)
		}
	}

	synced("before Run", false)
	start(t, s)
	await(t, listing, "list request")
	synced("during the first list", false)
	close(release)
	await(t, s.Synced(), "first list")
	synced("after the first list", true)
	// Synced promises the list is in: no waiting for it.
	if got, ok := s.Get(types.NamespacedName{Namespace: ns, Name: "web"}); !ok || got != (svc{port: 80}) {
		t.Errorf("Get(web) = %+v, %v right after Synced; want {port:80}, true", got, ok)
	}
}

// TestWatch checks that creates, updates and deletes after the first list
// reach the store and its subscribers, and that a subscriber is told of
// every record there at once.
func TestWatch(t *testing.T) {
	w := newWatcher(t, equalSvc, service("a"), service("b"))
	w.check(t, map[string]svc{"a": {port: 80}, "b": {port: 80}}, []string{"a", "b"})
	w.run(t, []step{
		{"create", func(t *testing.T, w *watcher) { create(t, w.c, service("c")) },
			map[string]svc{"a": {port: 80}, "b": {port: 80}, "c": {port: 80}}, []string{"c"}},
		{"update", func(t *testing.T, w *watcher) { w.update(t, "c", loadBalancer) },
			map[string]svc{"a": {port: 80}, "b": {port: 80}, "c": {port: 80, lb: true}}, []string{"c"}},
		{"delete", func(t *testing.T, w *watcher) { w.delete(t, "a") },
			map[string]svc{"b": {port: 80}, "c": {port: 80, lb: true}}, []string{"a"}},
	})
	w.subscribe()
	if diff := cmp.Diff([]string{"b", "c"}, w.take()); diff != "" {
		t.Errorf("a late subscriber was told of (-want +got):\n%s", diff)
	}
}

// TestNotKept checks that what Reduce does not keep is not stored, that a
// record goes (and its subscribers hear of it) when Reduce stops keeping
// its object, and comes back when Reduce keeps it again.
func TestNotKept(t *testing.T) {
	w := newWatcher(t, equalSvc, service("kept"), service("skipped", skip(true)))
	w.check(t, map[string]svc{"kept": {port: 80}}, []string{"kept"})
	w.run(t, []step{
		{"kept, then not", func(t *testing.T, w *watcher) { w.update(t, "kept", skip(true)) },
			map[string]svc{}, []string{"kept"}},
		{"not kept, changed", func(t *testing.T, w *watcher) { w.update(t, "skipped", port(81)) },
			map[string]svc{}, nil},
		{"not kept, then kept", func(t *testing.T, w *watcher) { w.update(t, "kept", skip(false)) },
			map[string]svc{"kept": {port: 80}}, []string{"kept"}},
		{"not kept, created", func(t *testing.T, w *watcher) { create(t, w.c, service("new", skip(true))) },
			map[string]svc{"kept": {port: 80}}, nil},
		{"not kept, deleted", func(t *testing.T, w *watcher) { w.delete(t, "skipped") },
			map[string]svc{"kept": {port: 80}}, nil},
	})
}

// TestEqual checks that an update Kind.Equal calls equal is stored but not
// reported, that one it calls different is reported, and that without
// Equal every update is.
func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		name  string
		equal func(a, b svc) bool
		steps []step
	}{
		{"Equal", equalSvc, []step{
			{"ignored field", func(t *testing.T, w *watcher) { w.update(t, "a", annotate("x")) },
				map[string]svc{"a": {port: 80, note: "x"}}, nil},
			{"compared field", func(t *testing.T, w *watcher) { w.update(t, "a", loadBalancer) },
				map[string]svc{"a": {port: 80, lb: true, note: "x"}}, []string{"a"}},
			{"another compared field", func(t *testing.T, w *watcher) { w.update(t, "a", port(81)) },
				map[string]svc{"a": {port: 81, lb: true, note: "x"}}, []string{"a"}},
		}},
		{"nil Equal", nil, []step{
			{"any field", func(t *testing.T, w *watcher) { w.update(t, "a", annotate("x")) },
				map[string]svc{"a": {port: 80, note: "x"}}, []string{"a"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWatcher(t, tc.equal, service("a"))
			w.check(t, map[string]svc{"a": {port: 80}}, []string{"a"})
			w.run(t, tc.steps)
		})
	}
}

// keyed and unkept are items as the reflector hands them to the store.
func keyed(name string, r svc) *item[svc] {
	return &item[svc]{nn: types.NamespacedName{Namespace: "shop", Name: name}, rec: r, keep: true}
}

func unkept(name string) *item[svc] {
	return &item[svc]{nn: types.NamespacedName{Namespace: "shop", Name: name}}
}

// storeWith returns a store holding items, through the first Replace, and
// the names its subscriber is told of from then on.
func storeWith(t *testing.T, items ...*item[svc]) (*Store[svc], func() []string) {
	t.Helper()
	s := New(Kind[svc]{Name: "services", Equal: equalSvc})
	if err := (reflectorStore[svc]{s}).Replace(anys(items), "1"); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	var got []string
	s.Subscribe(func(nn types.NamespacedName) { got = append(got, nn.Name) })
	return s, func() []string { g := got; got = nil; slices.Sort(g); return g }
}

func anys(items []*item[svc]) []any {
	var objs []any
	for _, it := range items {
		objs = append(objs, it)
	}
	return objs
}

func names(m map[types.NamespacedName]svc) map[string]svc {
	out := map[string]svc{}
	for nn, r := range m {
		out[nn.Name] = r
	}
	return out
}

// TestReflectorStoreEvents checks what the store does with each watch
// event the reflector hands it: what it stores, and whom it tells.
func TestReflectorStoreEvents(t *testing.T) {
	a, b := svc{port: 80}, svc{port: 443}
	for _, tc := range []struct {
		name     string
		event    func(reflectorStore[svc]) error
		want     map[string]svc
		notified []string
	}{
		{"Add new", func(r reflectorStore[svc]) error { return r.Add(keyed("c", a)) },
			map[string]svc{"a": a, "b": b, "c": a}, []string{"c"}},
		{"Add not kept", func(r reflectorStore[svc]) error { return r.Add(unkept("c")) },
			map[string]svc{"a": a, "b": b}, nil},
		{"Update equal", func(r reflectorStore[svc]) error { return r.Update(keyed("a", svc{port: 80, note: "x"})) },
			map[string]svc{"a": {port: 80, note: "x"}, "b": b}, nil},
		{"Update changed", func(r reflectorStore[svc]) error { return r.Update(keyed("a", svc{port: 80, lb: true})) },
			map[string]svc{"a": {port: 80, lb: true}, "b": b}, []string{"a"}},
		{"Update no longer kept", func(r reflectorStore[svc]) error { return r.Update(unkept("a")) },
			map[string]svc{"b": b}, []string{"a"}},
		{"Delete", func(r reflectorStore[svc]) error { return r.Delete(keyed("a", a)) },
			map[string]svc{"b": b}, []string{"a"}},
		{"Delete final state unknown", func(r reflectorStore[svc]) error {
			return r.Delete(cache.DeletedFinalStateUnknown{Key: "shop/a", Obj: keyed("a", a)})
		}, map[string]svc{"b": b}, []string{"a"}},
		{"Delete absent", func(r reflectorStore[svc]) error { return r.Delete(keyed("c", a)) },
			map[string]svc{"a": a, "b": b}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, notified := storeWith(t, keyed("a", a), keyed("b", b))
			notified() // the subscriber's first call
			if err := tc.event(reflectorStore[svc]{s}); err != nil {
				t.Fatalf("event: %v", err)
			}
			if diff := cmp.Diff(tc.want, names(contents(t, s)), cmp.AllowUnexported(svc{})); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.notified, notified(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("notified (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReflectorStoreReplace checks a re-list: the store becomes the new
// list and tells subscribers of what it adds, changes and removes only.
func TestReflectorStoreReplace(t *testing.T) {
	a, b := svc{port: 80}, svc{port: 443}
	for _, tc := range []struct {
		name          string
		before, after []*item[svc]
		want          map[string]svc
		notified      []string
	}{
		{"same", []*item[svc]{keyed("a", a)}, []*item[svc]{keyed("a", a)}, map[string]svc{"a": a}, nil},
		{"equal", []*item[svc]{keyed("a", a)}, []*item[svc]{keyed("a", svc{port: 80, note: "x"})},
			map[string]svc{"a": {port: 80, note: "x"}}, nil},
		{"changed", []*item[svc]{keyed("a", a)}, []*item[svc]{keyed("a", b)}, map[string]svc{"a": b}, []string{"a"}},
		{"added", []*item[svc]{keyed("a", a)}, []*item[svc]{keyed("a", a), keyed("b", b)},
			map[string]svc{"a": a, "b": b}, []string{"b"}},
		{"gone", []*item[svc]{keyed("a", a), keyed("b", b)}, []*item[svc]{keyed("a", a)},
			map[string]svc{"a": a}, []string{"b"}},
		{"no longer kept", []*item[svc]{keyed("a", a), keyed("b", b)}, []*item[svc]{keyed("a", a), unkept("b")},
			map[string]svc{"a": a}, []string{"b"}},
		{"all gone", []*item[svc]{keyed("a", a), keyed("b", b)}, nil, map[string]svc{}, []string{"a", "b"}},
		{"from nothing", nil, []*item[svc]{keyed("a", a), unkept("b")}, map[string]svc{"a": a}, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, notified := storeWith(t, tc.before...)
			if !s.HasSynced() {
				t.Error("HasSynced() = false after the first Replace")
			}
			await(t, s.Synced(), "Synced after the first Replace")
			notified()
			if err := (reflectorStore[svc]{s}).Replace(anys(tc.after), "2"); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			if diff := cmp.Diff(tc.want, names(contents(t, s)), cmp.AllowUnexported(svc{})); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.notified, notified(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("notified (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReflectorStoreRejects checks that the store refuses objects that are
// not its items rather than dropping them unseen.
func TestReflectorStoreRejects(t *testing.T) {
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "a"}}
	s, notified := storeWith(t, keyed("a", svc{port: 80}))
	r := reflectorStore[svc]{s}
	for name, err := range map[string]error{
		"Add":                        r.Add(web),
		"Update":                     r.Update(web),
		"Delete":                     r.Delete(web),
		"Delete final state unknown": r.Delete(cache.DeletedFinalStateUnknown{Key: "shop/a", Obj: web}),
		"Replace":                    r.Replace([]any{web}, "2"),
	} {
		if err == nil {
			t.Errorf("%s(*Service) = nil error", name)
		}
	}
	if diff := cmp.Diff(map[string]svc{"a": {port: 80}}, names(contents(t, s)), cmp.AllowUnexported(svc{})); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	// Only the subscriber's first call, of the record already there.
	if diff := cmp.Diff([]string{"a"}, notified()); diff != "" {
		t.Errorf("notified (-want +got):\n%s", diff)
	}
}

// TestWatchReducesEvents checks what the reflector sees of each watch
// event: an item with Reduce's record, a bare resourceVersion for a
// bookmark, and errors as Status errors.
func TestWatchReducesEvents(t *testing.T) {
	web := service("web", loadBalancer)
	web.Namespace, web.ResourceVersion = "shop", "5"
	skipped := service("web", skip(true))
	skipped.Namespace, skipped.ResourceVersion = "shop", "6"
	// A real bookmark carries only a resourceVersion. This one has a name
	// Reduce would keep, so that a record in the result would show that
	// Reduce ran.
	bookmark := service("web")
	bookmark.Namespace, bookmark.ResourceVersion = "shop", "9"
	expired := &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old"}
	_, noMeta := meta.Accessor(&corev1.ServiceList{})
	nn := types.NamespacedName{Namespace: "shop", Name: "web"}
	for _, tc := range []struct {
		name     string
		in, want watch.Event
	}{
		{"added", watch.Event{Type: watch.Added, Object: web},
			watch.Event{Type: watch.Added, Object: &item[svc]{nn: nn, rv: "5", rec: svc{port: 80, lb: true}, keep: true}}},
		{"modified, not kept", watch.Event{Type: watch.Modified, Object: skipped},
			watch.Event{Type: watch.Modified, Object: &item[svc]{nn: nn, rv: "6"}}},
		{"bookmark", watch.Event{Type: watch.Bookmark, Object: bookmark},
			watch.Event{Type: watch.Bookmark, Object: &item[svc]{nn: nn, rv: "9"}}},
		{"error", watch.Event{Type: watch.Error, Object: expired}, watch.Event{Type: watch.Error, Object: expired}},
		{"no metadata", watch.Event{Type: watch.Added, Object: &corev1.ServiceList{}},
			watch.Event{Type: watch.Error, Object: &metav1.Status{Status: metav1.StatusFailure, Code: 500,
				Reason: metav1.StatusReasonInternalError, Message: "records services: " + noMeta.Error()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := watch.NewFakeWithChanSize(1, false)
			var gotOpts metav1.ListOptions
			s := New(Kind[svc]{Name: "services", Reduce: reduceIn("shop"),
				Watch: func(_ context.Context, o metav1.ListOptions) (watch.Interface, error) { gotOpts = o; return fake, nil }})
			timeout := int64(300)
			opts := metav1.ListOptions{ResourceVersion: "4", AllowWatchBookmarks: true, TimeoutSeconds: &timeout}
			w, err := s.watch(t.Context(), opts)
			if err != nil {
				t.Fatalf("watch: %v", err)
			}
			defer w.Stop()
			if diff := cmp.Diff(opts, gotOpts); diff != "" {
				t.Errorf("watch options (-want +got):\n%s", diff)
			}
			fake.Action(tc.in.Type, tc.in.Object)
			select {
			case got := <-w.ResultChan():
				if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(item[svc]{}, svc{})); diff != "" {
					t.Errorf("event (-want +got):\n%s", diff)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no event after 10s")
			}
		})
	}
}

// TestWatchStopsWithEventInHand: a watch whose reader stops reading (the
// reflector does at an error, or when it stops) ends its goroutine when
// stopped, even with an event converted and nobody to take it.
func TestWatchStopsWithEventInHand(t *testing.T) {
	web := service("web", loadBalancer)
	web.Namespace, web.ResourceVersion = "shop", "5"
	fake := watch.NewFakeWithChanSize(1, false)
	s := New(Kind[svc]{Name: "services", Reduce: reduceIn("shop"),
		Watch: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return fake, nil }})
	w, err := s.watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	fake.Add(web) // converted and then held: nobody reads
	rw := w.(*reducedWatch)
	time.Sleep(50 * time.Millisecond) // let it take the event in hand
	w.Stop()
	// With nobody reading, the goroutine sees the stop and closes the
	// channel; one still waiting to send (as watch.Filter's would be) hands
	// the event to the first reader instead.
	time.Sleep(200 * time.Millisecond)
	select {
	case e, open := <-rw.out:
		if open {
			t.Fatalf("got %v after Stop: the goroutine was still waiting to send it", e.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch's goroutine did not end after Stop")
	}
}

// TestKindOf checks the Kind a typed client makes: lists and watches go
// to the client, objects of another type are not kept (rather than
// panicking), and Equal is passed on.
func TestKindOf(t *testing.T) {
	c := fakeServices{list: &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}}, w: watch.NewFake()}
	reduce := func(s *corev1.Service) (int32, bool) { return s.Spec.Ports[0].Port, true }
	k := KindOf("services", Client[*corev1.ServiceList](c), reduce, func(a, b int32) bool { return a == b })
	if got, err := k.List(t.Context(), metav1.ListOptions{}); err != nil || got != c.list {
		t.Errorf("List = %v, %v; want the client's list", got, err)
	}
	if got, err := k.Watch(t.Context(), metav1.ListOptions{}); err != nil || got != c.w {
		t.Errorf("Watch = %v, %v; want the client's watch", got, err)
	}
	if port, kept := k.Reduce(service("web")); !kept || port != 80 {
		t.Errorf("Reduce(a Service) = %v, %v; want 80, true", port, kept)
	}
	if _, kept := k.Reduce(&corev1.ConfigMap{}); kept {
		t.Error("Reduce(a ConfigMap) kept it")
	}
	if !k.Equal(1, 1) || k.Equal(1, 2) {
		t.Error("Equal is not the one given")
	}
}

type fakeServices struct {
	list *corev1.ServiceList
	w    watch.Interface
}

func (f fakeServices) List(context.Context, metav1.ListOptions) (*corev1.ServiceList, error) {
	return f.list, nil
}

func (f fakeServices) Watch(context.Context, metav1.ListOptions) (watch.Interface, error) {
	return f.w, nil
}
