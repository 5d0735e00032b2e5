package speaker

import (
	"context"

	"github.com/ironlb/ironlb/internal/apiclient"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// apiAccess is the speaker's uncached reach of the API server: the
// writers of ServiceAnnouncements, BGPSessionStates, Service conditions
// and Leases, and the few reads that bypass the cache. It is an
// *apiclient.Client, which speaks REST with a scheme of the handful of
// kinds the speaker reads: the speaker links neither controller-runtime
// nor client-go's clientset, whose registration of every API group alone
// kept some 13 MiB resident on every node. The unit tests adapt
// controller-runtime's fake client to it.
type apiAccess interface {
	Get(ctx context.Context, key types.NamespacedName, obj runtime.Object) error
	// ListIn lists list's kind in namespace ("" all) with the labels.
	ListIn(ctx context.Context, list runtime.Object, namespace string, labels map[string]string) error
	Create(ctx context.Context, obj runtime.Object) error
	Update(ctx context.Context, obj runtime.Object) error
	// Delete deletes obj if its UID is still uid ("" any).
	Delete(ctx context.Context, obj runtime.Object, uid types.UID) error
	// PatchStatus patches obj's status subresource.
	PatchStatus(ctx context.Context, obj runtime.Object, pt types.PatchType, data []byte) error
}

// eventRecorder records events about objects: an *apiclient.Recorder,
// with the signature of client-go's events.EventRecorder.
type eventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// cacheReader reads the cache for kube.ReadInput, which lists config
// objects: copies, as the cache's objects must not change.
type cacheReader struct{ *apiclient.Cache }

func (r cacheReader) List(ctx context.Context, list runtime.Object) error {
	return r.Cache.List(ctx, list, false)
}
