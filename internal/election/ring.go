package election

import (
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Watching a ring: the heartbeats of a large cluster.
//
// Heartbeats to every other member cost 40(n-1) packets a second per
// member, each way: 400 at 10 members, 4,000 at 100, 40,000 at 1,000.
// So in a cluster of more than HeartbeatPeers+1 members, each member
// sends its heartbeats to the HeartbeatPeers members after it in name
// order (its watchers, the ring wrapping around) and judges only the
// HeartbeatPeers before it (those it watches): 40*HeartbeatPeers packets
// a second each way, whatever the size of the cluster. The ring is made
// of the members every member knows alike (memberlist's alive members
// and those being verified, less those leaving or restarting in place),
// so all agree on who watches whom, up to gossip's lag.
//
// A watcher suspects a member it watches by the rules of heartbeat.go as
// far as they apply to one watcher: silent for the timeout (longer for a
// sick member), a direct ping unanswered, this member not itself
// stalled. It tells every member its suspicions at once and again every
// suspicionRefresh while it has any (a suspicion not renewed within
// suspicionTTL lapses, so that those of a watcher that died meanwhile
// do not count), and once more when it has none left.
//
// Every member counts out a member that most of its watchers suspect,
// leaving out watchers that are themselves counted out (so that two
// neighbours on the ring dying together are both counted out). Most of
// the watchers, not one: a partition between a member and one or two of
// its watchers, which memberlist's indirect probes bridge, moves
// nothing; where every member hears every other, one watcher's word
// alone was never enough either (hearsLocked). A member counted out by
// the others also counts itself out when it hears their suspicions (its
// heartbeats are lost on the way out, say): it then answers for nothing,
// instead of for the addresses the others just took over.
//
// A member cut off from the others hears none of the members it watches.
// When most of them have been silent for half the timeout, it pings
// every member at once (cutOff, as when memberlist reports a death), and
// if no majority answers it counts out those that did not: its speaker
// then sees no majority and answers for nothing, a little before the
// others, who wait for the full timeout, take its addresses over.

// suspicionPrefix starts a suspicion report: the reporter's name, then
// the members it suspects, separated by spaces. No heartbeat begins so.
const suspicionPrefix = "ironlb-sus1:"

const (
	// suspicionRefresh is how often a member repeats its suspicions to
	// everyone while it has any: the report is a single UDP packet, and
	// a lost one must not hold the failover up for long.
	suspicionRefresh = 100 * time.Millisecond
	// suspicionTTL is how long a report counts without being repeated.
	suspicionTTL = 5 * suspicionRefresh
)

// report is what a member last said of its suspicions.
type report struct {
	suspects []string
	at       time.Time
}

// ringLocked returns the ring (sorted names of the members watched for
// silence, this one included) and whether the cluster is large enough to
// watch it instead of every member. It is worked out again only after
// the membership changed (ringChangedLocked): the heartbeat loop asks
// for it at every tick. The caller holds m.mu.
func (m *Members) ringLocked() ([]string, bool) {
	if m.ring == nil {
		m.ring = m.makeRingLocked()
	}
	return m.ring, m.heartbeatsOn() && len(m.ring)-1 > m.opts.Tuning.HeartbeatPeers
}

// ringChangedLocked drops the ring, for ringLocked to work it out again;
// every change to m.members or m.held calls it. The caller holds m.mu.
func (m *Members) ringChangedLocked() { m.ring = nil }

// makeRingLocked works the ring out. The caller holds m.mu.
func (m *Members) makeRingLocked() []string {
	ring := make([]string, 0, len(m.members)+len(m.held))
	for name, mb := range m.members {
		if name == m.opts.Name || watched(mb.meta) {
			ring = append(ring, name)
		}
	}
	for name, h := range m.held {
		if watched(h.meta) {
			ring = append(ring, name)
		}
	}
	if _, ok := m.members[m.opts.Name]; !ok {
		ring = append(ring, m.opts.Name)
	}
	slices.Sort(ring)
	return slices.Compact(ring)
}

// neighbours returns the k members after name on ring (after: its
// watchers) or before it (its watched), nearest first, name excluded.
// ring is sorted; name need not be on it. k must be less than len(ring).
func neighbours(ring []string, name string, k int, after bool) []string {
	i, found := slices.BinarySearch(ring, name)
	n := len(ring)
	out := make([]string, 0, k)
	for step := 1; len(out) < k && step <= n; step++ {
		var j int
		if after {
			j = i + step
			if !found {
				j--
			}
		} else {
			j = i - step
		}
		j = ((j % n) + n) % n
		if ring[j] != name {
			out = append(out, ring[j])
		}
	}
	return out
}

// quorumOut returns the members of ring counted out: those that most of
// their k watchers (after them on ring), less the watchers counted out
// themselves, suspect. suspects reports whether watcher suspects member;
// only the members in voted (suspected by somebody) can be counted out.
func quorumOut(ring []string, k int, voted []string, suspects func(watcher, member string) bool) map[string]bool {
	out := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for _, name := range voted {
			if out[name] {
				continue
			}
			var watchers, votes int
			for _, w := range neighbours(ring, name, k, true) {
				if out[w] {
					continue
				}
				watchers++
				if suspects(w, name) {
					votes++
				}
			}
			if watchers > 0 && 2*votes > watchers {
				out[name], changed = true, true
			}
		}
	}
	return out
}

// judgeRingLocked applies the ring's rules at now (see above and
// judgeSilences): it updates this member's suspicions of the members it
// watches, and returns the confirmation pings to start and whether most
// of those members are silent, so that this member should check whether
// it is the one cut off. changed reports whether the members counted out
// changed. The caller holds m.mu.
func (m *Members) judgeRingLocked(ring []string, now time.Time, stalled time.Duration) (changed bool, pings []ping, checkCutOff bool) {
	timeout := m.opts.Tuning.HeartbeatTimeout
	k := m.opts.Tuning.HeartbeatPeers
	watching, fresh := 0, 0
	suspecting := map[string]bool{}
	for _, name := range neighbours(ring, m.opts.Name, k, false) {
		hb := m.beats[name]
		if hb == nil || hb.last.IsZero() {
			continue // never heard: memberlist's word stands
		}
		watching++
		silence, limit := hb.silence(now, stalled, timeout)
		if silence < limit/2 {
			fresh++
			continue
		}
		if stalled > 0 {
			if m.suspecting[name] {
				suspecting[name] = true // judged again at the next tick
			}
			continue
		}
		if hb.confirming < maxConfirming {
			if addr, ok := m.addrLocked(name); ok {
				hb.confirming++
				pings = append(pings, ping{name, addr})
			}
		}
		if hb.out(silence, limit) {
			suspecting[name] = true
		}
	}
	if !maps.Equal(suspecting, m.suspecting) {
		m.suspecting = suspecting
		m.suspicionsChanged = true
	}
	checkCutOff = stalled == 0 && watching >= 2 && 2*(1+fresh) <= 1+watching
	return m.countRingLocked(ring, now), pings, checkCutOff
}

// addrLocked returns the gossip address of member name, alive or being
// verified. The caller holds m.mu.
func (m *Members) addrLocked(name string) (net.Addr, bool) {
	if mb, ok := m.members[name]; ok {
		return net.UDPAddrFromAddrPort(mb.addr), true
	}
	if h, ok := m.held[name]; ok {
		return h.addr, true
	}
	return nil, false
}

// countRingLocked recounts the members counted out from this member's
// suspicions and the others' fresh reports, and reports whether that
// changed. The caller holds m.mu.
func (m *Members) countRingLocked(ring []string, now time.Time) bool {
	maps.DeleteFunc(m.reports, func(_ string, r report) bool { return now.Sub(r.at) > suspicionTTL })
	votedSet := maps.Clone(m.suspecting)
	for _, r := range m.reports {
		for _, s := range r.suspects {
			votedSet[s] = true
		}
	}
	voted := slices.Sorted(maps.Keys(votedSet))
	out := quorumOut(ring, m.opts.Tuning.HeartbeatPeers, voted, func(w, name string) bool {
		if w == m.opts.Name {
			return m.suspecting[name]
		}
		r, ok := m.reports[w]
		return ok && slices.Contains(r.suspects, name)
	})
	if maps.Equal(out, m.ringOut) {
		return false
	}
	gone, back := setDiff(out, m.ringOut), setDiff(m.ringOut, out)
	m.ringOut = out
	if len(gone) > 0 {
		m.log.Info("counted out: most of its watchers hear no heartbeat from it and it answers no ping", "members", gone)
	}
	if len(back) > 0 {
		m.log.Info("counted in again: its watchers hear it", "members", back)
	}
	return true
}

// setDiff returns the sorted keys of a that b lacks.
func setDiff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// sendSuspicions tells every other member this member's suspicions when
// they changed, or are due to be repeated. The caller is the heartbeat
// loop.
func (m *Members) sendSuspicions(ml *memberlist.Memberlist, now time.Time, buf []byte) []byte {
	m.mu.Lock()
	due := m.suspicionsChanged || (len(m.suspecting) > 0 && now.Sub(m.suspicionsSent) >= suspicionRefresh)
	if !due || m.down {
		m.mu.Unlock()
		return buf
	}
	m.suspicionsChanged, m.suspicionsSent = false, now
	buf = appendNames(buf[:0], suspicionPrefix, m.opts.Name, slices.Sorted(maps.Keys(m.suspecting)))
	to := make([]memberlist.Address, 0, len(m.members))
	for name, mb := range m.members {
		if name != m.opts.Name {
			to = append(to, memberlist.Address{Addr: mb.addr.String(), Name: name})
		}
	}
	m.mu.Unlock()
	for _, a := range to {
		_ = ml.SendToAddress(a, buf) // best effort: it is repeated
	}
	return buf
}

// reported records a suspicion report from name, and notifies when the
// members counted out changed. It runs in memberlist's packet handler.
func (m *Members) reported(name string, suspects []string) {
	now := time.Now()
	m.mu.Lock()
	if _, ok := m.members[name]; !ok || name == m.opts.Name {
		m.mu.Unlock()
		return
	}
	if len(suspects) == 0 {
		delete(m.reports, name)
	} else {
		m.reports[name] = report{suspects: suspects, at: now}
	}
	ring, on := m.ringLocked()
	changed := on && m.countRingLocked(ring, now)
	m.mu.Unlock()
	if changed {
		m.notify()
	}
}

// clearSuspicionLocked drops this member's suspicion of name, heard
// again, and reports whether the members counted out changed. The
// caller holds m.mu.
func (m *Members) clearSuspicionLocked(name string) bool {
	if !m.suspecting[name] {
		return false
	}
	delete(m.suspecting, name)
	m.suspicionsChanged = true
	ring, on := m.ringLocked()
	return on && m.countRingLocked(ring, time.Now())
}

// startCutOffCheckLocked runs cutOff for the ring (see above) in the
// background: at most one at a time and one per heartbeat timeout, and
// none while members are counted out as unreachable (cutOff re-pings
// those itself). The caller holds m.mu.
func (m *Members) startCutOffCheckLocked(ml *memberlist.Memberlist, now time.Time) {
	if m.cutOffCheck || len(m.unreachable) > 0 || now.Sub(m.cutOffAt) < m.opts.Tuning.HeartbeatTimeout || m.closing || ml == nil {
		return
	}
	m.cutOffCheck, m.cutOffAt = true, now
	ctx := m.runCtx
	m.workers.Add(1) // under mu with closing false
	go func() {
		defer m.workers.Done()
		if m.cutOff(ctx, ml, "") {
			m.notify()
		}
		m.mu.Lock()
		m.cutOffCheck = false
		m.mu.Unlock()
	}()
}

// parseSuspicions returns the sender of a suspicion report and the
// members it suspects.
func parseSuspicions(b []byte) (name string, suspects []string, ok bool) {
	s, ok := strings.CutPrefix(string(b), suspicionPrefix)
	name, rest, _ := strings.Cut(s, " ")
	if !ok || name == "" {
		return "", nil, false
	}
	return name, strings.Fields(rest), true
}
