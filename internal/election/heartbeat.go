package election

import (
	"context"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Heartbeats: the fast path of failure detection.
//
// memberlist's SWIM needs a failed probe and a suspicion window before it
// declares a member dead (see Tuning): about half a second, which is most
// of an unplanned failover. Its probe also times out after ProbeTimeout,
// so it cannot tell a dead member from one whose answers are 50 ms late.
// So every member also sends each of the others a heartbeat every
// HeartbeatInterval, as a VRRP master sends advertisements: one small
// memberlist user message (labelled and, with a key, encrypted like all
// gossip), never answered. A receiver only notes when it last heard each
// member. A heartbeat that is late is not lost: what counts is silence,
// so delay and jitter cost nothing until they reach HeartbeatTimeout.
//
// A member silent for HeartbeatTimeout is counted out of Alive (not
// declared dead to memberlist, which goes its own way) when, on top of
// the silence:
//
//   - a direct ping went unanswered: from half the timeout on, the member
//     is pinged at every tick (a second path, both ways: a member whose
//     heartbeats alone are lost, or that answers between two stalls, is
//     not dropped; an answer counts as a heartbeat);
//   - its process is gone, or it has been silent for holdMax: with each
//     ping its gossip port is dialled, and a connection accepted though
//     the ping went unanswered means its process still holds the port
//     but does not run (frozen, or starved of CPU), as its node's kernel
//     accepts for it; such a member is counted out only after holdMax
//     (see out). A dead process's port refuses, a dead or cut-off node
//     does not answer: neither waits longer;
//   - this member was not itself stalled: when a heartbeat tick comes more
//     than an interval late (a CPU-starved or frozen process), the time it
//     was late is counted as nobody's silence, and nobody is judged at
//     that tick, since the heartbeats that arrived meanwhile may still
//     wait unread in the socket;
//   - no other member still hears it: each heartbeat lists the members its
//     sender has not heard for half the timeout, and a member that a
//     recently heard other member does not list is alive beyond a
//     partition between the two (which memberlist's indirect probes
//     bridge, and which must move nothing);
//   - and this member still hears most of the others. If, with itself, the
//     members it has heard within half the timeout are no majority of
//     those it knows, it is the one cut off: it counts out every member it
//     has not heard within that time, so that the speaker sees no quorum
//     and answers for nothing, rather than taking over the addresses of
//     the first member to fall silent while the rest still look alive.
//
// A member whose heartbeats keep coming late is given longer (see
// sickLate). A member is counted in again at its next heartbeat. Only
// members that have sent a heartbeat since they joined are watched, so
// speakers of versions without heartbeats (a rolling upgrade) are left to
// memberlist.
// Members leaving (metaLeaving) or restarting in place (restart.go) are
// not watched: they are handled by their announcements.
//
// Cost: each member sends n-1 heartbeats per HeartbeatInterval and
// receives as many: with the 25 ms default, 40*(n-1) packets a second
// each way per member (see Tuning for bytes). That is for a cluster of
// up to HeartbeatPeers+1 members (5 by default); a larger one watches a
// ring instead (ring.go), where each member sends and receives
// 40*HeartbeatPeers a second, whatever the cluster's size, and the rules
// above apply to the members each watches, with most of a member's
// watchers, not one, needed to count it out.

// heartbeatPrefix starts a heartbeat's payload; the sender's name
// follows, then the members it has not heard for half a timeout (see
// hearsLocked). No other user messages are sent, but the prefix keeps
// others (and a future version's) from being read as heartbeats.
const heartbeatPrefix = "ironlb-hb1:"

// maxConfirming bounds the confirmation pings in flight to one member: a
// ping waits ProbeTimeout, longer than a HeartbeatInterval.
const maxConfirming = 2

// A member whose heartbeats come late again and again is sick, not dead:
// a process confined to a tenth of a CPU gets 10 ms in every 100 and its
// heartbeats arrive in bursts, every 100 ms and now and then 300 ms
// apart (the fault suite's Starvation row). Such a member is given
// sickTimeoutMult times the longest gap it showed lately before it is
// counted out, instead of HeartbeatTimeout: a slower failover for a node
// that is failing anyway, and none for one that is merely slow.
const (
	// sickLate is how many gaps longer than two heartbeat intervals
	// within sickWindow make a member sick. A healthy member on a loaded
	// machine shows a few a minute.
	sickLate   = 5
	sickWindow = 10 * time.Second
	// gapMemory is how long a sick member's longest gap counts.
	gapMemory       = 30 * time.Second
	sickTimeoutMult = 3
)

// heartbeat is what the watching member knows of one member's heartbeats.
type heartbeat struct {
	last       time.Time // last heartbeat heard, or a ping answered
	confirming int       // confirmation pings in flight
	failedPing time.Time // when the last unanswered confirmation ping was sent
	// frozen says the member's gossip port accepted a connection made
	// with that ping (holdsPort): its process lives but does not run.
	frozen bool
	silent bool // counted out of Alive until heard again
	// late are the arrival times of gaps longer than two intervals
	// within sickWindow, oldest first.
	late []time.Time
	// maxGap is the longest gap since maxGapAt, at most gapMemory ago.
	maxGap   time.Duration
	maxGapAt time.Time
	// stale are the members this member said, in its last heartbeat, it
	// has not heard for half a timeout; reported says a heartbeat (not
	// only a ping) has come.
	stale    []string
	reported bool
	// elsewhere is set once this member has logged that another hears
	// the member it finds silent, frozenLogged once it has logged that
	// it waits for a frozen one; a heartbeat clears them.
	elsewhere, frozenLogged bool
}

// record notes a heartbeat at now after a gap of gap (the interval
// between heartbeats is every).
func (hb *heartbeat) record(now time.Time, gap, every time.Duration) {
	hb.last = now
	if gap <= 2*every {
		return
	}
	i := 0
	for i < len(hb.late) && now.Sub(hb.late[i]) > sickWindow {
		i++
	}
	hb.late = append(hb.late[i:], now)
	if gap > hb.maxGap || now.Sub(hb.maxGapAt) > gapMemory {
		hb.maxGap, hb.maxGapAt = gap, now
	}
}

// timeout is how long hb's member may be silent at now before it is
// counted out: base, or for a sick member sickTimeoutMult times its
// longest recent gap if that is more, at most holdMax.
func (hb *heartbeat) timeout(now time.Time, base time.Duration) time.Duration {
	n := 0
	for _, t := range hb.late {
		if now.Sub(t) <= sickWindow {
			n++
		}
	}
	if n < sickLate || now.Sub(hb.maxGapAt) > gapMemory {
		return base
	}
	return min(holdMax, max(base, sickTimeoutMult*hb.maxGap))
}

// out reports whether hb's member, silent for silence and given limit,
// is counted out (the rules above): silent long enough, the last ping
// since its last heartbeat unanswered and, if its process still holds
// its port (frozen), silent for holdMax. A CPU-starved speaker's
// heartbeats came 350 to 550 ms apart in the fault suite's Starvation
// row on a loaded machine, more than three times the gaps before them,
// so lateness alone (timeout) cannot tell it from a dead one; its kernel
// can.
func (hb *heartbeat) out(silence, limit time.Duration) bool {
	return hb.due(silence, limit) && (!hb.frozen || silence >= holdMax)
}

// due reports whether hb's member, silent for silence, would be counted
// out but for a port that holds (out): silent for limit, and the last
// ping since its last heartbeat unanswered.
func (hb *heartbeat) due(silence, limit time.Duration) bool {
	return silence >= limit && hb.failedPing.After(hb.last)
}

// silence returns how long hb's member has been silent at now, after
// taking stalled off (the time this member itself was stalled, which is
// nobody's silence), and how long it may be before it is counted out
// (timeout, with base the heartbeat timeout).
func (hb *heartbeat) silence(now time.Time, stalled, base time.Duration) (silence, limit time.Duration) {
	if stalled > 0 {
		if hb.last = hb.last.Add(stalled); hb.last.After(now) {
			hb.last = now
		}
	}
	return now.Sub(hb.last), hb.timeout(now, base)
}

// heartbeatsOn reports whether the heartbeat detector runs.
func (m *Members) heartbeatsOn() bool { return m.opts.Tuning.HeartbeatInterval > 0 }

// runHeartbeats sends heartbeats and judges silences every
// HeartbeatInterval until ctx ends. The caller counts it in m.workers.
func (m *Members) runHeartbeats(ctx context.Context, ml *memberlist.Memberlist) {
	every := m.opts.Tuning.HeartbeatInterval
	var msg []byte
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	var to []memberlist.Address
	var sus []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		// A tick late by more than an interval: this process was
		// stalled, and did not listen either; that time is nobody's
		// silence.
		stalled := max(0, now.Sub(last)-every)
		if stalled < every {
			stalled = 0
		} else {
			m.log.Debug("heartbeat tick late", "by", stalled.Round(time.Millisecond))
		}
		last = now
		out, stale := m.judgeSilences(ml, now, stalled)
		if out {
			m.notify()
		}
		msg = appendHeartbeat(msg[:0], m.opts.Name, stale)
		to = m.heartbeatTargets(to[:0])
		for _, a := range to {
			// Best effort, as the heartbeat itself: an error (no route
			// while a link is down) is the silence the others measure.
			_ = ml.SendToAddress(a, msg)
		}
		sus = m.sendSuspicions(ml, now, sus)
	}
}

// heartbeatTargets appends the address of every alive member other than
// this one to to, or in a large cluster of its watchers on the ring
// (ring.go): none once memberlist is shut down.
func (m *Members) heartbeatTargets(to []memberlist.Address) []memberlist.Address {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return to
	}
	if ring, on := m.ringLocked(); on {
		for _, name := range neighbours(ring, m.opts.Name, m.opts.Tuning.HeartbeatPeers, true) {
			if mb, ok := m.members[name]; ok {
				to = append(to, memberlist.Address{Addr: mb.addr.String(), Name: name})
			}
		}
		return to
	}
	for name, mb := range m.members {
		if name != m.opts.Name {
			to = append(to, memberlist.Address{Addr: mb.addr.String(), Name: name})
		}
	}
	return to
}

// heard records a heartbeat (or an answered ping: stale nil) from name,
// which has not heard the members in stale for half a timeout. It runs in
// memberlist's packet handler, outside memberlist's node lock.
func (m *Members) heard(name string, stale []string) {
	now := time.Now()
	m.mu.Lock()
	_, member := m.members[name]
	if _, h := m.held[name]; !member && !h {
		m.mu.Unlock()
		return // unknown, or gone: nothing to watch
	}
	hb := m.beats[name]
	if hb == nil {
		hb = &heartbeat{}
		m.beats[name] = hb
	}
	gap := time.Duration(0)
	if !hb.last.IsZero() {
		gap = now.Sub(hb.last)
	}
	hb.record(now, gap, m.opts.Tuning.HeartbeatInterval)
	if stale != nil || !hb.reported {
		hb.stale, hb.reported = stale, stale != nil
	}
	back := hb.silent
	hb.silent, hb.elsewhere, hb.frozenLogged = false, false, false
	back = m.clearSuspicionLocked(name) || back
	m.mu.Unlock()
	if gap > m.opts.Tuning.HeartbeatTimeout/2 {
		m.log.Debug("heartbeat late", "member", name, "gap", gap.Round(time.Millisecond))
	}
	if back {
		m.log.Info("member heard again; counting it in", "member", name, "after", gap.Round(time.Millisecond))
		m.notify()
	}
}

// judgeSilences applies the rules above at now, starts confirmation pings,
// and reports whether a member was counted out. stalled is how long this
// member's own tick came late, not counted as anyone's silence.
func (m *Members) judgeSilences(ml *memberlist.Memberlist, now time.Time, stalled time.Duration) (out bool, stale []string) {
	timeout := m.opts.Tuning.HeartbeatTimeout
	var pings []ping
	var silent, frozen []string
	m.mu.Lock()
	if ring, on := m.ringLocked(); on {
		m.ringOn = true
		changed, pings, checkCutOff := m.judgeRingLocked(ring, now, stalled)
		m.startPingsLocked(ml, pings)
		if checkCutOff {
			m.startCutOffCheckLocked(ml, now)
		}
		m.mu.Unlock()
		return changed, nil
	}
	if m.ringOn {
		// Back to watching every member: the ring's verdicts are
		// nobody's now, and most members have sent this one no
		// heartbeat lately; each member is judged afresh.
		m.ringOn = false
		clear(m.ringOut)
		clear(m.suspecting)
		clear(m.reports)
		for _, hb := range m.beats {
			hb.last, hb.failedPing, hb.silent = now, time.Time{}, false
		}
	}
	known := 1 + len(m.held) // this member, those being verified
	fresh := 1               // this member
	for name, mb := range m.members {
		if name == m.opts.Name {
			continue
		}
		known++
		hb := m.beats[name]
		if hb == nil || hb.last.IsZero() || !watched(mb.meta) {
			fresh++ // not watched: memberlist's word stands
			continue
		}
		silence, limit := hb.silence(now, stalled, timeout)
		if silence < limit/2 {
			fresh++
			continue
		}
		stale = append(stale, name)
		if stalled > 0 || hb.silent {
			continue
		}
		if hb.confirming < maxConfirming {
			hb.confirming++
			pings = append(pings, ping{name, net.UDPAddrFromAddrPort(mb.addr)})
		}
		if hb.out(silence, limit) {
			silent = append(silent, name)
		} else if hb.due(silence, limit) && !hb.frozenLogged {
			hb.frozenLogged = true
			frozen = append(frozen, name)
		}
	}
	cutOff := len(silent) > 0 && 2*fresh <= known
	if cutOff {
		silent = slices.Clone(stale)
	} else {
		// Not where another member still hears it: a partition between
		// this member and that one only, which memberlist's indirect
		// probes bridge, is no reason to take its addresses.
		var heardElsewhere []string
		silent = slices.DeleteFunc(silent, func(name string) bool {
			by := m.hearsLocked(name, now)
			if hb := m.beats[name]; by != "" && !hb.elsewhere {
				hb.elsewhere = true
				heardElsewhere = append(heardElsewhere, name+" (by "+by+")")
			}
			return by != ""
		})
		if len(heardElsewhere) > 0 {
			m.log.Info("member silent here but heard by another; not counting it out", "members", heardElsewhere)
		}
	}
	for _, name := range silent {
		m.beats[name].silent = true
	}
	m.startPingsLocked(ml, pings)
	m.mu.Unlock()
	if len(frozen) > 0 {
		m.log.Info("member silent, but its process holds its gossip port: starved of CPU or frozen; counting it out only if it stays silent", "members", frozen, "for", holdMax)
	}
	switch {
	case cutOff:
		slices.Sort(silent)
		m.log.Warn("cut off: no heartbeat from most of the members; counting them out until they are heard", "silent", silent, "heard", fresh, "known", known)
	default:
		for _, name := range silent {
			m.log.Info("member silent: no heartbeat, no answer to a ping, and no other member hears it; counting it out", "member", name)
		}
	}
	return len(silent) > 0, stale
}

// hearsLocked returns a member other than this one and name that hears
// name: one heard within half a timeout whose last heartbeat did not
// list name as stale. The caller holds m.mu.
func (m *Members) hearsLocked(name string, now time.Time) string {
	half := m.opts.Tuning.HeartbeatTimeout / 2
	for q, mb := range m.members {
		if q == m.opts.Name || q == name || !watched(mb.meta) {
			continue
		}
		hb := m.beats[q]
		if hb == nil || !hb.reported || now.Sub(hb.last) >= half {
			continue // not heard lately: its word is stale too
		}
		if !slices.Contains(hb.stale, name) {
			return q
		}
	}
	return ""
}

// confirmSilence pings name once (probe); an answer counts as a
// heartbeat.
func (m *Members) confirmSilence(ml *memberlist.Memberlist, name string, addr net.Addr) {
	sent := time.Now()
	ok, frozen := m.probe(ml, name, addr)
	if ok {
		m.heard(name, nil)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if hb := m.beats[name]; hb != nil {
		hb.confirming = max(0, hb.confirming-1)
		if !ok && sent.After(hb.failedPing) {
			hb.failedPing, hb.frozen = sent, frozen
		}
	}
}

// probe pings name at addr (answers) and, at the same time, dials its
// gossip port: it reports whether the ping was answered within
// ProbeTimeout and, if not, whether the port accepted a connection
// (holdsPort) within that time, so a frozen member is told from a dead
// one at no cost in time. The caller must be counted in m.workers.
func (m *Members) probe(ml *memberlist.Memberlist, name string, addr net.Addr) (answered, frozen bool) {
	held := make(chan bool, 1)
	go func() { held <- holdsPort(addr, m.opts.Tuning.ProbeTimeout) }()
	answered = m.answers(ml, name, addr)
	return answered, <-held && !answered
}

// holdsPort reports whether a TCP connection to addr (a member's gossip
// address) is accepted within timeout: then the member's process still
// holds its gossip port, whether or not it runs, as a node's kernel
// accepts connections for a listening process that is frozen or starved
// of CPU. A port whose process is gone refuses; a node that is down, or
// cut off, does not answer.
func holdsPort(addr net.Addr, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// watched reports whether a member with metadata meta is watched for
// silence: not while it leaves or restarts in place.
func watched(meta string) bool {
	if meta == metaLeaving {
		return false
	}
	_, _, restarting := parseRestart(meta)
	return !restarting
}

// startPingsLocked starts the confirmation pings, each counted in
// hb.confirming by the caller, unless Run is stopping. The caller holds
// m.mu.
func (m *Members) startPingsLocked(ml *memberlist.Memberlist, pings []ping) {
	if len(pings) == 0 {
		return
	}
	if m.closing || ml == nil {
		for _, p := range pings {
			m.beats[p.name].confirming--
		}
		return
	}
	m.workers.Add(len(pings)) // under mu with closing false
	for _, p := range pings {
		go func() {
			defer m.workers.Done()
			m.confirmSilence(ml, p.name, p.addr)
		}()
	}
}

// ping is a confirmation ping to send.
type ping struct {
	name string
	addr net.Addr
}

// silentLocked reports whether name is counted out for silence: by this
// member's heartbeats, or in a large cluster by its watchers on the ring.
// The caller holds m.mu.
func (m *Members) silentLocked(name string) bool {
	if m.ringOn {
		return m.ringOut[name]
	}
	hb := m.beats[name]
	return hb != nil && hb.silent
}

// heardLatelyLocked reports whether name's heartbeats show it alive at
// now: one came within the time it may be silent, HeartbeatTimeout or,
// for a member whose heartbeats keep coming late, longer (timeout). It is
// the heartbeat judge's own patience, lent to the check of a death
// memberlist reports (verify.go): memberlist suspects a CPU-starved
// member whenever its refutation comes late, and a flat HeartbeatTimeout
// there counted such a member out in one gap of its bursts (the fault
// suite's Starvation row, under CI load) that the judge would have
// waited out. The caller holds m.mu.
func (m *Members) heardLatelyLocked(name string, now time.Time) bool {
	hb := m.beats[name]
	return hb != nil && hb.heardLately(now, m.opts.Tuning.HeartbeatTimeout)
}

// heardLately reports whether hb's member was heard within its timeout
// at now, base being the heartbeat timeout.
func (hb *heartbeat) heardLately(now time.Time, base time.Duration) bool {
	return !hb.last.IsZero() && now.Sub(hb.last) < hb.timeout(now, base)
}

// appendHeartbeat appends a heartbeat from name, which has not heard the
// members in stale for half a timeout, to b: heartbeatPrefix, then the
// names separated by spaces (which no Kubernetes node name holds).
func appendHeartbeat(b []byte, name string, stale []string) []byte {
	return appendNames(b, heartbeatPrefix, name, stale)
}

// appendNames appends prefix, name and the names in list, each after a
// space, to b: the shape of heartbeats and suspicion reports.
func appendNames(b []byte, prefix, name string, list []string) []byte {
	b = append(b, prefix...)
	b = append(b, name...)
	for _, s := range list {
		b = append(b, ' ')
		b = append(b, s...)
	}
	return b
}

// parseHeartbeat returns the sender of a heartbeat message and the
// members it says are stale (empty, not nil, when none is).
func parseHeartbeat(b []byte) (name string, stale []string, ok bool) {
	s, ok := strings.CutPrefix(string(b), heartbeatPrefix)
	name, rest, _ := strings.Cut(s, " ")
	if !ok || name == "" {
		return "", nil, false
	}
	stale = strings.Fields(rest)
	if stale == nil {
		stale = []string{}
	}
	return name, stale, true
}
