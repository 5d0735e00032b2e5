package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client reads and writes the kinds registered in its scheme. It is safe
// for concurrent use.
//
// Every call decodes the answer into the object or list it was given, and
// the TypeMeta there is whatever the decoder leaves, not set by this
// package: the decoder clears the kind and apiVersion of the object itself
// (as client-go's typed clients do), while the items of a list keep what the
// server sent (custom resources carry them, built-in kinds do not). Callers
// must not rely on TypeMeta; Scheme().ObjectKinds gives the kind.
type Client struct {
	cfg    *rest.Config // a copy, never modified
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
	params runtime.ParameterCodec
	http   *http.Client

	mu   sync.Mutex
	rest map[schema.GroupVersion]*rest.RESTClient
}

// New returns a client for the kinds registered in scheme, talking to cfg's
// API server. It makes no request: each GroupVersion gets its
// rest.RESTClient on first use, all of them sharing one http.Client and so
// one connection pool.
//
// Content type and compression come from cfg, except for kinds that have no
// protobuf encoding (custom resources such as ironlb.io's): the API server
// serves those as JSON only, so their requests always use JSON.
func New(cfg *rest.Config, scheme *runtime.Scheme) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	return &Client{
		cfg:    cfg,
		scheme: scheme,
		codecs: serializer.NewCodecFactory(scheme),
		params: runtime.NewParameterCodec(scheme),
		http:   hc,
		rest:   make(map[schema.GroupVersion]*rest.RESTClient),
	}, nil
}

// Scheme returns the scheme the client was made with.
func (c *Client) Scheme() *runtime.Scheme { return c.scheme }

// restFor returns the REST client of gv, making it on first use.
func (c *Client) restFor(gv schema.GroupVersion) (*rest.RESTClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc, ok := c.rest[gv]; ok {
		return rc, nil
	}
	cfg := rest.CopyConfig(c.cfg)
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	// Without conversion: the scheme holds external versions only, and the
	// encoder still stamps kind and apiVersion on what it sends.
	cfg.NegotiatedSerializer = c.codecs.WithoutConversion()
	if !hasProtobuf(c.scheme, gv) {
		cfg.ContentType = runtime.ContentTypeJSON
		cfg.AcceptContentTypes = runtime.ContentTypeJSON
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientForConfigAndClient(cfg, c.http)
	if err != nil {
		return nil, fmt.Errorf("rest client for %s: %w", gv, err)
	}
	c.rest[gv] = rc
	return rc, nil
}

// protobufMessage is what the protobuf serializer needs of a type to encode
// and decode it; the generated types of k8s.io/api have it, CRD types do not.
type protobufMessage interface {
	runtime.ProtobufMarshaller
	Reset()
	Unmarshal([]byte) error
}

var metaPkgPath = reflect.TypeFor[metav1.Status]().PkgPath()

// hasProtobuf says whether every kind of gv in scheme can travel as
// protobuf. The shared meta kinds (ListOptions, Status, WatchEvent) that
// metav1.AddToGroupVersion puts in every version do not count: they can, and
// a CRD's version has them too. Deciding by type rather than by group name
// keeps a custom resource under a k8s.io group (gateway.networking.k8s.io)
// on JSON.
func hasProtobuf(scheme *runtime.Scheme, gv schema.GroupVersion) bool {
	pm := reflect.TypeFor[protobufMessage]()
	some := false
	for _, t := range scheme.KnownTypes(gv) {
		if t.PkgPath() == metaPkgPath {
			continue
		}
		if !reflect.PointerTo(t).Implements(pm) {
			return false
		}
		some = true
	}
	return some
}

// target is where one object's requests go.
type target struct {
	rc         *rest.RESTClient
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
}

func (c *Client) targetOf(gvk schema.GroupVersionKind) (target, error) {
	rc, err := c.restFor(gvk.GroupVersion())
	if err != nil {
		return target{}, err
	}
	gvr, namespaced := resource(gvk)
	return target{rc: rc, gvk: gvk, resource: gvr.Resource, namespaced: namespaced}, nil
}

// objectTarget returns obj's target and metadata.
func (c *Client) objectTarget(obj runtime.Object) (target, metav1.Object, error) {
	gvk, err := objectKind(c.scheme, obj)
	if err != nil {
		return target{}, nil, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return target{}, nil, err
	}
	t, err := c.targetOf(gvk)
	return t, m, err
}

// listTarget returns the target of the items of list.
func (c *Client) listTarget(list runtime.Object) (target, error) {
	_, item, err := listKind(c.scheme, list)
	if err != nil {
		return target{}, err
	}
	return c.targetOf(item)
}

// Get reads the object at key into obj. A missing object gives an error
// for which apierrors.IsNotFound is true.
func (c *Client) Get(ctx context.Context, key types.NamespacedName, obj runtime.Object) error {
	t, _, err := c.objectTarget(obj)
	if err != nil {
		return err
	}
	return t.rc.Get().NamespaceIfScoped(key.Namespace, t.namespaced).Resource(t.resource).
		Name(key.Name).Do(ctx).Into(obj)
}

// List reads every object of list's kind, in all namespaces, into list.
func (c *Client) List(ctx context.Context, list runtime.Object) error {
	return c.ListIn(ctx, list, "", nil)
}

// ListIn reads the objects of list's kind in namespace ("" for all) whose
// labels include labels (nil for all) into list.
func (c *Client) ListIn(ctx context.Context, list runtime.Object, namespace string, lbls map[string]string) error {
	t, err := c.listTarget(list)
	if err != nil {
		return err
	}
	opts := &metav1.ListOptions{}
	if len(lbls) > 0 {
		opts.LabelSelector = labels.SelectorFromSet(lbls).String()
	}
	return t.rc.Get().NamespaceIfScoped(namespace, t.namespaced).Resource(t.resource).
		VersionedParams(opts, c.params).Do(ctx).Into(list)
}

// Create creates obj, in its namespace if its kind is namespaced, and fills
// it with the object as created.
func (c *Client) Create(ctx context.Context, obj runtime.Object) error {
	t, m, err := c.objectTarget(obj)
	if err != nil {
		return err
	}
	return t.rc.Post().NamespaceIfScoped(m.GetNamespace(), t.namespaced).Resource(t.resource).
		Body(obj).Do(ctx).Into(obj)
}

// Update replaces obj (all but its status, for a kind with a status
// subresource) and fills it with the answer. A stale resourceVersion gives an
// error for which apierrors.IsConflict is true.
func (c *Client) Update(ctx context.Context, obj runtime.Object) error {
	t, m, err := c.objectTarget(obj)
	if err != nil {
		return err
	}
	return t.rc.Put().NamespaceIfScoped(m.GetNamespace(), t.namespaced).Resource(t.resource).
		Name(m.GetName()).Body(obj).Do(ctx).Into(obj)
}

// Delete deletes the object named by obj's namespace and name. A non-empty
// uid is a precondition: if the object at that name has another UID (it was
// deleted and made again) nothing is deleted and the error is a conflict.
func (c *Client) Delete(ctx context.Context, obj runtime.Object, uid types.UID) error {
	t, m, err := c.objectTarget(obj)
	if err != nil {
		return err
	}
	opts := &metav1.DeleteOptions{}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	return t.rc.Delete().NamespaceIfScoped(m.GetNamespace(), t.namespaced).Resource(t.resource).
		Name(m.GetName()).Body(opts).Do(ctx).Error()
}

// Patch patches the object named by obj's namespace and name with data of
// type pt, and fills obj with the answer.
func (c *Client) Patch(ctx context.Context, obj runtime.Object, pt types.PatchType, data []byte) error {
	return c.patch(ctx, obj, pt, data, "")
}

// PatchStatus patches the status subresource of the object named by obj's
// namespace and name with data of type pt, and fills obj with the answer.
func (c *Client) PatchStatus(ctx context.Context, obj runtime.Object, pt types.PatchType, data []byte) error {
	return c.patch(ctx, obj, pt, data, "status")
}

func (c *Client) patch(ctx context.Context, obj runtime.Object, pt types.PatchType, data []byte, sub string) error {
	t, m, err := c.objectTarget(obj)
	if err != nil {
		return err
	}
	r := t.rc.Patch(pt).NamespaceIfScoped(m.GetNamespace(), t.namespaced).Resource(t.resource).Name(m.GetName())
	if sub != "" {
		r = r.SubResource(sub)
	}
	return r.Body(data).Do(ctx).Into(obj)
}

// ListWatch returns the list and watch functions of list's kind in
// namespace ("" for all) restricted by fieldSelector ("" for none), for a
// reflector or an informer (toolscache.ListWatch's ListWithContextFunc and
// WatchFuncWithContext). Each list call returns a new object of list's type.
// A kind the scheme does not know gives functions that return the error.
func (c *Client) ListWatch(list runtime.Object, namespace, fieldSelector string) (
	func(context.Context, metav1.ListOptions) (runtime.Object, error),
	func(context.Context, metav1.ListOptions) (watch.Interface, error)) {
	listGVK, _, err := listKind(c.scheme, list)
	var t target
	if err == nil {
		t, err = c.listTarget(list)
	}
	if err != nil {
		return func(context.Context, metav1.ListOptions) (runtime.Object, error) { return nil, err },
			func(context.Context, metav1.ListOptions) (watch.Interface, error) { return nil, err }
	}
	lf := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		opts.FieldSelector = fieldSelector
		out, err := c.scheme.New(listGVK)
		if err != nil {
			return nil, err
		}
		err = t.rc.Get().NamespaceIfScoped(namespace, t.namespaced).Resource(t.resource).
			VersionedParams(&opts, c.params).Do(ctx).Into(out)
		return out, err
	}
	wf := func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.FieldSelector = fieldSelector
		opts.Watch = true
		return t.rc.Get().NamespaceIfScoped(namespace, t.namespaced).Resource(t.resource).
			VersionedParams(&opts, c.params).Watch(ctx)
	}
	return lf, wf
}
