package speaker

import (
	"context"

	"github.com/ironlb/ironlb/internal/announce"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func nodes(ns ...announce.Node) map[string]announce.Node {
	out := map[string]announce.Node{}
	for _, n := range ns {
		out[n.Name] = n
	}
	return out
}

func ready(name string) announce.Node {
	return announce.Node{Name: name, Ready: true, Labels: map[string]string{"l2": "yes"}}
}

// crAccess adapts controller-runtime's client (the fake one, in unit
// tests) to apiAccess.
type crAccess struct{ c client.Client }

func (a crAccess) Get(ctx context.Context, key types.NamespacedName, obj runtime.Object) error {
	return a.c.Get(ctx, key, obj.(client.Object))
}

func (a crAccess) ListIn(ctx context.Context, list runtime.Object, namespace string, labels map[string]string) error {
	return a.c.List(ctx, list.(client.ObjectList), client.InNamespace(namespace), client.MatchingLabels(labels))
}

func (a crAccess) Create(ctx context.Context, obj runtime.Object) error {
	return a.c.Create(ctx, obj.(client.Object))
}

func (a crAccess) Update(ctx context.Context, obj runtime.Object) error {
	return a.c.Update(ctx, obj.(client.Object))
}

func (a crAccess) Delete(ctx context.Context, obj runtime.Object, uid types.UID) error {
	var opts []client.DeleteOption
	if uid != "" {
		opts = append(opts, client.Preconditions{UID: &uid})
	}
	return a.c.Delete(ctx, obj.(client.Object), opts...)
}

func (a crAccess) PatchStatus(ctx context.Context, obj runtime.Object, pt types.PatchType, data []byte) error {
	return a.c.Status().Patch(ctx, obj.(client.Object), client.RawPatch(pt, data))
}
