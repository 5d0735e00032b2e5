package election

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Restarting in place.
//
// A speaker stopped by a rolling update, or by someone deleting its pod,
// comes back on the same node seconds later, and its node goes on
// forwarding its addresses' traffic meanwhile: the data path is the
// node's kernel and kube-proxy, not the speaker. Handing its addresses
// over (Leave) moves each of them to another node, and every TCP
// connection that reached the address through this node's kube-proxy is
// reset, since the new node has no conntrack state for it. So a member
// that stops to restart says so instead (Restart): its metadata becomes
// "r:<until>:" and its Options.Meta, until being a moment by its clock,
// and it stops without a leave. The others, when it dies, keep it out of
// Alive (it answers nothing) but list it in Restarting until until, by
// their clocks: the speaker keeps it the owner of its addresses through
// that time, and it takes them up again when it is back. If it is not
// back by then, the others drop it and take its addresses over as after
// any failure. The others' clocks must agree with the restarting node's
// to well within the margin the speaker keeps (the speaker's
// restartMargin), as they must for the probation (the speaker's meta.go).
//
// A member still running that carries the restart metadata is alive like
// any other; only its death is read differently: it is not verified
// (verify.go), since the member is expected to be gone.
//
// Speakers of older versions do not know the prefix: to them the member
// has metadata they cannot fully read, and its death is an ordinary one.

// metaRestart starts the metadata of a member that is stopping to restart.
const metaRestart = "r:"

// restartMeta is the published metadata of a member restarting by until.
func restartMeta(until time.Time, meta string) string {
	return metaRestart + strconv.FormatInt(until.UnixMilli(), 10) + ":" + meta
}

// parseRestart reads metadata made by restartMeta: the moment and the
// Options.Meta.
func parseRestart(meta string) (until time.Time, user string, ok bool) {
	rest, ok := strings.CutPrefix(meta, metaRestart)
	if !ok {
		return time.Time{}, "", false
	}
	ms, user, ok := strings.Cut(rest, ":")
	if !ok {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.UnixMilli(n), user, true
}

// restartHold is a member that stopped to restart and that Restarting
// still lists.
type restartHold struct {
	until time.Time
	meta  string // its Options.Meta
	timer *time.Timer
}

// Its node must stay up meanwhile: the speaker keeps the addresses there,
// and if the node dies (or its link is cut) they must move within the
// failover bound, not when the hold runs out. memberlist cannot tell, as
// the member is gone from it; the node's kernel can: a TCP connection to
// the member's gossip port is refused by a node that is up (nothing
// listens while the speaker restarts) or accepted (it is back), and gets
// no answer from one that is down. So each restarting member's node is
// asked every ProbeInterval, and the hold ends after restartMisses
// unanswered attempts in a row, each given restartDialTimeout.
const (
	restartMisses      = 3
	restartDialTimeout = 150 * time.Millisecond
)

// nodeUp reports whether the host at addr answers a TCP connection
// attempt, with a connection or a refusal, within restartDialTimeout.
func nodeUp(ctx context.Context, addr netip.AddrPort) bool {
	d := net.Dialer{Timeout: restartDialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err == nil {
		c.Close()
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// watchRestart asks name's node whether it is up (nodeUp) every
// ProbeInterval while h holds its place, and ends the hold when it is
// not. The caller counts it in m.workers.
func (m *Members) watchRestart(ctx context.Context, name string, h *restartHold, addr netip.AddrPort) {
	misses := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.Tuning.ProbeInterval):
		}
		m.mu.Lock()
		current := m.restartHolds[name] == h
		m.mu.Unlock()
		if !current {
			return
		}
		if nodeUp(ctx, addr) {
			misses = 0
			continue
		}
		if misses++; misses < restartMisses {
			continue
		}
		m.mu.Lock()
		if m.restartHolds[name] != h {
			m.mu.Unlock()
			return
		}
		m.dropRestart(name)
		m.mu.Unlock()
		m.log.Warn("the node of a member restarting in place does not answer; its addresses go to others", "member", name, "addr", addr)
		m.notify()
		return
	}
}

// Restart announces that this member stops to restart in place and will
// be back, on the same node and under the same name, before until: the
// others keep it listed in Restarting until then, rather than treating
// its death as a failure. It waits up to timeout for the news to go out
// (a gossip round reaches every member within tens of milliseconds; the
// death that follows takes the failure detector some hundreds). Run,
// when its context ends, then stops without a leave. It fails when Run is
// not running, or after Leave.
func (m *Members) Restart(until time.Time, timeout time.Duration) error {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	ml, down := m.ml, m.down
	m.mu.Unlock()
	if ml == nil || down || m.leaving.Load() {
		return errors.New("election: restart: the membership is not running")
	}
	m.restartUntil.Store(until.UnixMilli())
	if err := ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("election: announce the restart: %w", err)
	}
	return nil
}

// restarting reports whether Restart was called.
func (m *Members) restarting() bool { return m.restartUntil.Load() != 0 }

// Restarting returns the sorted names of the members that stopped to
// restart (Restart) and whose time has not run out: not alive, and
// expected back. Meta reads their metadata as it was.
func (m *Members) Restarting() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil || m.down {
		return nil
	}
	now := time.Now()
	var out []string
	for name, h := range m.restartHolds {
		if h.until.After(now) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// holdRestart lists name, whose gossip address is addr, in Restarting
// until until, if that is still to come, while its node answers
// (watchRestart), and reports whether it did. Call it with mu held, Run
// running and not closing.
func (m *Members) holdRestart(name string, addr netip.AddrPort, until time.Time, meta string) bool {
	wait := time.Until(until)
	if wait <= 0 {
		return false
	}
	m.dropRestart(name)
	h := &restartHold{until: until, meta: meta}
	h.timer = time.AfterFunc(wait, func() {
		m.mu.Lock()
		if m.restartHolds[name] != h {
			m.mu.Unlock()
			return
		}
		delete(m.restartHolds, name)
		m.mu.Unlock()
		m.log.Warn("member did not come back from its restart in time; its addresses go to others", "member", name)
		m.notify()
	})
	m.restartHolds[name] = h
	ctx := m.runCtx
	m.workers.Add(1) // under mu with closing false: Run has not begun to Wait
	go func() {
		defer m.workers.Done()
		m.watchRestart(ctx, name, h, addr)
	}()
	return true
}

// dropRestart ends name's listing in Restarting. Call it with mu held.
func (m *Members) dropRestart(name string) bool {
	h, ok := m.restartHolds[name]
	if ok {
		h.timer.Stop()
		delete(m.restartHolds, name)
	}
	return ok
}
