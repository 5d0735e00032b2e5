package apiclient

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
)

// InformerOptions narrows and shapes what one informer of a Cache holds.
// The zero value watches every object of the kind.
type InformerOptions struct {
	Namespace     string // "" all
	FieldSelector string // "" none
	// Transform, if set, runs on each object before it is stored. In any
	// case managedFields are dropped first: nothing reads them from a cache,
	// and they are often the largest part of an object (like
	// controller-runtime's TransformStripManagedFields).
	Transform toolscache.TransformFunc
}

// Cache keeps informers of the kinds added to it and reads objects back
// from them, like controller-runtime's cache but only for the kinds added:
// Get or List of another kind is an error, not a new informer.
//
// Add every kind, then Start; Get and List are safe for concurrent use
// from then on.
type Cache struct {
	c *Client

	mu        sync.Mutex
	started   bool
	informers map[schema.GroupVersionKind]toolscache.SharedIndexInformer
}

// NewCache returns an empty cache reading through c.
func NewCache(c *Client) *Cache {
	return &Cache{c: c, informers: make(map[schema.GroupVersionKind]toolscache.SharedIndexInformer)}
}

// errStarted is returned by Add after Start.
var errStarted = errors.New("cache already started")

// Add registers the informer of obj's kind (a single object type, such as
// &corev1.Node{}; its list type is the scheme's <Kind>List) and returns it,
// so the caller can add event handlers. Adding a kind again returns the
// informer of the first Add, whose options hold. Add must be called before
// Start.
func (ca *Cache) Add(obj runtime.Object, o InformerOptions) (toolscache.SharedIndexInformer, error) {
	gvk, err := objectKind(ca.c.scheme, obj)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if inf, ok := ca.informers[gvk]; ok {
		return inf, nil
	}
	if ca.started {
		return nil, fmt.Errorf("add %s: %w", gvk.Kind, errStarted)
	}
	list, err := ca.c.scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return nil, fmt.Errorf("list kind of %s: %w", gvk.Kind, err)
	}
	lf, wf := ca.c.ListWatch(list, o.Namespace, o.FieldSelector)
	lw := &toolscache.ListWatch{ListWithContextFunc: lf, WatchFuncWithContext: wf}
	inf := toolscache.NewSharedIndexInformerWithOptions(lw, obj, toolscache.SharedIndexInformerOptions{
		ObjectDescription: gvk.String(),
	})
	if err := inf.SetTransform(stripManagedFields(o.Transform)); err != nil {
		return nil, fmt.Errorf("transform of %s: %w", gvk.Kind, err)
	}
	ca.informers[gvk] = inf
	return inf, nil
}

// stripManagedFields returns a transform that drops managedFields and then
// runs next, if any.
func stripManagedFields(next toolscache.TransformFunc) toolscache.TransformFunc {
	return func(in interface{}) (interface{}, error) {
		if m, err := meta.Accessor(in); err == nil && m.GetManagedFields() != nil {
			m.SetManagedFields(nil)
		}
		if next == nil {
			return in, nil
		}
		return next(in)
	}
}

// Start runs every informer added until ctx ends, and returns at once. The
// informers' goroutines end with ctx.
func (ca *Cache) Start(ctx context.Context) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.started {
		return
	}
	ca.started = true
	for _, inf := range ca.informers {
		go inf.RunWithContext(ctx)
	}
}

// WaitForSync waits until every informer has listed its objects once, and
// reports whether they all have (false: ctx ended first).
func (ca *Cache) WaitForSync(ctx context.Context) bool {
	ca.mu.Lock()
	synced := make([]toolscache.InformerSynced, 0, len(ca.informers))
	for _, inf := range ca.informers {
		synced = append(synced, inf.HasSynced)
	}
	ca.mu.Unlock()
	return toolscache.WaitForCacheSync(ctx.Done(), synced...)
}

// informer returns the informer of gvk.
func (ca *Cache) informer(gvk schema.GroupVersionKind) (toolscache.SharedIndexInformer, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	inf, ok := ca.informers[gvk]
	if !ok {
		return nil, fmt.Errorf("no informer for %s in the cache", gvk)
	}
	return inf, nil
}

// Get copies the cached object at key into obj. A missing object gives an
// error for which apierrors.IsNotFound is true. obj's kind must have been
// added.
func (ca *Cache) Get(_ context.Context, key types.NamespacedName, obj runtime.Object) error {
	gvk, err := objectKind(ca.c.scheme, obj)
	if err != nil {
		return err
	}
	inf, err := ca.informer(gvk)
	if err != nil {
		return err
	}
	k := key.Name
	if key.Namespace != "" {
		k = key.Namespace + "/" + key.Name
	}
	item, exists, err := inf.GetIndexer().GetByKey(k)
	if err != nil {
		return err
	}
	if !exists {
		gvr, _ := resource(gvk)
		return apierrors.NewNotFound(gvr.GroupResource(), key.Name)
	}
	src, ok := item.(runtime.Object)
	if !ok {
		return fmt.Errorf("cache of %s holds a %T", gvk.Kind, item)
	}
	dst := reflect.ValueOf(obj)
	cp := reflect.ValueOf(src.DeepCopyObject())
	if dst.Kind() != reflect.Pointer || cp.Type() != dst.Type() {
		return fmt.Errorf("cache of %s holds a %T, cannot copy it into a %T", gvk.Kind, item, obj)
	}
	dst.Elem().Set(cp.Elem())
	return nil
}

// List sets list's Items to every cached object of its kind, in no
// particular order. The items are deep copies unless noCopy; then they
// share memory with the cache and must not be modified, which saves the
// copies for a caller that only reads them.
func (ca *Cache) List(_ context.Context, list runtime.Object, noCopy bool) error {
	_, item, err := listKind(ca.c.scheme, list)
	if err != nil {
		return err
	}
	inf, err := ca.informer(item)
	if err != nil {
		return err
	}
	cached := inf.GetStore().List()
	objs := make([]runtime.Object, 0, len(cached))
	for _, it := range cached {
		o, ok := it.(runtime.Object)
		if !ok {
			return fmt.Errorf("cache of %s holds a %T", item.Kind, it)
		}
		if !noCopy {
			o = o.DeepCopyObject()
		}
		objs = append(objs, o)
	}
	return meta.SetList(list, objs)
}
