// Package records keeps a small record of each object of one kind in the
// cluster, for a process that reads a few fields of many objects: the
// speaker reads five fields of every Service and EndpointSlice, the
// controller a parsed request and a few fields of every Service.
//
// An informer keeps the objects themselves, and lists them in one piece:
// at 10,000 Services its list held every decoded Service at once before
// a transform could slim any of them, and a slimmed Service is still a
// Service struct of some 600 bytes. A Store lists in pages, reduces each
// object to the caller's record as its page or watch event arrives, and
// keeps only records, so no full object outlives the page that brought it.
// The listing and watching is client-go's Reflector's (retries, backoff,
// bookmarks, re-lists); this package only feeds it reduced objects.
package records

import (
	"context"
	"fmt"
	"sync"
	"unique"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// DefaultPageSize is how many objects one list request asks for: the
// client-go pager's default.
const DefaultPageSize = 500

// Kind says how to list, watch and reduce one kind of object.
type Kind[R any] struct {
	// Name names the kind in errors and in the reflector's logs
	// ("services").
	Name string
	// List and Watch are a typed client's, across namespaces.
	List  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	Watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
	// Reduce returns obj's record, and false if the store needs nothing
	// of obj: it is then not kept (and forgotten, if an earlier version
	// was kept). The record must not point into obj's structs: obj
	// belongs to a page the store drops. Strings are fine; each is an
	// allocation of its own.
	Reduce func(obj runtime.Object) (R, bool)
	// Equal reports whether two records of the same object are the same
	// to the store's readers: an update to an equal record is stored but
	// not reported to subscribers. Nil: every update is reported.
	Equal func(a, b R) bool
	// PageSize is how many objects a list request asks for; 0 means
	// DefaultPageSize.
	PageSize int64
}

// Client is a typed client's List and Watch for one kind across
// namespaces, such as corev1client.ServiceInterface.
type Client[L runtime.Object] interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// KindOf is the Kind named name of the objects of type O that c lists and
// watches, reduced by reduce, with equal as Kind.Equal (nil: every update
// is news).
func KindOf[L, O runtime.Object, R any](name string, c Client[L], reduce func(O) (R, bool), equal func(a, b R) bool) Kind[R] {
	return Kind[R]{
		Name: name,
		List: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.List(ctx, o)
		},
		Watch: c.Watch,
		Reduce: func(obj runtime.Object) (R, bool) {
			o, ok := obj.(O)
			if !ok {
				var none R
				return none, false
			}
			return reduce(o)
		},
		Equal: equal,
	}
}

// ClientConfig is cfg for the typed client a Store lists and watches
// through. It speaks protobuf, the cheapest encoding for the API server to
// send and for us to decode, and asks for no gzip: the API server would
// compress every page and every watch event, and we decompress them, for
// bandwidth a cluster's own network does not lack (7% of the controller's
// CPU in a 10,000-Service burst, a fifth of a speaker's start-up CPU at
// 10,000 Services, and more of the API server's).
func ClientConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.DisableCompression = true
	return cfg
}

// Store holds a record of each object of one kind that Kind.Reduce keeps,
// by namespace and name. Run fills it. Safe for concurrent use.
type Store[R any] struct {
	kind Kind[R]

	mu     sync.RWMutex
	items  map[types.NamespacedName]R
	subs   []func(types.NamespacedName)
	synced chan struct{} // closed by the first Replace: the first list is in
}

// New returns an empty store of kind k. It starts nothing; Run does.
func New[R any](k Kind[R]) *Store[R] {
	if k.PageSize <= 0 {
		k.PageSize = DefaultPageSize
	}
	return &Store[R]{kind: k, items: map[types.NamespacedName]R{}, synced: make(chan struct{})}
}

// Run lists and watches the kind into the store until ctx ends.
func (s *Store[R]) Run(ctx context.Context) error {
	lw := &listWatch{ListWatch: &cache.ListWatch{
		ListWithContextFunc:  s.list,
		WatchFuncWithContext: s.watch,
	}}
	r := cache.NewReflectorWithOptions(lw, &item[R]{}, reflectorStore[R]{s}, cache.ReflectorOptions{Name: "records-" + s.kind.Name})
	r.RunWithContext(ctx)
	return nil
}

// HasSynced reports whether the first list is in the store.
func (s *Store[R]) HasSynced() bool {
	select {
	case <-s.synced:
		return true
	default:
		return false
	}
}

// Synced is closed once the first list is in the store.
func (s *Store[R]) Synced() <-chan struct{} { return s.synced }

// Get returns the record of the object nn.
func (s *Store[R]) Get(nn types.NamespacedName) (R, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.items[nn]
	return r, ok
}

// Len is the number of records.
func (s *Store[R]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
}

// Range calls f for each record, in no particular order, until f returns
// false. It holds the store's read lock meanwhile: f must not call the
// store's other methods, and it delays updates while it runs.
func (s *Store[R]) Range(f func(types.NamespacedName, R) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for nn, r := range s.items {
		if !f(nn, r) {
			return
		}
	}
}

// Subscribe calls f with the key of every record in the store now, then
// with the key of every record added, changed (see Kind.Equal) or
// removed, for as long as the store lives. f runs under the store's lock
// (on the caller's goroutine for the keys already in, then on the
// reflector's): it must be quick and must not call the store.
func (s *Store[R]) Subscribe(f func(types.NamespacedName)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
	for nn := range s.items {
		f(nn)
	}
}

// notify tells the subscribers of nn; the caller holds s.mu.
func (s *Store[R]) notify(nn types.NamespacedName) {
	for _, f := range s.subs {
		f(nn)
	}
}

// changed reports whether replacing old by new is news to subscribers.
func (s *Store[R]) changed(old, new R) bool {
	return s.kind.Equal == nil || !s.kind.Equal(old, new)
}

// put stores or forgets it (an item not kept, which is also what a deleted
// object is) and tells subscribers if that changes anything.
func (s *Store[R]) put(it *item[R]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.items[it.nn]
	switch {
	case it.keep:
		s.items[it.nn] = it.rec
		if !had || s.changed(old, it.rec) {
			s.notify(it.nn)
		}
	case had:
		delete(s.items, it.nn)
		s.notify(it.nn)
	}
}

// replace installs a whole new list, telling subscribers of what it adds,
// changes and removes.
func (s *Store[R]) replace(items []*item[R]) {
	next := make(map[types.NamespacedName]R, len(items))
	for _, it := range items {
		if it.keep {
			next[it.nn] = it.rec
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.items
	s.items = next
	for nn := range old {
		if _, ok := next[nn]; !ok {
			s.notify(nn)
		}
	}
	for nn, r := range next {
		if o, had := old[nn]; !had || s.changed(o, r) {
			s.notify(nn)
		}
	}
	select {
	case <-s.synced:
	default:
		close(s.synced)
	}
}

// reduce turns a decoded object into the item the reflector hands the
// store: its key, its resourceVersion (which the reflector tracks) and,
// if withRecord, its record (not for a bookmark, which carries only a
// resourceVersion, nor for a deleted object, which the store forgets).
func (s *Store[R]) reduce(obj runtime.Object, withRecord bool) (*item[R], error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, fmt.Errorf("records %s: %w", s.kind.Name, err)
	}
	it := &item[R]{
		// Thousands of objects share a few namespaces: hold each once.
		nn: types.NamespacedName{Namespace: unique.Make(m.GetNamespace()).Value(), Name: m.GetName()},
		rv: m.GetResourceVersion(),
	}
	if withRecord {
		it.rec, it.keep = s.kind.Reduce(obj)
	}
	return it, nil
}

// list lists every object in pages and returns their items as one list,
// which the reflector takes as the whole.
//
// It always asks for the latest state (resourceVersion ""), whatever the
// reflector asks for: for "0" (any state, its first list) the API server
// answers from its watch cache in one piece and ignores the page size,
// which is what this package avoids. A consistent list is never older
// than what the reflector asked for, so it is always a valid answer; API
// servers from 1.34 on serve it, page by page, from the watch cache too.
func (s *Store[R]) list(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	opts.ResourceVersion, opts.ResourceVersionMatch = "", ""
	opts.Limit, opts.Continue = s.kind.PageSize, ""
	out := &itemList{}
	for {
		page, err := s.kind.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		lm, err := meta.ListAccessor(page)
		if err != nil {
			return nil, fmt.Errorf("records %s: %w", s.kind.Name, err)
		}
		err = meta.EachListItem(page, func(obj runtime.Object) error {
			it, err := s.reduce(obj, true)
			if err == nil && it.keep {
				out.Items = append(out.Items, it)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if lm.GetContinue() == "" {
			out.ResourceVersion = lm.GetResourceVersion()
			return out, nil
		}
		opts.Continue = lm.GetContinue()
	}
}

// watch watches from the reflector's resourceVersion and reduces each
// event's object as it arrives.
func (s *Store[R]) watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := s.kind.Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	rw := &reducedWatch{in: w, out: make(chan watch.Event), stop: make(chan struct{})}
	go rw.run(s.reduceEvent)
	return rw, nil
}

// reduceEvent is e with its object reduced to an item.
func (s *Store[R]) reduceEvent(e watch.Event) watch.Event {
	if e.Type == watch.Error {
		return e // a Status, which the reflector reads
	}
	it, err := s.reduce(e.Object, e.Type == watch.Added || e.Type == watch.Modified)
	if err != nil {
		return watch.Event{Type: watch.Error, Object: &metav1.Status{
			Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInternalError, Code: 500,
		}}
	}
	e.Object = it
	return e
}

// reducedWatch passes a watch's events on, reduced. Unlike watch.Filter,
// its goroutine ends when the reader stops it, even with an event in
// hand that nobody will read (the reflector stops reading at an error
// or when it stops).
type reducedWatch struct {
	in   watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
}

func (w *reducedWatch) run(reduce func(watch.Event) watch.Event) {
	defer close(w.out)
	for e := range w.in.ResultChan() {
		select {
		case w.out <- reduce(e):
		case <-w.stop:
			return
		}
	}
}

func (w *reducedWatch) ResultChan() <-chan watch.Event { return w.out }

// Stop stops the watch; ResultChan is closed soon after.
func (w *reducedWatch) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.in.Stop()
	})
}

// listWatch is the reflector's ListerWatcher. It says it cannot stream
// the first list as watch events (client-go's WatchListClient): that
// path collects every object before handing any to the store, and its
// end-of-list bookmark carries an annotation the items here do not keep.
type listWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported is client-go's opt-out of streaming
// lists (watchlist.DoesClientNotSupportWatchListSemantics).
func (*listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// item is an object as the reflector sees it: enough metadata for the
// reflector (its resourceVersion) and the store (its key), and the record.
type item[R any] struct {
	nn   types.NamespacedName
	rv   string
	rec  R
	keep bool
}

func (it *item[R]) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject is a shallow copy: records are never changed once made.
func (it *item[R]) DeepCopyObject() runtime.Object { c := *it; return &c }

// GetObjectMeta gives the reflector the resourceVersion, and the
// reflector's error messages the name.
func (it *item[R]) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: it.nn.Namespace, Name: it.nn.Name, ResourceVersion: it.rv}
}

// itemList is a list of items as the reflector reads one.
type itemList struct {
	metav1.ListMeta
	Items []runtime.Object
}

func (l *itemList) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (l *itemList) DeepCopyObject() runtime.Object {
	c := *l
	c.Items = append([]runtime.Object(nil), l.Items...)
	return &c
}

// reflectorStore is the cache.ReflectorStore the reflector writes items
// to.
type reflectorStore[R any] struct{ s *Store[R] }

func (r reflectorStore[R]) Add(obj any) error    { return r.Update(obj) }
func (r reflectorStore[R]) Resync() error        { return nil }
func (r reflectorStore[R]) Update(obj any) error { return r.with(obj, r.s.put) }

func (r reflectorStore[R]) Delete(obj any) error {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	return r.with(obj, func(it *item[R]) { r.s.put(&item[R]{nn: it.nn}) })
}

func (r reflectorStore[R]) Replace(objs []any, _ string) error {
	items := make([]*item[R], 0, len(objs))
	for _, o := range objs {
		it, ok := o.(*item[R])
		if !ok {
			return fmt.Errorf("records %s: the reflector stored a %T", r.s.kind.Name, o)
		}
		items = append(items, it)
	}
	r.s.replace(items)
	return nil
}

func (r reflectorStore[R]) with(obj any, f func(*item[R])) error {
	it, ok := obj.(*item[R])
	if !ok {
		return fmt.Errorf("records %s: the reflector stored a %T", r.s.kind.Name, obj)
	}
	f(it)
	return nil
}
