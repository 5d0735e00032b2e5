package controller

import (
	"context"
	"crypto/rand"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/kube"
)

// The controller, not the speakers, creates the Secret holding the
// speakers' memberlist key. A speaker that may create Secrets in ironlb's
// namespace could create a ServiceAccount token Secret for the controller
// and, being allowed to read Secrets there by name (the BGP passwords'
// names are the user's), read the controller's token back: every node
// would hold the controller's rights. The controller may read no Secret
// but this one, so creating Secrets gives it nothing it can read. Create
// cannot be limited to a name.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create,namespace=ironlb-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,resourceNames=ironlb-memberlist,namespace=ironlb-system

// memberlistKeyEvery is how often the leader checks that the key Secret
// exists, so one deleted by hand (to rotate the key the blunt way) is
// back within this time; the speakers retry their read meanwhile.
const memberlistKeyEvery = 10 * time.Second

// memberlistKey is the runnable that keeps the memberlist key Secret in
// existence. It creates it with a random 32-byte key (AES-256) when it is
// missing and never changes an existing one: rotation is the operator's
// (README, "Rotating the memberlist key").
type memberlistKey struct {
	reader client.Reader // the API server: Secrets are not cached
	client client.Client
	name   types.NamespacedName
	log    *slog.Logger
}

// Start checks at once, then every memberlistKeyEvery, until ctx ends.
func (k *memberlistKey) Start(ctx context.Context) error {
	for {
		if err := k.ensure(ctx); err != nil && ctx.Err() == nil {
			k.log.Error("cannot create the speakers' memberlist key; speakers that find none answer for nothing", "secret", k.name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(memberlistKeyEvery):
		}
	}
}

// NeedLeaderElection: only the leader writes (the write fence refuses the
// others' writes anyway).
func (*memberlistKey) NeedLeaderElection() bool { return true }

// ensure creates the Secret if it does not exist.
func (k *memberlistKey) ensure(ctx context.Context) error {
	err := k.reader.Get(ctx, k.name, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.name.Namespace, Name: k.name.Name},
		Data:       map[string][]byte{kube.MemberlistSecretKey: key},
	}
	switch err := k.client.Create(ctx, sec); {
	case err == nil:
		k.log.Info("created the speakers' memberlist key", "secret", k.name)
		return nil
	case apierrors.IsAlreadyExists(err):
		return nil
	default:
		return err
	}
}
