package controller

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// restorer is the explicit start-up step: once the caches hold every
// Service and config object, it builds the Config and gives the allocator
// every address already in a Service's status, oldest Service first, and only
// then lets the reconcilers assign anything. A restart therefore changes no
// address. It runs only on the leader.
type restorer struct {
	cache     cache.Cache
	services  *serviceStore
	st        *state
	log       *slog.Logger
	configMap types.NamespacedName
	metrics   *metrics
	class     string
}

func (r *restorer) Start(ctx context.Context) error {
	start := time.Now()
	if !r.cache.WaitForCacheSync(ctx) || !r.services.waitForSync(ctx) {
		return ctx.Err()
	}
	in, err := ReadInput(ctx, r.cache, r.configMap)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Oldest first: when two Services claim one address, the older keeps it.
	svcs := r.services.list(func(s *svcRecord) bool {
		return len(s.ingress) > 0 && s.ours(r.class)
	})
	slices.SortFunc(svcs, func(a, b *svcRecord) int {
		return cmp.Or(cmp.Compare(a.created, b.created),
			cmp.Compare(a.nn.Namespace, b.nn.Namespace), cmp.Compare(a.nn.Name, b.nn.Name))
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
	for _, svc := range svcs {
		key := svc.nn.String()
		ips := svc.ingress
		if err := r.st.alloc.Assign(key, ips, svc.req.sharing, ipam.AssignOptions{}); err != nil {
			displaced++
			r.st.displaced[key] = displacement{msg: fmt.Sprintf("Its status claimed %s, but %s; the older Service keeps the address.",
				joinAddrs(ips), err)}
			r.log.Warn("address claimed twice", "service", key, "ips", ips, "error", err)
			continue
		}
		r.st.requests[key] = svc.req.addressKey()
		restored++
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

func joinAddrs[T fmt.Stringer](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}
