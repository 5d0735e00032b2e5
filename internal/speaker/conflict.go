package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/l2"
)

// Address conflict detection: another host on the LAN that holds a
// Service address (a machine configured by hand, a DHCP lease in the
// wrong range) would answer ARP or NDP for it next to the owner, and the
// clients would reach one or the other at random. So the owner asks the
// LAN first (l2.Prober: an RFC 5227 ARP Probe, RFC 4862 duplicate address
// detection) and stays silent for an address another host answers for:
//
//   - before it first answers for an address nobody announced before (a
//     new Service, a newly assigned address: View.Current names nobody),
//     and again every recheckInterval while it answers for it, spread
//     over time so that probes do not go out all at once. Not on a
//     failover (Current names another node, or this node after a restart
//     of its speaker): a takeover must not wait the probe's 250 ms, and
//     the address was free while the old owner held it.
//   - an answer from a MAC that is not an ironlb node's (this node's
//     interfaces, every member's published ones, and every MAC a
//     ServiceAnnouncement names, which covers nodes that have since gone)
//     is a conflict: the owner leaves the address out of its responders'
//     sets, says why (an event and a condition on each Service using the
//     address, its announcer entry in the ServiceAnnouncement, metrics),
//     and probes it again every conflictInterval. When nobody foreign
//     answers, it announces the address like any newly owned one (a
//     gratuitous ARP burst) and clears the condition.
//
// The probing runs in a goroutine of its own (conflictWatch.run): a probe
// takes hundreds of milliseconds, which the sync loop must not wait for.
// The loop hands it the addresses this node owns at each turn
// (conflictWatch.update) and reads back each one's state; the goroutine
// kicks a sync when a state changes.

// Probe pacing.
const (
	// recheckInterval is how often an owned address is probed again.
	recheckInterval = 30 * time.Second
	// conflictInterval is how often an address in conflict is probed
	// again, to announce it soon after the other host releases it.
	conflictInterval = 5 * time.Second
	// ourMACsKept is how long a MAC seen as an ironlb node's counts as
	// one after it was last seen: a node that left the membership may
	// still answer for a while.
	ourMACsKept = time.Hour
)

// probeFunc probes addrs on the interface named iface and returns the
// MACs that claimed each (l2.Prober.Probe).
type probeFunc func(ctx context.Context, iface string, addrs []netip.Addr) (map[netip.Addr][]net.HardwareAddr, error)

// probeL2 is the probeFunc of a running speaker: an l2.Prober on the
// interface, with its default, fast pacing (250 ms).
func probeL2(ctx context.Context, iface string, addrs []netip.Addr) (map[netip.Addr][]net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	p, err := l2.NewProber(ifi, l2.ProbeOptions{})
	if err != nil {
		return nil, err
	}
	return p.Probe(ctx, addrs)
}

// probeState is where an owned address stands with conflict detection.
type probeState int

const (
	// stUnprobed: owned without a first probe (a failover): answered,
	// probed periodically.
	stUnprobed probeState = iota
	// stPending: its first probe is due or under way; not answered yet.
	stPending
	// stClear: the last probe found no other host; answered.
	stClear
	// stConflicted: another host answered the last probe; not answered.
	stConflicted
)

// answers reports whether this node answers for an address in state s.
func (s probeState) answers() bool { return s == stUnprobed || s == stClear }

// conflict is another host found holding an address.
type conflict struct {
	mac, iface string
	since      time.Time
}

// message is what the event, the condition and the ServiceAnnouncement
// say of the conflict on ip.
func (c conflict) message(ip netip.Addr) string {
	return fmt.Sprintf("%s is in use by another host, %s on %s: not announced until the other host releases it", ip, c.mac, c.iface)
}

// probeStatus is one address's state, as the sync loop reads it.
type probeStatus struct {
	state    probeState
	conflict conflict // when stConflicted
}

// wanted is an address this node owns, as the sync loop hands it to the
// watch: the interfaces it answers on, and whether it needs a first probe
// before it is answered.
type wanted struct {
	ifaces []string
	first  bool
}

// target is the watch's record of one owned address.
type target struct {
	probeStatus
	ifaces []string
	due    time.Time
}

// conflictWatch probes this node's addresses for conflicts in its own
// goroutine (run). The sync loop calls update; the rest is run's.
type conflictWatch struct {
	log     *slog.Logger
	metrics *metrics
	probe   probeFunc
	kick    func()
	// recheck and reprobe are recheckInterval and conflictInterval, but
	// for tests.
	recheck, reprobe time.Duration
	wake             chan struct{}

	mu      sync.Mutex
	targets map[netip.Addr]*target
	ours    map[string]time.Time // ironlb nodes' MACs, when last seen
}

func newConflictWatch(log *slog.Logger, m *metrics, probe probeFunc, kick func()) *conflictWatch {
	return &conflictWatch{
		log: log, metrics: m, probe: probe, kick: kick,
		recheck: recheckInterval, reprobe: conflictInterval,
		wake:    make(chan struct{}, 1),
		targets: map[netip.Addr]*target{},
		ours:    map[string]time.Time{},
	}
}

// update makes want the addresses the watch probes, with ours the MACs of
// ironlb nodes, and returns the state of each wanted address. An address
// new to the watch is pending if want says it needs a first probe, which
// starts at once; otherwise it is answered and probed at some moment
// within the next recheck interval. An address no longer wanted is
// forgotten: if it comes back, it starts over.
func (w *conflictWatch) update(want map[netip.Addr]wanted, ours []string) map[netip.Addr]probeStatus {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range ours {
		w.ours[m] = now
	}
	maps.DeleteFunc(w.ours, func(_ string, seen time.Time) bool { return now.Sub(seen) > ourMACsKept })
	probeNow := false
	out := make(map[netip.Addr]probeStatus, len(want))
	for ip, wt := range want {
		t := w.targets[ip]
		if t == nil {
			t = &target{}
			if wt.first {
				t.state, t.due = stPending, now
				probeNow = true
			} else {
				t.due = now.Add(rand.N(w.recheck))
			}
			w.targets[ip] = t
		}
		t.ifaces = wt.ifaces
		out[ip] = t.probeStatus
	}
	gone := false
	for ip, t := range w.targets {
		if _, ok := want[ip]; !ok {
			gone = gone || t.state == stConflicted
			delete(w.targets, ip)
		}
	}
	if gone {
		w.observe()
	}
	if probeNow {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return out
}

// run probes the addresses as they fall due until ctx ends.
func (w *conflictWatch) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		byIface, next := w.due(time.Now())
		if len(byIface) > 0 {
			w.probeAll(ctx, byIface)
			continue
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// due returns the targets due by now, by interface, and when the next
// other one is due (zero if none).
func (w *conflictWatch) due(now time.Time) (map[string]map[netip.Addr]*target, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var next time.Time
	out := map[string]map[netip.Addr]*target{}
	for ip, t := range w.targets {
		if t.due.After(now) {
			if next.IsZero() || t.due.Before(next) {
				next = t.due
			}
			continue
		}
		for _, name := range t.ifaces {
			if out[name] == nil {
				out[name] = map[netip.Addr]*target{}
			}
			out[name][ip] = t
		}
		// Not due again until this probe is over.
		t.due = now.Add(w.reprobe)
	}
	return out, next
}

// probeAll probes the targets on their interfaces, each interface in a
// goroutine of its own, and applies the outcome.
func (w *conflictWatch) probeAll(ctx context.Context, byIface map[string]map[netip.Addr]*target) {
	type answer struct {
		iface string
		macs  []net.HardwareAddr
	}
	var mu sync.Mutex
	claims := map[netip.Addr][]answer{}
	failed := map[netip.Addr]bool{}
	var wg sync.WaitGroup
	for name, ts := range byIface {
		wg.Go(func() {
			addrs := slices.Collect(maps.Keys(ts))
			got, err := w.probe(ctx, name, addrs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && ctx.Err() == nil {
				w.log.Warn("probe for address conflicts", "interface", name, "addresses", len(addrs), "error", err)
				for _, a := range addrs {
					failed[a] = true
				}
			}
			for a, macs := range got {
				claims[a] = append(claims[a], answer{name, macs})
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}

	now := time.Now()
	w.mu.Lock()
	changed := false
	for _, ts := range byIface {
		for ip, t := range ts {
			if w.targets[ip] != t {
				continue // forgotten meanwhile
			}
			var found *conflict
			var all []string
			for _, a := range claims[ip] {
				for _, m := range a.macs {
					if _, ok := w.ours[m.String()]; ok {
						continue
					}
					all = append(all, m.String()+" on "+a.iface)
					if found == nil {
						found = &conflict{mac: m.String(), iface: a.iface, since: now}
					}
				}
			}
			switch {
			case found != nil:
				t.due = now.Add(w.reprobe)
				if t.state == stConflicted {
					continue
				}
				w.log.Warn("address in use by another host: not announcing it", "ip", ip, "claimed by", all)
				w.metrics.conflicts.WithLabelValues(family(ip)).Inc()
				t.state, t.conflict, changed = stConflicted, *found, true
			case failed[ip] && t.state == stConflicted:
				// Nothing learnt: probe again soon.
			default:
				// A probe that failed to go out says nothing either, but
				// an address must not wait for one that never works: it
				// is answered, and probed again later.
				t.due = now.Add(w.recheck + rand.N(w.recheck/5) - w.recheck/10)
				if t.state == stConflicted {
					w.log.Info("address free again: announcing it", "ip", ip, "was claimed by", t.conflict.mac)
				}
				changed = changed || t.state == stConflicted || t.state == stPending
				t.state, t.conflict = stClear, conflict{}
			}
		}
	}
	if changed {
		w.observe()
	}
	w.mu.Unlock()
	if changed {
		w.kick()
	}
}

// observe sets the conflicted-addresses gauge. Called with w.mu held.
func (w *conflictWatch) observe() {
	n := 0
	for _, t := range w.targets {
		if t.state == stConflicted {
			n++
		}
	}
	w.metrics.conflicted.Set(float64(n))
}

// family is the metrics' label of ip's family.
func family(ip netip.Addr) string {
	if ip.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// condWant is the AddressConflict condition a Service should have: True
// with msg since since, or none (msg "").
type condWant struct {
	svc   *corev1.Service // identity only (serviceObject)
	msg   string
	since time.Time
}

// condWriter writes the AddressConflict condition of Services in its own
// goroutine, as statusWriter writes the ServiceAnnouncements: the sync
// loop hands it the wanted conditions (set) and goes on. It writes a
// strategic merge patch of the Service's status subresource that names
// that condition type alone, which merges by type: the controller's
// IPAllocated condition and anyone else's stay as they are. The patch
// carries no resourceVersion: this condition is the owning speaker's
// alone, and a concurrent write of another field must not make it fail.
type condWriter struct {
	c    apiAccess
	log  *slog.Logger
	wake chan struct{}

	mu   sync.Mutex
	want map[string]condWant
	// written is what this writer last wrote per Service: the message of
	// a True condition, or "" for a removal. A Service it wrote True for
	// and no longer wants a condition on is cleared, as are those set
	// wants cleared explicitly.
	written map[string]string
}

func newCondWriter(c apiAccess, log *slog.Logger) *condWriter {
	return &condWriter{c: c, log: log, wake: make(chan struct{}, 1), written: map[string]string{}}
}

// set replaces the wanted conditions, by Service key.
func (w *condWriter) set(want map[string]condWant) {
	w.mu.Lock()
	w.want = want
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx ends; a failed write is retried a second later.
func (w *condWriter) run(ctx context.Context) { writeLoop(ctx, w.wake, w.write) }

// write patches each Service whose condition differs from what was last
// written, and reports whether every patch succeeded.
func (w *condWriter) write(ctx context.Context) bool {
	w.mu.Lock()
	want := maps.Clone(w.want)
	written := maps.Clone(w.written)
	w.mu.Unlock()
	for key, msg := range written {
		if _, ok := want[key]; !ok && msg != "" {
			ns, name, _ := strings.Cut(key, "/")
			want[key] = condWant{svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
		}
	}
	ok := true
	for key, cw := range want {
		if last, had := written[key]; cw.svc == nil || (had && last == cw.msg) {
			continue
		}
		err := w.c.PatchStatus(ctx, cw.svc.DeepCopy(), types.StrategicMergePatchType, conditionPatch(cw))
		if apierrors.IsNotFound(err) {
			err = nil // the Service is gone, and its condition with it
		}
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("write the AddressConflict condition", "service", key, "error", err)
			}
			ok = false
			continue
		}
		w.mu.Lock()
		if cw.msg == "" {
			// Remembered as removed while still wanted removed, so that
			// it is not patched again at every turn.
			w.written[key] = ""
		} else {
			w.written[key] = cw.msg
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	for key, msg := range w.written {
		if _, still := w.want[key]; msg == "" && !still {
			delete(w.written, key)
		}
	}
	w.mu.Unlock()
	return ok
}

// conditionPatch is the strategic merge patch of a Service's status that
// sets the AddressConflict condition as cw says, or deletes it.
func conditionPatch(cw condWant) []byte {
	var c any = map[string]string{"type": v1alpha1.ServiceConditionAddressConflict, "$patch": "delete"}
	if cw.msg != "" {
		c = metav1.Condition{
			Type:               v1alpha1.ServiceConditionAddressConflict,
			Status:             metav1.ConditionTrue,
			Reason:             v1alpha1.ReasonAddressConflict,
			Message:            cw.msg,
			LastTransitionTime: metav1.NewTime(cw.since),
		}
	}
	b, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{c}}})
	if err != nil {
		panic(err) // strings and a time: cannot fail
	}
	return b
}
