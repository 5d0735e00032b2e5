package controller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
)

// Create cannot be limited to one name; get (ReadLastGood, uncached) and
// update can.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create,namespace=ironlb-system
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;update,resourceNames=ironlb-last-good,namespace=ironlb-system

// lastGood keeps the ConfigMap of last good config versions
// (kube.LastGoodConfigMapName, see config.SaveLastGood) in step with the
// Config in force: the restorer loads it, so that an object invalid when
// the controller starts keeps the version the previous controller had in
// force, and the config reconciler saves it after every change. Only the
// leader does either.
type lastGood struct {
	reader    client.Reader // uncached: the cache holds the legacy ConfigMap only
	client    client.Client
	namespace string
	log       *slog.Logger

	// Owned by the restorer, then by the config reconciler (one worker,
	// which starts after the restore).
	data map[string]string
	obj  *corev1.ConfigMap // as last read or written; nil if there is none
}

// load reads the saved versions and builds them, for ledger.restore. It
// retries until it succeeds or ctx ends: starting without them would
// leave out an object that is invalid right now, which is what they are
// there to prevent, and nothing can be assigned without the API server
// anyway.
func (l *lastGood) load(ctx context.Context) (*config.Config, error) {
	for {
		data, obj, err := kube.ReadLastGood(ctx, kubecr.Reader(l.reader), l.namespace)
		if err == nil {
			l.data, l.obj = data, obj
			break
		}
		l.log.Warn("cannot read the last good config versions; retrying", "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	cfg, errs := config.LastGood(l.data)
	for _, err := range errs {
		l.log.Warn("left out a saved config version", "error", err)
	}
	return cfg, nil
}

// save writes the last good versions after a Build of in that reported
// problems, if they changed.
func (l *lastGood) save(ctx context.Context, in config.Input, problems []config.Problem) error {
	data, err := config.SaveLastGood(in, problems, l.data)
	if err != nil {
		return err
	}
	if maps.Equal(data, l.data) && (l.obj != nil || len(data) == 0) {
		return nil
	}
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: kube.LastGoodConfigMapName,
		Labels: map[string]string{"app.kubernetes.io/part-of": "ironlb"}}}
	if l.obj != nil {
		obj = l.obj.DeepCopy()
	}
	obj.Data = data
	if l.obj == nil {
		err = l.client.Create(ctx, obj)
	} else {
		err = l.client.Update(ctx, obj)
	}
	if err != nil {
		// Read it again for the next try: someone else may have written it.
		if d, o, rerr := kube.ReadLastGood(ctx, kubecr.Reader(l.reader), l.namespace); rerr == nil {
			l.data, l.obj = d, o
		}
		return fmt.Errorf("save the last good config versions: %w", err)
	}
	l.data, l.obj = data, obj
	return nil
}
