package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

const (
	// warmUp is how long the probes run before the node is hit, so the
	// client has resolved the addresses and answers flow.
	warmUp = time.Second
	// moveTimeout bounds the wait for another node to answer each of the
	// failed node's addresses.
	moveTimeout = 30 * time.Second
	// convergeTimeout bounds the wait for the client to send each probed
	// address to its new owner (the speakers announce every owned address
	// every 10 s, so a client left on the old owner is put right within
	// that).
	convergeTimeout = 20 * time.Second
	// ndpWindow is how long one Neighbor Solicitation waits for answers:
	// the resolution of the "answered by another node" figure.
	ndpWindow = 15 * time.Millisecond
	// rejoinTimeout bounds the wait for the restarted speaker to be seen
	// by every other one.
	rejoinTimeout = 2 * time.Minute
	// stableFor is how long the announcements must stay unchanged, every
	// address announced, before the next run.
	stableFor = 3 * time.Second
)

// failoverRun is what the client saw when one node failed.
type failoverRun struct {
	Victim string
	// Addresses are the victim's; Probed those probed with UDP.
	Addresses, Probed []netip.Addr
	// Gaps is the longest silence of each probed address's probe.
	Gaps map[netip.Addr]time.Duration
	// Answered is when each address was first answered by another node,
	// from the hit; an address missing was not within moveTimeout.
	Answered map[netip.Addr]time.Duration
}

// allAnswered is when the last of the victim's addresses was answered by
// another node, and false if one never was.
func (r failoverRun) allAnswered() (time.Duration, bool) {
	if len(r.Answered) < len(r.Addresses) {
		return 0, false
	}
	return slices.Max(slices.Collect(maps.Values(r.Answered))), true
}

// failovers runs the failovers one after the other.
func (b *bench) failovers(ctx context.Context) ([]failoverRun, error) {
	var runs []failoverRun
	for i := range b.opts.Runs {
		r, err := b.failoverOnce(ctx, i)
		if err != nil {
			return runs, fmt.Errorf("run %d: %w", i+1, err)
		}
		b.describe(i, r)
		runs = append(runs, r)
	}
	return runs, nil
}

// victim picks the node to fail in run i: the nodes in the lab's order,
// starting i/runs of the way along so that the runs spread over the
// cluster, the first that announces anything.
func victim(nodes []string, v view, i, runs int) (string, bool) {
	start := i * len(nodes) / max(runs, 1)
	for k := range nodes {
		n := nodes[(start+k)%len(nodes)]
		if len(v.byNode[n]) > 0 {
			return n, true
		}
	}
	return "", false
}

// failoverOnce kills a node's speaker and cuts its link at once while the
// client probes, then brings it back.
func (b *bench) failoverOnce(ctx context.Context, i int) (failoverRun, error) {
	var r failoverRun
	v, err := b.announcements(ctx)
	if err != nil {
		return r, err
	}
	var names []string
	for _, h := range b.cl.Lab.Nodes() {
		names = append(names, h.Name)
	}
	var ok bool
	if r.Victim, ok = victim(names, v, i, b.opts.Runs); !ok {
		return r, errors.New("no node announces anything")
	}
	r.Addresses = v.byNode[r.Victim]
	r.Probed = r.Addresses[:min(len(r.Addresses), b.opts.Probes)]
	h, err := b.cl.Host(r.Victim)
	if err != nil {
		return r, err
	}
	victimMAC := h.MAC.String()

	stopBackends, err := b.backends(ctx, r.Probed)
	if err != nil {
		return r, errors.Join(err, stopBackends())
	}
	probes := map[netip.Addr]*labnet.Prober{}
	stopProbes := func() map[netip.Addr]labnet.ProbeResult {
		out := map[netip.Addr]labnet.ProbeResult{}
		for ip, p := range probes {
			out[ip] = p.Stop()
		}
		return out
	}
	for _, ip := range r.Probed {
		p, err := b.cl.Lab.Client().ProbeUDP(ctx, netip.AddrPortFrom(ip, labcluster.UDPPort), labnet.DefaultProbeInterval)
		if err != nil {
			stopProbes()
			return r, errors.Join(err, stopBackends())
		}
		probes[ip] = p
	}
	time.Sleep(warmUp)

	hit := time.Now()
	answered := b.watchAnswers(ctx, r.Addresses, victimMAC, hit)
	killed := make(chan error, 1)
	go func() { killed <- b.cl.Speaker(r.Victim).Kill() }()
	if err := errors.Join(h.LinkDown(), <-killed); err != nil {
		stopProbes()
		<-answered
		return r, errors.Join(err, stopBackends())
	}
	r.Answered = <-answered
	// Probe until the client sends each probed address to its new owner,
	// so the whole gap is in the probe.
	err = labcluster.Eventually(ctx, convergeTimeout, func() error {
		for _, ip := range r.Probed {
			mac, err := b.cl.Lab.Client().Neighbor(ip)
			if err != nil {
				return err
			}
			if mac == nil || mac.String() == victimMAC {
				return fmt.Errorf("the client resolves %s to %q, the failed node's or nothing", ip, mac)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(b.diag, "# ANOMALY: run %d: %v\n", i+1, err)
	}
	time.Sleep(time.Second) // answers from the new owners, for the record
	r.Gaps = map[netip.Addr]time.Duration{}
	for ip, res := range stopProbes() {
		r.Gaps[ip] = res.LongestGap
		if !answeredBefore(res, r.Victim, hit) {
			fmt.Fprintf(b.diag, "# ANOMALY: run %d: %s did not answer the probe to %s before it failed: %v\n", i+1, r.Victim, ip, res.ByNode)
		}
	}
	if err := stopBackends(); err != nil {
		return r, err
	}
	return r, b.bringBack(ctx, h)
}

// answeredBefore reports whether node answered res's probe before hit.
func answeredBefore(res labnet.ProbeResult, node string, hit time.Time) bool {
	return slices.ContainsFunc(res.Replies, func(p labnet.ProbeReply) bool { return p.Node == node && p.Received.Before(hit) })
}

// watchAnswers sends, from the client, Neighbor Solicitations for each of
// ips, one after the other per address, until a MAC other than
// victimMAC answers, and sends when each address was first so answered,
// counted from hit (the moment the answer's window closed: to within
// ndpWindow), once every address was or moveTimeout passed.
func (b *bench) watchAnswers(ctx context.Context, ips []netip.Addr, victimMAC string, hit time.Time) <-chan map[netip.Addr]time.Duration {
	ch := make(chan map[netip.Addr]time.Duration, 1)
	cl := b.cl.Lab.Client()
	go func() {
		var mu sync.Mutex
		got := map[netip.Addr]time.Duration{}
		var wg sync.WaitGroup
		for _, ip := range ips {
			wg.Go(func() {
				for time.Since(hit) < moveTimeout && ctx.Err() == nil {
					macs, err := cl.NDPSolicit(ctx, "", ip, ndpWindow)
					if err != nil {
						time.Sleep(ndpWindow)
						continue
					}
					if slices.ContainsFunc(macs, func(m net.HardwareAddr) bool { return m.String() != victimMAC }) {
						mu.Lock()
						got[ip] = time.Since(hit)
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		ch <- got
	}()
	return ch
}

// backends puts each of ips on every node's lo with a UDP echo server
// bound to it, and returns the function that removes them again.
func (b *bench) backends(ctx context.Context, ips []netip.Addr) (stop func() error, err error) {
	var mu sync.Mutex
	var servers []*labnet.Server
	var added []func() error
	stop = func() error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Close())
		}
		for _, f := range added {
			errs = append(errs, f())
		}
		servers, added = nil, nil
		return errors.Join(errs...)
	}
	err = forEach(b.cl.Lab.Nodes(), func(h *labnet.Host) error {
		for _, ip := range ips {
			if err := h.AddServiceIP(ip); err != nil {
				return err
			}
			mu.Lock()
			added = append(added, func() error { return h.RemoveServiceIP(ip) })
			mu.Unlock()
			var s *labnet.Server
			// A new IPv6 address can take a moment before it can be bound.
			err := labcluster.Eventually(ctx, 5*time.Second, func() (err error) {
				s, err = h.ServeUDPEcho(context.Background(), ip, labcluster.UDPPort)
				return err
			})
			if err != nil {
				return err
			}
			mu.Lock()
			servers = append(servers, s)
			mu.Unlock()
		}
		return nil
	})
	return stop, err
}

// bringBack reconnects h, starts its speaker again, waits until every
// other speaker has seen it join, and then until the announcements have
// stayed put, with every address announced, for stableFor.
func (b *bench) bringBack(ctx context.Context, h *labnet.Host) error {
	start := time.Now()
	if err := h.LinkUp(); err != nil {
		return err
	}
	marks := b.cl.SpeakerLogMarks(h.Name)
	if _, err := b.cl.StartSpeaker(h.Name); err != nil {
		return err
	}
	if err := b.cl.WaitJoined(ctx, h.Name, marks, rejoinTimeout); err != nil {
		// Not fatal: a speaker that never counted the node out sees no
		// join to log. The announcements settling is what the next run
		// needs.
		fmt.Fprintf(b.diag, "# ANOMALY: %v\n", err)
	}
	joined := time.Since(start)
	if err := b.waitStable(ctx); err != nil {
		return err
	}
	fmt.Fprintf(b.diag, "#   %s back: seen by every speaker after %.1f s, announcements settled after %.1f s\n",
		h.Name, joined.Seconds(), time.Since(start).Seconds())
	return nil
}

// waitStable waits until every Service is announced and who announces
// what has not changed for stableFor.
func (b *bench) waitStable(ctx context.Context) error {
	var last view
	var since time.Time
	return labcluster.Eventually(ctx, announceTimeout, func() error {
		v, err := b.announcements(ctx)
		if err != nil {
			return err
		}
		if v.announced < b.opts.Services {
			since = time.Time{}
			return fmt.Errorf("%d of %d Services announced", v.announced, b.opts.Services)
		}
		if since.IsZero() || !maps.EqualFunc(v.byNode, last.byNode, slices.Equal) {
			last, since = v, time.Now()
		}
		if time.Since(since) < stableFor {
			return fmt.Errorf("announcements changed %s ago", time.Since(since).Round(time.Millisecond))
		}
		return nil
	})
}

// describe prints one run's details to stderr.
func (b *bench) describe(i int, r failoverRun) {
	var gaps []string
	for _, ip := range r.Probed {
		gaps = append(gaps, fmt.Sprintf("%s %.3f s", ip, r.Gaps[ip].Seconds()))
	}
	all, ok := r.allAnswered()
	moved := fmt.Sprintf("all %d answered by another node after %.3f s", len(r.Addresses), all.Seconds())
	if !ok {
		moved = fmt.Sprintf("ANOMALY: only %d of %d answered by another node within %s", len(r.Answered), len(r.Addresses), moveTimeout)
	}
	fmt.Fprintf(b.diag, "#   run %d/%d: %s (%d addresses) killed: longest gaps %s; %s\n",
		i+1, b.opts.Runs, r.Victim, len(r.Addresses), strings.Join(gaps, ", "), moved)
}
