package controller

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/internal/records"
)

// restorer is the explicit start-up step: once the caches hold every
// Service and config object, it builds the Config and gives the allocator
// every address already in a Service's status, and only then lets the
// reconcilers assign anything. A restart therefore changes no address. It
// runs only on the leader.
//
// Two Services' status can claim one address they may not share. The
// controller never writes that itself: it gives no Service an address
// another's status still shows (see ledger.holdBack). So the two shared the
// address, under one sharing key, and one of them has since changed its
// spec (its request, its sharing key, its ports) while the controller was
// down or before it got to rewrite that status. The one that changed is
// the one to move; restore tells it as far as the objects let it:
//
//   - A status the Service's own spec plainly contradicts is not restored
//     at all: the Service is being deleted, its request is invalid, or it
//     requests addresses other than those its status shows. Its first
//     Reconcile would give them up anyway.
//   - The others are restored in the order of claimRank, which reads
//     annotationStatusSharing: a Service whose sharing is the one its
//     status was written under comes first, one that has changed it last.
//   - Among those alike, the oldest Service keeps the address.
//
// What a status shows but restore did not give its Service is held back
// for the Service (see ledger.holdBack) until its Reconcile has rewritten
// the status.
//
// The restorer reads the caches and orders the claims; the ledger
// (ledger.restore) gives them the addresses and then lets the reconcilers
// begin.
type restorer struct {
	cache     cache.Cache
	services  *records.Store[*svcRecord]
	ledger    *ledger
	log       *slog.Logger
	configMap types.NamespacedName
	class     string
	lastGood  *lastGood
}

func (r *restorer) Start(ctx context.Context) error {
	start := time.Now()
	if !r.cache.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	select {
	case <-r.services.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	in, err := kube.ReadInput(ctx, kubecr.Reader(r.cache), r.configMap)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if in.Reservations, err = readReservations(ctx, r.cache); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	prev, err := r.lastGood.load(ctx)
	if err != nil {
		return nil // ctx ended
	}
	var claims []claim
	for _, s := range selectRecords(r.services, func(s *svcRecord) bool {
		return len(s.ingress) > 0 && s.ours(r.class) && !s.deleting
	}) {
		claims = append(claims, claim{svc: s, key: s.nn.String(), rank: s.claimRank()})
	}
	slices.SortFunc(claims, func(a, b claim) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.svc.created, b.svc.created),
			cmp.Compare(a.svc.nn.Namespace, b.svc.nn.Namespace), cmp.Compare(a.svc.nn.Name, b.svc.nn.Name))
	})

	res := r.ledger.restore(in, prev, claims)
	for _, d := range res.displaced {
		r.log.Warn("address claimed twice", "service", d.key, "ips", d.ips, "error", d.err)
	}
	for _, p := range res.problems {
		r.log.Warn("config problem", "object", p.Object.String(), "field", p.Field, "message", p.Message)
	}
	r.log.Info("allocations restored", "services", res.restored, "displaced", len(res.displaced),
		"pools", res.pools, "took", time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	return nil
}

// claimRank orders the Services' claims on their status's addresses for
// restore, first honoured first: 0 if the Service's sharing constraints
// are those its status was written under (annotationStatusSharing), 1 if
// that is not known (no record: the Service has no sharing key, was last
// written by an older version, or someone replaced its annotations), 2 if
// they have changed since.
func (s *svcRecord) claimRank() int {
	switch s.statusSharing {
	case 0:
		return 1
	case s.req.sharingHash():
		return 0
	}
	return 2
}

// asksFor reports whether the Service's request admits ips, the addresses
// in its status, as far as that is plain from the request alone: a request
// for addresses (spec.loadBalancerIP or the loadBalancerIPs annotation)
// admits those, and, for RequireDualStack naming one family, one address
// of the other (see request.admitsRequested). Whether an automatic request
// admits them depends on the config, which may have changed since without
// moving anything: it admits them.
func (s *svcRecord) asksFor(ips []netip.Addr) bool {
	return len(s.req.ips) == 0 || s.req.admitsRequested(ips)
}

func joinAddrs[T fmt.Stringer](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}
