package speaker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/kube"
)

// Each speaker gets, creates, renews and (stopping while degraded) deletes
// its Lease, and lists the others'; their names are the nodes'.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;create;update;delete,namespace=ironlb-system

// The registry is how a speaker knows the others run without hearing
// them: each speaker holds a Lease, "speaker-<node>" in the speakers'
// namespace, which it renews every registryRenew. Gossip cannot tell a
// speaker that starts cut off from the others that they exist: it hears
// nobody, and a speaker that knows of nobody takes itself for the first
// one up and answers for every address while the others go on answering
// for them (two MACs per address). A speaker that has not joined the
// others counts every speaker whose Lease is fresh among those it knows
// (quorum.go), so it answers only once it reaches a majority of them.
//
// The Leases are read once, when the speaker starts, by a quorum read
// (not watched: nothing else needs them, and every speaker watching every
// renewal would cost the API server one event per speaker per renewal
// per speaker). The API server is not on the failover path: a speaker
// that cannot read them starts as before (quorum.go's startup grace).
const (
	registryRenew = 10 * time.Second
	// registryDuration is how long after its last renewal a Lease counts
	// as its speaker's: four renewals, as the kubelet's node Lease.
	registryDuration = 40 * time.Second
	// registryLabel marks the speakers' Leases, so the list reads no
	// other (the controller's leader-election Lease shares the
	// namespace).
	registryLabel = "app.kubernetes.io/component"
	registryValue = "speaker"
)

// leaseName is the name of node's speaker Lease.
func leaseName(node string) string { return "speaker-" + node }

// renewLease creates or renews this speaker's Lease.
func (s *Speaker) renewLease(ctx context.Context) error {
	c := s.kc
	now := metav1.NewMicroTime(time.Now())
	seconds := int32(registryDuration / time.Second)
	var l coordinationv1.Lease
	key := types.NamespacedName{Namespace: s.opts.Namespace, Name: leaseName(s.opts.NodeName)}
	err := s.kc.Get(ctx, key, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{registryLabel: registryValue}},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &s.opts.NodeName, LeaseDurationSeconds: &seconds,
				AcquireTime: &now, RenewTime: &now,
			},
		}
		setQuorate(&l.ObjectMeta, s.quorate.Load())
		return c.Create(ctx, &l)
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &s.opts.NodeName, &seconds, &now
	setQuorate(&l.ObjectMeta, s.quorate.Load())
	delete(l.Annotations, restartAnnotation) // read at start (readRestartNote)
	return c.Update(ctx, &l)
}

// keepLease renews this speaker's Lease every registryRenew, and at once
// when whether it reaches a majority changes (leaseKick), until ctx ends.
func (s *Speaker) keepLease(ctx context.Context) {
	t := time.NewTicker(registryRenew)
	defer t.Stop()
	for {
		if err := s.renewLease(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("renew this speaker's Lease", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.leaseKick:
		}
	}
}

// registered returns the nodes whose speaker Lease is fresh at now.
func registered(leases []coordinationv1.Lease, now time.Time) []string {
	return slices.Sorted(maps.Keys(registry(leases, now)))
}

// registry returns, for each node whose speaker Lease is fresh at now,
// whether its speaker says it answers as one of a majority
// (kube.SpeakerLeases).
func registry(leases []coordinationv1.Lease, now time.Time) map[string]bool {
	return kube.SpeakerLeases(leases, now, registryDuration)
}

// listLeases lists the speakers' Leases from the API server.
func (s *Speaker) listLeases(ctx context.Context) ([]coordinationv1.Lease, error) {
	var list coordinationv1.LeaseList
	err := s.kc.ListIn(ctx, &list, s.opts.Namespace, map[string]string{registryLabel: registryValue})
	if err != nil {
		return nil, fmt.Errorf("read the speakers' Leases: %w", err)
	}
	return list.Items, nil
}

// dropLease deletes this speaker's Lease: on a clean stop while
// degraded (degraded.go), so that the others take its addresses over at
// their next read of the registry rather than when it expires.
func (s *Speaker) dropLease(ctx context.Context) error {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: s.opts.Namespace, Name: leaseName(s.opts.NodeName)}}
	if err := s.kc.Delete(ctx, l, ""); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}
