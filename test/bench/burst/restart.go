package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// freshName is the Service created while no controller runs, to time the
// first new allocation after a restart.
const freshName = "fresh"

// restart stops the controller old, which has just allocated the burst's
// Services in ns, records every Service's address, creates one more
// Service, starts a new controller and measures, from its exec, when it
// has restored its allocations and when the new Service has an address.
// Then, once the new controller is quiet, it counts the burst's Services
// whose address changed, in the API server or at any moment in w, and the
// status writes the new controller made to them (there should be none).
func (b *bench) restart(ctx context.Context, old *proc, ns string, w *ingressWatch) ([]metric, error) {
	if err := old.stop(stopGrace); err != nil {
		fmt.Fprintf(b.diag, "# ironlb on SIGTERM: %v\n", err)
	}
	before, err := listIPs(ctx, b.cs, ns)
	if err != nil {
		return nil, err
	}
	missing := 0
	for name, ips := range before {
		if _, ok := serviceIndex(name); ok && ips == "" {
			missing++
		}
	}
	if missing > 0 {
		fmt.Fprintf(b.diag, "# %d Services had no address when the controller stopped\n", missing)
	}
	if _, err := createService(ctx, b.cs, newService(ns, freshName)); err != nil {
		return nil, fmt.Errorf("create %s: %w", freshName, err)
	}
	_, updatesBefore, changedBefore := w.snapshot()

	p, err := b.startIronlb(ns + "-restart")
	if err != nil {
		return nil, err
	}
	defer p.stop(stopGrace)
	if err := p.waitReady(ctx.Done(), readyTimeout); err != nil {
		return nil, err
	}
	ready, line := p.readyAfter()
	took, err := loggedDuration(line, "took")
	if err != nil {
		return nil, fmt.Errorf("ready line %q: %w", line, err)
	}
	if err := waitUntil(ctx, 2*time.Minute, func() bool { _, ok := w.seenAt(freshName); return ok }); err != nil {
		return nil, fmt.Errorf("%s has no address: %w; ironlb's last log lines:\n%s", freshName, err, p.logTail())
	}
	freshAt, _ := w.seenAt(freshName)
	if err := p.quiesce(ctx.Done(), 30*time.Second); err != nil {
		return nil, err
	}
	cpu, err := p.cpu()
	if err != nil {
		return nil, err
	}
	rss, err := p.peakRSS()
	if err != nil {
		return nil, err
	}
	after, err := listIPs(ctx, b.cs, ns)
	if err != nil {
		return nil, err
	}
	seen, updatesAfter, changedAfter := w.snapshot()

	checked, changed, writes, reused := 0, 0, 0, 0
	taken := map[string]bool{}
	for name, ips := range before {
		if _, ok := serviceIndex(name); !ok || ips == "" {
			continue
		}
		checked++
		for _, ip := range strings.Split(ips, ",") {
			taken[ip] = true
		}
		if after[name] != ips || changedAfter[name] > changedBefore[name] {
			changed++
		}
		writes += updatesAfter[name] - updatesBefore[name]
	}
	for _, ip := range strings.Split(seen[freshName], ",") {
		if taken[ip] {
			reused++
		}
	}
	if n, first := p.logProblems(); n > 0 {
		fmt.Fprintf(b.diag, "# ironlb after restart: %d WARN/ERROR log lines, first:\n#   %s\n", n, strings.Join(first, "\n#   "))
	}
	fmt.Fprintf(b.diag, "# restart: %q\n", line)
	if err := p.stop(stopGrace); err != nil {
		fmt.Fprintf(b.diag, "# ironlb on SIGTERM after restart: %v\n", err)
	}
	return []metric{
		{"restart_ready", seconds(ready), "s"},
		{"restart_restore_took", seconds(took), "s"},
		{"restart_first_new_ip", seconds(freshAt.Sub(p.started)), "s"},
		{"restart_ips_checked", float64(checked), "count"},
		{"restart_ips_changed", float64(changed), "count"},
		{"restart_status_writes", float64(writes), "count"},
		{"restart_new_ip_reused", float64(reused), "count"},
		{"restart_cpu", seconds(cpu), "s"},
		{"restart_peak_rss", mib(rss), "MiB"},
	}, nil
}

// loggedDuration reads the duration attribute key from a slog text line.
func loggedDuration(line, key string) (time.Duration, error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return time.ParseDuration(strings.Trim(v, `"`))
		}
	}
	return 0, fmt.Errorf("no %s= attribute", key)
}
