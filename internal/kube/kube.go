package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// Names the daemons and ironlbctl default to. The install manifests use
// the same (config/default, charts/ironlb).
const (
	// DefaultNamespace is where ironlb runs: the legacy ConfigMap, the
	// memberlist Secret, the leader-election Lease and the
	// ServiceAnnouncements and BGPSessionStates live there.
	DefaultNamespace = "ironlb-system"
	// DefaultConfigMapName is the legacy MetalLB-format ConfigMap.
	DefaultConfigMapName = "config"
	// DefaultMemberlistSecret holds the key that encrypts the speakers'
	// gossip.
	DefaultMemberlistSecret = "ironlb-memberlist"
	// MemberlistSecretKey is the data key of that Secret: the key the
	// speakers encrypt gossip with.
	MemberlistSecretKey = "secretkey"
	// MemberlistAcceptPrefix starts the names of the Secret's other data
	// keys: keys the speakers accept besides MemberlistSecretKey, so that
	// the key can be rotated with no moment at which two speakers cannot
	// hear each other (README: rotating the memberlist key).
	MemberlistAcceptPrefix = MemberlistSecretKey + "-"
	// LastGoodConfigMapName holds the last good version of every config
	// object (config.SaveLastGood), which the controller writes and every
	// daemon reads as it starts.
	LastGoodConfigMapName = "ironlb-last-good"
	// SpeakerQuorateAnnotation, on a speaker's registry Lease
	// ("speaker-<node>", labelled app.kubernetes.io/component=speaker),
	// says whether that speaker answers as one of a majority of the
	// speakers it knows ("true"), or reaches no majority over gossip
	// ("false"), as ironlbctl doctor reports.
	SpeakerQuorateAnnotation = "ironlb.io/quorate"
)

// SpeakerLeases returns, for each node whose speaker Lease is fresh at
// now (renewed less than its lease duration ago, or than def if it has
// none), whether its speaker says it answers as one of a majority
// (SpeakerQuorateAnnotation).
func SpeakerLeases(leases []coordinationv1.Lease, now time.Time, def time.Duration) map[string]bool {
	out := map[string]bool{}
	for _, l := range leases {
		sp := l.Spec
		if sp.HolderIdentity == nil || sp.RenewTime == nil {
			continue
		}
		d := def
		if sp.LeaseDurationSeconds != nil {
			d = time.Duration(*sp.LeaseDurationSeconds) * time.Second
		}
		if now.Sub(sp.RenewTime.Time) < d {
			out[*sp.HolderIdentity] = l.Annotations[SpeakerQuorateAnnotation] == "true"
		}
	}
	return out
}

// Reader reads objects for ReadInput and ReadLastGood: the controller-runtime client (kubecr.Reader) or the speaker's own client.
type Reader interface {
	Get(ctx context.Context, key types.NamespacedName, obj runtime.Object) error
	List(ctx context.Context, list runtime.Object) error // all namespaces, no selector
}

// ReadInput lists every config object ironlb reads: the legacy ConfigMap
// named cm (if present) and every ironlb CRD object. The controller, the
// speakers and ironlbctl build their Config from it with config.Build.
func ReadInput(ctx context.Context, c Reader, cm types.NamespacedName) (config.Input, error) {
	var in config.Input
	var cmObj corev1.ConfigMap
	switch err := c.Get(ctx, cm, &cmObj); {
	case err == nil:
		in.ConfigMap = &cmObj
	case !apierrors.IsNotFound(err):
		return in, fmt.Errorf("get config map: %w", err)
	}
	var pools v1alpha1.IPPoolList
	var l2 v1alpha1.L2AnnouncementList
	var peers v1alpha1.BGPPeerList
	var anns v1alpha1.BGPAnnouncementList
	var bfd v1alpha1.BFDProfileList
	for _, l := range []runtime.Object{&pools, &l2, &peers, &anns, &bfd} {
		if err := c.List(ctx, l); err != nil {
			return in, fmt.Errorf("list config objects: %w", err)
		}
	}
	in.Pools, in.L2, in.BGPPeers, in.BGPAnnouncements, in.BFDProfiles = pools.Items, l2.Items, peers.Items, anns.Items, bfd.Items
	return in, nil
}

// ReadLastGood reads the data of the ConfigMap of last good versions
// (LastGoodConfigMapName in namespace) and the object itself, to update
// it. A missing ConfigMap is no error: nothing was saved yet. Read it from
// the API server (c uncached): the daemons' caches hold only the legacy
// ConfigMap.
func ReadLastGood(ctx context.Context, c Reader, namespace string) (map[string]string, *corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	switch err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: LastGoodConfigMapName}, &cm); {
	case apierrors.IsNotFound(err):
		return map[string]string{}, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read the last good config versions (ConfigMap %s/%s): %w", namespace, LastGoodConfigMapName, err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	return cm.Data, &cm, nil
}

// InputVersion identifies the versions of the objects in in: equal
// values mean that nothing config.Build reads has changed (metadata.generation
// moves with a custom resource's spec and deletion, the ConfigMap's
// resourceVersion with its data; a pool's labels are read too, by
// namespace-scoped selectors). Both daemons rebuild their Config only when
// it changes: a status write, which bumps a resourceVersion, does not.
func InputVersion(in config.Input) string {
	var b strings.Builder
	if in.ConfigMap != nil {
		b.WriteString(in.ConfigMap.ResourceVersion)
	}
	add := func(o metav1.Object) {
		b.WriteString("|" + o.GetName() + "@" + strconv.FormatInt(o.GetGeneration(), 10))
		if o.GetDeletionTimestamp() != nil {
			b.WriteString("-")
		}
	}
	for i := range in.Pools {
		add(&in.Pools[i])
		b.WriteString(fmt.Sprint(in.Pools[i].Labels))
	}
	for i := range in.L2 {
		add(&in.L2[i])
	}
	for i := range in.BGPPeers {
		add(&in.BGPPeers[i])
	}
	for i := range in.BGPAnnouncements {
		add(&in.BGPAnnouncements[i])
	}
	for i := range in.BFDProfiles {
		add(&in.BFDProfiles[i])
	}
	return b.String()
}
