package election

import (
	"context"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Verifying deaths.
//
// memberlist takes any "dead" message at face value if its incarnation is
// not older than what it knows. When a partition heals, the members that
// were cut off still hold, and gossip, the deaths they declared while
// alone, at the very incarnations the healthy members are still alive
// with, so the healthy ones accept them: in the lab (TestLabLinkCut), most
// heals made a survivor drop a healthy member, for 40 to 500 ms, until
// that member heard of it and refuted. For ironlb that would be a spurious
// failover of a healthy node's IPs. With the check below the lab saw none
// in 20 heals.
//
// So a member reported dead by memberlist is first pinged directly, once
// (ping and ack through memberlist, hence encrypted and labelled like all
// gossip). If no ack comes within the probe timeout, and no heartbeat
// (heartbeat.go) was heard from it within HeartbeatTimeout (or the
// longer time a member whose heartbeats keep coming late is given), it is
// dead, and Alive drops it; this adds at most ProbeTimeout (30 ms) to
// memberlist's verdict, which the heartbeats have usually anticipated.
// The heartbeat counts because it is never late: a member whose answers
// are delayed past ProbeTimeout (50 ms ± 40 ms of delay in the fault
// suite) is alive. So is one whose process still holds its gossip port
// though it does not answer (holdsPort): it is starved of CPU or frozen,
// and memberlist suspects it whenever its refutation comes late. If it
// answers, or holds its port, Alive keeps it while memberlist sorts
// itself out (the member refutes and is alive again within a gossip round
// or two), pinging it every ProbeInterval, for at most holdMax; a member
// that answers pings but stays dead to memberlist that long is dropped
// anyway, so the views of all speakers converge.
//
// A member that leaves on purpose must not be kept: it answers pings until
// it stops. Leave therefore first sets its metadata to metaLeaving and
// waits for that to spread; Alive drops a member with that metadata at
// once, and its death is not verified.

// Finding oneself cut off.
//
// memberlist declares the members it cannot reach dead one at a time,
// each after its own suspicion timeout. A member whose own link to the
// others is cut (a firewall on its gossip port, a cable) therefore sees
// one peer die while it still counts the next as alive, for the 100 ms or
// so until that one is declared dead too: with three members it then
// holds "two of three", a majority, and takes over the first one's
// addresses while that one, with the real majority, goes on answering for
// them (two answering nodes, seen in the fault suite's GossipCutOneNode).
// So when a death is confirmed (the member does not answer a direct ping),
// this member also pings every other alive member, at once; if with
// itself they are not a majority of the members it knows, it is the one
// cut off, and Alive leaves out those that did not answer, at once,
// until each answers a ping again (re-pinged every ProbeInterval). The
// speaker's quorum then sees this member alone and answers for nothing.
// On a healthy member this costs one ping per alive member per death.

// metaLeaving is the node metadata of a member that is leaving.
const metaLeaving = "leaving"

// holdMax bounds how long a member that memberlist holds dead but that
// answers pings is kept in Alive.
const holdMax = 2 * time.Second

// held is a member memberlist reports dead that Alive still lists.
type held struct {
	gen  uint64 // tells a later death of the same member from this one
	addr net.Addr
	meta string
}

// onDeath handles memberlist's report that name is dead or has left. It
// runs under memberlist's locks: it may not call memberlist, only start the
// check.
func (m *Members) onDeath(name string, mb member) {
	m.mu.Lock()
	delete(m.members, name)
	m.ringChangedLocked()
	delete(m.unreachable, name)
	if until, user, ok := parseRestart(mb.meta); ok && name != m.opts.Name && !m.closing && m.ml != nil {
		if m.holdRestart(name, mb.addr, until, user) {
			m.mu.Unlock()
			m.log.Info("member stopped to restart; keeping its place", "member", name, "until", until)
			m.notify()
			return
		}
	}
	if mb.meta == metaLeaving || name == m.opts.Name || m.closing || m.ml == nil {
		delete(m.beats, name)
		m.mu.Unlock()
		m.log.Info("member left", "member", name, "addr", mb.addr)
		m.notify()
		return
	}
	m.gen++
	h := held{gen: m.gen, addr: net.UDPAddrFromAddrPort(mb.addr), meta: mb.meta}
	m.held[name] = h
	m.ringChangedLocked()
	ml, ctx := m.ml, m.runCtx
	m.workers.Add(1) // under mu with closing false: Run has not begun to Wait
	m.mu.Unlock()
	go func() {
		defer m.workers.Done()
		m.verify(ctx, ml, name, h)
	}()
}

// onAlive handles memberlist's report that a member is alive (again), or
// has changed.
func (m *Members) onAlive(name string, mb member) {
	m.mu.Lock()
	_, held := m.held[name]
	if _, ok := m.members[name]; !ok && !held {
		// Joined, or back from the dead: watched again from its next
		// heartbeat (heartbeat.go). A member whose death was being
		// verified was watched all along: it keeps its record, and with
		// it the longer timeout of a member whose heartbeats keep coming
		// late, which memberlist suspects again and again.
		delete(m.beats, name)
	}
	m.members[name] = mb
	m.ringChangedLocked()
	if name == m.opts.Name {
		m.self = mb.addr
	}
	delete(m.held, name)
	back := name != m.opts.Name && m.dropRestart(name)
	m.mu.Unlock()
	if back {
		m.log.Info("member back from its restart", "member", name)
	}
	m.notify()
}

// cutOff pings every alive member other than this one and dead (whose
// death is being confirmed, "" if none: ring.go) at once and, if those that answer are, with
// this member, no majority of the members it knows (the alive, those
// being verified, and dead), sets those that did not answer unreachable
// (see Alive) and starts re-pinging them. It reports whether it did; the
// caller notifies. The caller is counted in m.workers.
func (m *Members) cutOff(ctx context.Context, ml *memberlist.Memberlist, dead string) bool {
	m.mu.Lock()
	others := map[string]net.Addr{}
	known := map[string]bool{m.opts.Name: true}
	if dead != "" {
		known[dead] = true
	}
	for name, mb := range m.members {
		known[name] = true
		if _, cut := m.unreachable[name]; name != m.opts.Name && name != dead && mb.meta != metaLeaving && !cut {
			others[name] = net.UDPAddrFromAddrPort(mb.addr)
		}
	}
	for name := range m.held {
		known[name] = true
	}
	m.mu.Unlock()
	if len(others) == 0 {
		return false // nobody else to ask: two members, or the others gone already
	}
	reached := 1 // this member
	silent := map[string]net.Addr{}
	for name, ok := range m.answerAll(ml, others) {
		if ok {
			reached++
		} else {
			silent[name] = others[name]
		}
	}
	if 2*reached > len(known) || len(silent) == 0 {
		return false
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return false
	}
	for name, addr := range silent {
		m.unreachable[name] = addr
	}
	m.workers.Add(1) // under mu with closing false
	m.mu.Unlock()
	m.log.Warn("cut off: most of the other members do not answer a ping; counting them out until they answer", "failed", dead, "silent", slices.Sorted(maps.Keys(silent)), "reached", reached, "known", len(known))
	go func() {
		defer m.workers.Done()
		m.repingUnreachable(ctx, ml)
	}()
	return true
}

// repingUnreachable pings the unreachable members every ProbeInterval, all
// at once, and counts each back in (Alive) once it answers, until none is
// left or ctx ends.
func (m *Members) repingUnreachable(ctx context.Context, ml *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.Tuning.ProbeInterval):
		}
		m.mu.Lock()
		cut := maps.Clone(m.unreachable)
		m.mu.Unlock()
		if len(cut) == 0 {
			return
		}
		var back []string
		for name, ok := range m.answerAll(ml, cut) {
			if ok {
				back = append(back, name)
			}
		}
		if len(back) == 0 {
			continue
		}
		m.mu.Lock()
		for _, name := range back {
			delete(m.unreachable, name)
		}
		m.mu.Unlock()
		m.log.Info("reachable again", "members", back)
		m.notify()
	}
}

// verify pings a member memberlist reported dead until it fails to
// answer, memberlist reports it alive again, holdMax has passed, or ctx
// ends; then it drops the member from Alive unless memberlist revived it.
func (m *Members) verify(ctx context.Context, ml *memberlist.Memberlist, name string, h held) {
	start := time.Now()
	for i := 0; ; i++ {
		// A process that holds its gossip port but does not answer is
		// frozen or starved, not dead: kept, as an answering one is, for
		// at most holdMax (heartbeat.out).
		answered, frozen := m.probe(ml, name, h.addr)
		m.mu.Lock()
		// A heartbeat heard lately is an answer too, and a late one: a
		// member whose answers are delayed past ProbeTimeout is alive,
		// and one starved of CPU is given as long as the heartbeat
		// judge gives it (heardLatelyLocked).
		answered = answered || frozen || (m.heartbeatsOn() && m.heardLatelyLocked(name, time.Now()))
		cur, ok := m.held[name]
		if !ok || cur.gen != h.gen {
			m.mu.Unlock()
			return // alive again, or a newer death is being checked
		}
		if !answered || time.Since(start) >= holdMax {
			if !answered {
				// Before dropping it: is this member the one cut off?
				// Both changes then show in Alive at once.
				m.mu.Unlock()
				m.cutOff(ctx, ml, name)
				m.mu.Lock()
				if cur, ok := m.held[name]; !ok || cur.gen != h.gen {
					m.mu.Unlock()
					m.notify()
					return
				}
			}
			delete(m.held, name)
			m.ringChangedLocked()
			delete(m.beats, name)
			m.mu.Unlock()
			if answered {
				m.log.Warn("member answers pings but stays dead to the cluster; dropping it", "member", name, "after", time.Since(start).Round(time.Millisecond))
			} else {
				m.log.Info("member failed", "member", name, "addr", h.addr)
			}
			m.notify()
			return
		}
		m.mu.Unlock()
		if i == 0 {
			how := "answers"
			if frozen {
				how = "holds its gossip port (starved of CPU or frozen)"
			}
			m.log.Warn("member reported dead but "+how+"; keeping it", "member", name, "addr", h.addr)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.Tuning.ProbeInterval):
		}
	}
}

// answers pings name at addr and reports whether an ack came within
// ProbeTimeout. memberlist's Ping itself waits up to ProbeInterval for an
// ack; answers decides at ProbeTimeout and leaves the Ping to finish on
// its own, counted in m.workers (so Run waits for it). The caller must
// itself be counted in m.workers, which makes the Add safe.
func (m *Members) answers(ml *memberlist.Memberlist, name string, addr net.Addr) bool {
	done := make(chan error, 1)
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		_, err := ml.Ping(name, addr)
		done <- err
	}()
	t := time.NewTimer(m.opts.Tuning.ProbeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-t.C:
		return false
	}
}

// answerAll pings every member of addrs at once (answers) and reports
// which answered: one probe timeout in all, however many there are.
func (m *Members) answerAll(ml *memberlist.Memberlist, addrs map[string]net.Addr) map[string]bool {
	type result struct {
		name string
		ok   bool
	}
	results := make(chan result, len(addrs))
	for name, addr := range addrs {
		go func() { results <- result{name, m.answers(ml, name, addr)} }()
	}
	out := make(map[string]bool, len(addrs))
	for range addrs {
		r := <-results
		out[r.name] = r.ok
	}
	return out
}

// metaPrefix starts the metadata of a member that is not leaving, so that
// no Options.Meta can read as metaLeaving.
const metaPrefix = "m:"

// userMeta is the Options.Meta inside a member's published metadata.
func userMeta(meta string) string {
	if _, user, ok := parseRestart(meta); ok {
		return user
	}
	return strings.TrimPrefix(meta, metaPrefix)
}

// delegate publishes this member's metadata: metaLeaving once Leave has
// been called, restartMeta once Restart has, else metaPrefix and
// Options.Meta, and receives heartbeats. The other Delegate methods are
// unused.
type delegate struct{ m *Members }

func (d delegate) NodeMeta(limit int) []byte {
	if d.m.leaving.Load() {
		return []byte(metaLeaving)
	}
	if ms := d.m.restartUntil.Load(); ms != 0 {
		return []byte(restartMeta(time.UnixMilli(ms), d.m.opts.Meta))
	}
	return []byte(metaPrefix + d.m.opts.Meta)
}

// NotifyMsg receives the heartbeats (heartbeat.go) and suspicion reports
// (ring.go), in memberlist's packet handler.
func (d delegate) NotifyMsg(b []byte) {
	if name, stale, ok := parseHeartbeat(b); ok {
		d.m.heard(name, stale)
	} else if name, suspects, ok := parseSuspicions(b); ok {
		d.m.reported(name, suspects)
	}
}

func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}
