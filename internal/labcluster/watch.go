package labcluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// The fault suite's invariants are checked all the time a fault runs, not
// only at its end: a second during which two nodes answer for an address
// is exactly what an end-state check misses. A Watch samples, from the
// client, what a user of the LAN sees:
//   - who answers ARP (NDP for IPv6) for each address, every SampleEvery;
//   - whether a UDP probe every 10 ms to each address is answered;
//   - every LoadBalancer Service's addresses, read from the API server
//     whenever it answers.
//
// In BGP mode (WatchOptions.Router) the addresses are routed, not
// answered on the LAN: the probes come from a host behind the router, and
// each sample is the router's route to the address instead, its next
// hops (several are ECMP, no fault). An address is then dark while the
// router has no route to it.
//
// Two answers to one ARP request count only if asking again at once gets
// two answers again: a sample's window may straddle a handover, one node
// answering before it and the other after.
//
// Its Report says how long each address had no answer and more than one,
// the longest probe gap, and every address change; Check turns that into
// the suite's verdict.

// DefaultSampleEvery is how often a Watch asks who answers each address:
// the suite's "sampled at least every 200 ms".
const DefaultSampleEvery = 200 * time.Millisecond

// sampleWindow is how long a sample collects answers. A responder answers
// within a millisecond in the lab; a loaded one within tens.
const sampleWindow = 120 * time.Millisecond

// WatchOptions configures Watch.
type WatchOptions struct {
	// IPs are the addresses to sample and probe; each must have backends
	// (Backends).
	IPs []netip.Addr
	// SampleEvery is the sampling period; 0 means DefaultSampleEvery.
	SampleEvery time.Duration
	// From is the host the UDP probes are sent from; nil means the lab's
	// client on the LAN. Routed addresses are probed from a host behind
	// the router (labnet.Router.Outside), as their users reach them.
	From *labnet.Host
	// Router, if set, is the router the addresses are routed through (BGP
	// mode): each sample is then its kernel route to the address, which
	// is what it forwards by, instead of who answers ARP/NDP on the LAN.
	Router *labnet.Host
}

// Watch samples the invariants until Stop. Start one with Cluster.Watch.
type Watch struct {
	c      *Cluster
	cancel context.CancelFunc
	wg     sync.WaitGroup
	probes map[netip.Addr]*labnet.Prober
	router *labnet.Host // WatchOptions.Router
	start  time.Time

	mu      sync.Mutex
	samples map[netip.Addr][]Sample
	// straddles counts, per address, the samples whose two answers
	// straddled a handover (see sample).
	straddles map[netip.Addr]int
	services  map[string]string // namespace/name -> its addresses, as first seen
	changes   []string          // address changes and duplicates, in words
	apiReads  int
}

// Sample is who answered for an address at one moment: the MACs that
// answered ARP/NDP for it, or for a routed address (WatchOptions.Router)
// the next hops of the router's route to it.
type Sample struct {
	At       time.Time
	MACs     []string
	NextHops []netip.Addr
}

// dark reports whether nothing answered: no MAC, no route.
func (s Sample) dark() bool { return len(s.MACs) == 0 && len(s.NextHops) == 0 }

// IPReport is what a Watch saw of one address.
type IPReport struct {
	// Probe is what the client's UDP probe saw.
	Probe labnet.ProbeResult
	// Samples is every sample, in order.
	Samples []Sample
	// Dark and Multi are the total time during which samples saw no MAC
	// (no route, for a routed address) and more than one MAC; LongestDark
	// the longest dark stretch. A stretch is counted from its first bad
	// sample to the next good one.
	Dark, Multi, LongestDark time.Duration
	// LongestDarkAt is when the longest dark stretch began (its first
	// dark sample), so that a failure can be matched with the logs.
	LongestDarkAt time.Time
	// MultiSamples counts the samples that saw more than one MAC, twice
	// in a row; Straddles those whose two answers came from a handover
	// (one MAC when asked again at once).
	MultiSamples, Straddles int
}

// Report is what a Watch saw.
type Report struct {
	// Start is when the watch began; Duration how long it ran.
	Start    time.Time
	Duration time.Duration
	IPs      map[netip.Addr]*IPReport
	// Changes lists, in words, every Service whose address changed or
	// went, and every address held by two Services that do not share it.
	Changes []string
	// APIReads counts the successful reads of the Services (none while
	// the API server is stopped).
	APIReads int
	// Routed says the samples are a router's routes (WatchOptions.Router),
	// not ARP/NDP answers.
	Routed bool
}

// Watch starts sampling ips (see WatchOptions).
func (c *Cluster) Watch(opts WatchOptions) (*Watch, error) {
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = DefaultSampleEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	from := opts.From
	if from == nil {
		from = c.Lab.Client()
	}
	w := &Watch{
		c: c, cancel: cancel, probes: map[netip.Addr]*labnet.Prober{}, router: opts.Router,
		samples: map[netip.Addr][]Sample{}, straddles: map[netip.Addr]int{}, services: map[string]string{}, start: time.Now(),
	}
	for _, ip := range opts.IPs {
		p, err := from.ProbeUDP(ctx, netip.AddrPortFrom(ip, UDPPort), labnet.DefaultProbeInterval)
		if err != nil {
			w.Stop()
			return nil, err
		}
		w.probes[ip] = p
		w.wg.Go(func() { w.sample(ctx, ip, opts.SampleEvery) })
	}
	w.wg.Go(func() { w.readServices(ctx) })
	return w, nil
}

// sample asks who answers ip every period until ctx ends.
func (w *Watch) sample(ctx context.Context, ip netip.Addr, every time.Duration) {
	if w.router != nil {
		w.sampleRoutes(ctx, ip, every)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		at := time.Now()
		macs, err := w.resolve(ctx, ip)
		if err == nil && len(macs) > 1 {
			// Two answers to one request may be one node answering before
			// a handover and the next after it, within the sample's
			// window (a responder also answers a request it had queued
			// when it took the address over). Two nodes that both
			// answer do so again at once: ask again, and count the
			// sample as two MACs only if the second says so too.
			again, err2 := w.resolve(ctx, ip)
			if err2 == nil && len(again) <= 1 {
				w.mu.Lock()
				w.straddles[ip]++
				w.mu.Unlock()
				macs = again
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			w.mu.Lock()
			w.samples[ip] = append(w.samples[ip], Sample{At: at, MACs: macs})
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleRoutes reads the router's route to ip every period until ctx
// ends.
func (w *Watch) sampleRoutes(ctx context.Context, ip netip.Addr, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		at := time.Now()
		hops, err := w.router.RouteNextHops(netip.PrefixFrom(ip, ip.BitLen()))
		if err == nil {
			w.mu.Lock()
			w.samples[ip] = append(w.samples[ip], Sample{At: at, NextHops: hops})
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resolve asks who answers for ip, each MAC once.
func (w *Watch) resolve(ctx context.Context, ip netip.Addr) ([]string, error) {
	macs, err := w.c.resolve(ctx, ip, sampleWindow)
	slices.Sort(macs)
	return slices.Compact(macs), err
}

// readServices reads the LoadBalancer Services every half second and
// records address changes and addresses held twice.
func (w *Watch) readServices(ctx context.Context) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var list corev1.ServiceList
		err := w.c.Client.List(rctx, &list)
		cancel()
		if err == nil {
			w.observe(list.Items)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (w *Watch) observe(svcs []corev1.Service) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.apiReads++
	holders := map[netip.Addr][]*corev1.Service{}
	for i := range svcs {
		s := &svcs[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		key := s.Namespace + "/" + s.Name
		ips := kube.IngressIPs(s)
		now := fmt.Sprint(ips)
		if len(ips) == 0 {
			now = ""
		}
		was, known := w.services[key]
		switch {
		case !known || was == "":
			w.services[key] = now
		case now != was:
			w.changes = append(w.changes, fmt.Sprintf("%s: %s changed from %s to %q", time.Since(w.start).Round(time.Millisecond), key, was, now))
			w.services[key] = now
		}
		for _, ip := range ips {
			holders[ip] = append(holders[ip], s)
		}
	}
	for ip, hs := range holders {
		if len(hs) < 2 {
			continue
		}
		keys := map[string]bool{}
		for _, s := range hs {
			keys[s.Namespace+"/"+s.Annotations[v1alpha1.AnnotationAllowSharedIP]] = true
		}
		if len(keys) > 1 || keys["/"] {
			var names []string
			for _, s := range hs {
				names = append(names, s.Namespace+"/"+s.Name)
			}
			w.changes = append(w.changes, fmt.Sprintf("%s held by %s, which do not share it", ip, strings.Join(names, ", ")))
		}
	}
}

// Stop ends the watch and reports what it saw.
func (w *Watch) Stop() Report {
	w.cancel()
	w.wg.Wait()
	r := Report{Start: w.start, Duration: time.Since(w.start), IPs: map[netip.Addr]*IPReport{}, Routed: w.router != nil}
	for ip, p := range w.probes {
		r.IPs[ip] = &IPReport{Probe: p.Stop()}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	end := time.Now()
	for ip, ss := range w.samples {
		ir := r.IPs[ip]
		ir.Samples = ss
		ir.Dark, ir.Multi, ir.LongestDark, ir.LongestDarkAt, ir.MultiSamples = stretches(ss, end)
		ir.Straddles = w.straddles[ip]
	}
	slices.Sort(w.changes)
	r.Changes = slices.Compact(w.changes)
	r.APIReads = w.apiReads
	return r
}

// stretches sums the time the samples saw nothing answer (Sample.dark)
// and more than one MAC, each bad stretch lasting from its first bad
// sample to the next sample that differs (or end). longestAt is when the
// longest dark stretch began.
func stretches(ss []Sample, end time.Time) (dark, multi, longestDark time.Duration, longestAt time.Time, multiSamples int) {
	for i, s := range ss {
		next := end
		if i+1 < len(ss) {
			next = ss[i+1].At
		}
		d := next.Sub(s.At)
		switch {
		case s.dark():
			dark += d
		case len(s.MACs) > 1:
			multi += d
			multiSamples++
		}
	}
	var run time.Duration
	var from time.Time
	for i, s := range ss {
		next := end
		if i+1 < len(ss) {
			next = ss[i+1].At
		}
		if !s.dark() {
			run = 0
			continue
		}
		if run == 0 {
			from = s.At
		}
		run += next.Sub(s.At)
		if run > longestDark {
			longestDark, longestAt = run, from
		}
	}
	return dark, multi, longestDark, longestAt, multiSamples
}

// Bounds are what Check holds a Report to.
type Bounds struct {
	// MaxGap is the longest probe gap allowed; 0 means 1 s.
	MaxGap time.Duration
	// MaxDark is the longest stretch with no MAC (no route) allowed; 0
	// means MaxGap.
	MaxDark time.Duration
	// AllowChanges lets addresses change (a row that deletes Services).
	AllowChanges bool
}

// Check holds r to the suite's invariants: no sample with two MACs, no
// probe gap or dark stretch longer than the bounds, no address changed,
// and every address sampled at least every 200 ms on average (a watch
// that could not sample proves nothing).
func (r Report) Check(b Bounds) error {
	if b.MaxGap == 0 {
		b.MaxGap = time.Second
	}
	if b.MaxDark == 0 {
		b.MaxDark = b.MaxGap
	}
	var errs []error
	for ip, ir := range r.IPs {
		if ir.MultiSamples > 0 {
			errs = append(errs, fmt.Errorf("%s: more than one MAC in %d samples (%s in all): %s", ip, ir.MultiSamples, ir.Multi.Round(time.Millisecond), firstMulti(ir.Samples)))
		}
		if ir.Probe.LongestGap > b.MaxGap {
			errs = append(errs, fmt.Errorf("%s: probe gap %s, allowed %s", ip, ir.Probe.LongestGap.Round(time.Millisecond), b.MaxGap))
		}
		if ir.LongestDark > b.MaxDark {
			errs = append(errs, fmt.Errorf("%s: %s for %s from %s, allowed %s", ip, r.darkWords(),
				ir.LongestDark.Round(time.Millisecond), ir.LongestDarkAt.UTC().Format("15:04:05.000"), b.MaxDark))
		}
		if want := int(r.Duration / (2 * DefaultSampleEvery)); len(ir.Samples) < want {
			errs = append(errs, fmt.Errorf("%s: only %d samples in %s", ip, len(ir.Samples), r.Duration.Round(time.Second)))
		}
	}
	if !b.AllowChanges {
		for _, c := range r.Changes {
			errs = append(errs, errors.New(c))
		}
	}
	return errors.Join(errs...)
}

// darkWords says what a dark sample saw.
func (r Report) darkWords() string {
	if r.Routed {
		return "no route at the router"
	}
	return "no MAC answered"
}

func firstMulti(ss []Sample) string {
	for _, s := range ss {
		if len(s.MACs) > 1 {
			return fmt.Sprintf("first at %s: %v", s.At.Format("15:04:05.000"), s.MACs)
		}
	}
	return ""
}

// Figures are r's numbers as `name value unit` lines for make bench,
// each name prefixed with prefix: per scenario, the longest probe gap and
// the time with no MAC and with more than one, the worst over its
// addresses; for routed addresses the time with no route instead (two
// next hops are ECMP, no fault).
func (r Report) Figures(prefix string) []string {
	var gap, dark, multi time.Duration
	for _, ir := range r.IPs {
		gap = max(gap, ir.Probe.LongestGap)
		dark = max(dark, ir.Dark)
		multi = max(multi, ir.Multi)
	}
	if r.Routed {
		return []string{
			fmt.Sprintf("%s_longest_gap %.3f s", prefix, gap.Seconds()),
			fmt.Sprintf("%s_no_route %.3f s", prefix, dark.Seconds()),
		}
	}
	return []string{
		fmt.Sprintf("%s_longest_gap %.3f s", prefix, gap.Seconds()),
		fmt.Sprintf("%s_no_mac %.3f s", prefix, dark.Seconds()),
		fmt.Sprintf("%s_two_macs %.3f s", prefix, multi.Seconds()),
	}
}

// String summarizes r for a test log.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s watched, %d API reads", r.Duration.Round(time.Millisecond), r.APIReads)
	ips := slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for ip := range r.IPs {
			if !yield(ip) {
				return
			}
		}
	}, netip.Addr.Compare)
	for _, ip := range ips {
		ir := r.IPs[ip]
		if r.Routed {
			fmt.Fprintf(&b, "; %s: gap %s, %d/%d probes by %v, %d samples, no route %s (longest %s%s), next hops %s",
				ip, ir.Probe.LongestGap.Round(time.Millisecond), ir.Probe.Received, ir.Probe.Sent, ir.Probe.ByNode,
				len(ir.Samples), ir.Dark.Round(time.Millisecond), ir.LongestDark.Round(time.Millisecond), r.darkAt(ir),
				hopChanges(ir.Samples, r.Start))
			continue
		}
		fmt.Fprintf(&b, "; %s: gap %s, %d/%d probes by %v, %d samples, no MAC %s (longest %s%s), two MACs %s, %d handovers within a sample",
			ip, ir.Probe.LongestGap.Round(time.Millisecond), ir.Probe.Received, ir.Probe.Sent, ir.Probe.ByNode,
			len(ir.Samples), ir.Dark.Round(time.Millisecond), ir.LongestDark.Round(time.Millisecond), r.darkAt(ir),
			ir.Multi.Round(time.Millisecond), ir.Straddles)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "; %s", c)
	}
	return b.String()
}

// darkAt says when ir's longest dark stretch began, as time into the
// watch, or nothing if it has none.
func (r Report) darkAt(ir *IPReport) string {
	if ir.LongestDark == 0 {
		return ""
	}
	return fmt.Sprintf(" from %s", ir.LongestDarkAt.Sub(r.Start).Round(time.Millisecond))
}

// hopChanges lists the next-hop sets of the samples as they change, each
// with the time since start it was first seen: "[a b c] at 0s, [a c] at
// 30.412s".
func hopChanges(ss []Sample, start time.Time) string {
	var parts []string
	var last []netip.Addr
	for i, s := range ss {
		if i > 0 && slices.Equal(s.NextHops, last) {
			continue
		}
		last = s.NextHops
		parts = append(parts, fmt.Sprintf("%v at %s", s.NextHops, s.At.Sub(start).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}
