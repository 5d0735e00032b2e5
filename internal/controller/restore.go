package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
	"github.com/ironlb/ironlb/internal/kube"
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
// another's status still shows (see state.holdBack). So the two shared the
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
// for the Service (see state.holdBack) until its Reconcile has rewritten
// the status.
type restorer struct {
	cache     cache.Cache
	services  *records.Store[*svcRecord]
	st        *state
	log       *slog.Logger
	configMap types.NamespacedName
	metrics   *metrics
	class     string
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
	in, err := kube.ReadInput(ctx, r.cache, r.configMap)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	type claim struct {
		svc  *svcRecord
		key  string
		rank int
	}
	var claims []claim
	rank := map[string]int{}
	for _, s := range selectRecords(r.services, func(s *svcRecord) bool {
		return len(s.ingress) > 0 && s.ours(r.class) && !s.deleting
	}) {
		c := claim{svc: s, key: s.nn.String(), rank: s.claimRank()}
		claims = append(claims, c)
		rank[c.key] = c.rank
	}
	slices.SortFunc(claims, func(a, b claim) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.svc.created, b.svc.created),
			cmp.Compare(a.svc.nn.Namespace, b.svc.nn.Namespace), cmp.Compare(a.svc.nn.Name, b.svc.nn.Name))
	})

	terminating := map[string]bool{}
	for _, p := range in.Pools {
		if !p.DeletionTimestamp.IsZero() {
			terminating[p.Name] = true
		}
	}
	r.st.mu.Lock()
	cfg, problems := config.Build(in, nil)
	r.st.setConfig(cfg, terminating)
	restored, displaced := 0, 0
	// Held back only once every claim is in: holding back an address
	// another Service keeps would refuse it to a later Service that shares
	// it with that one.
	var holdBack []claim
	for _, c := range claims {
		svc, key := c.svc, c.key
		ips := svc.ingress
		if svc.reqErr != nil || !svc.asksFor(ips) || !r.st.inRequestedPool(svc.req, ips) {
			holdBack = append(holdBack, c)
			continue
		}
		if err := r.st.alloc.Assign(key, ips, svc.req.sharing, ipam.AssignOptions{}); err != nil {
			displaced++
			why := "the older Service keeps the address"
			var conflict *ipam.ConflictError
			if errors.As(err, &conflict) && slices.ContainsFunc(conflict.Holders, func(h string) bool { return rank[h] < c.rank }) {
				why = "its sharing key or ports may have changed since its status was written, and those of the Service that keeps the address have not"
			}
			r.st.displaced[key] = displacement{msg: fmt.Sprintf("Its status claimed %s, but %s; %s.", joinAddrs(ips), err, why)}
			r.log.Warn("address claimed twice", "service", key, "ips", ips, "error", err)
			holdBack = append(holdBack, c)
			continue
		}
		r.st.requests[key] = svc.req.addressKey()
		restored++
	}
	for _, c := range holdBack {
		r.st.holdBack(c.key, c.svc.ingress)
	}
	r.st.mu.Unlock()
	for _, p := range problems {
		r.log.Warn("config problem", "object", p.Object.String(), "field", p.Field, "message", p.Message)
	}
	r.log.Info("allocations restored", "services", restored, "displaced", displaced,
		"pools", len(cfg.Pools), "took", time.Since(start).Round(time.Millisecond))
	close(r.st.ready)
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
// admits exactly those. Whether an automatic request admits them depends on
// the config, which may have changed since without moving anything: it
// admits them.
func (s *svcRecord) asksFor(ips []netip.Addr) bool {
	return len(s.req.ips) == 0 || s.req.requestsExactly(ips)
}

// inRequestedPool reports whether ips may be what req, if it names a pool,
// was given: each address is in that pool or in none. One in another pool
// means the Service asked for another pool since its status was written
// (while no controller ran): restoring it would record the new request as
// met and keep the Service in the wrong pool for good. An address in no
// pool is kept, as while the controller runs: its pool may have shrunk
// under it, which moves nobody. (A range moved from one pool to another
// while no controller ran looks like a changed request, and moves its
// Services to their pool.)
func (s *state) inRequestedPool(req request, ips []netip.Addr) bool {
	if req.pool == "" {
		return true
	}
	for _, a := range ips {
		if p, ok := s.alloc.PoolOf(a); ok && p != req.pool {
			return false
		}
	}
	return true
}

func joinAddrs[T fmt.Stringer](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}
