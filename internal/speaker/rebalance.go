package speaker

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

// DefaultRebalanceInterval is Options.RebalanceInterval's default: at
// most one address moved by the rebalancing every 10 s (360 an hour), the
// first 30 s after the membership or a node last changed.
// After a failure of one of three nodes holding 300 addresses, its share
// (100) comes back to it within about 17 minutes of its return; no
// client notices any of the moves (handover.go), so there is no hurry,
// and a slow pace leaves the membership time to settle between moves.
const DefaultRebalanceInterval = 10 * time.Second

// settleIntervals is how many intervals the membership and the nodes must
// be unchanged before a move: a rolling update of the speakers changes
// the membership every few seconds, with pauses between nodes, and a move
// in such a pause would be a move during the update.
const settleIntervals = 3

// moveTimeout bounds a rebalancing move: one the new owner has not
// reported by then is given up (its address stays with the old owner,
// or goes where the rule says) and the next one waits an interval.
const moveTimeout = 10 * time.Second

// rebalancing is the sync loop's part of the rebalancing
// (announce.Rebalance). Every speaker computes the same move, but only
// the old owner of its address starts it, by publishing it in its
// metadata: the others act on it when they read it (View.Moves), so that
// a move starts once, where the address is, and the old owner's switch
// (handover.go) comes before the new owner's.
type rebalancing struct {
	// interval is the least time between two moves (settleIntervals of
	// them with the membership and the nodes unchanged before one); 0
	// turns rebalancing off.
	interval time.Duration
	// move is this node's move under way, zero IP if none, since
	// started; published once this node answers for its address in the
	// new owner's name (the turn after it started), so that the new
	// owner, who waits for that, never answers while this node still
	// answers with its own MAC.
	move      announce.Move
	started   time.Time
	published bool
	// members are the alive members at the last turn, and steady since
	// when they are; quiet is since when no move is under way anywhere
	// (zero while one is).
	members string
	steady  time.Time
	quiet   time.Time
}

// rebalance starts, follows and ends this node's rebalancing moves, after
// a turn's announce: ds are that turn's Layer 2 decisions. It returns when
// a sync is next due for it (zero: none).
func (s *Speaker) rebalance(t *turn, ds map[netip.Addr]*announce.Decision, now time.Time) time.Time {
	b := &s.balance
	if b.interval <= 0 || s.members == nil {
		return time.Time{}
	}
	if m := b.move; m.IP.IsValid() && !b.published {
		// This turn's view had the move (View.Moves): this node now
		// answers in the new owner's name. Tell the others.
		b.published = true
		s.publishMeta()
		return b.started.Add(moveTimeout)
	}
	if m := b.move; m.IP.IsValid() {
		d := ds[m.IP]
		switch {
		case t.view.Current[m.IP] == m.To:
			s.log.Info("rebalanced", "ip", m.IP, "to", m.To)
		case d == nil || d.From != m.From || d.Owner != m.To:
			s.log.Info("rebalancing move given up: the rule no longer allows it", "ip", m.IP, "to", m.To)
		case now.Sub(b.started) >= moveTimeout:
			s.log.Warn("rebalancing move given up: the new owner did not report it", "ip", m.IP, "to", m.To, "after", moveTimeout)
		default:
			return b.started.Add(moveTimeout)
		}
		b.move, b.quiet = announce.Move{}, now
		s.publishMeta()
		return now.Add(b.interval)
	}
	if key := membersKey(t.view); key != b.members {
		b.members, b.steady = key, now
	}
	busy := len(t.view.Moves) > 0 || len(t.view.New) > 0 || len(t.view.Restarting) > 0 ||
		!t.answer || t.degraded || t.confirmedOnly || handingOver(ds)
	if busy {
		b.quiet = time.Time{}
		return time.Time{}
	}
	if b.quiet.IsZero() {
		b.quiet = now
	}
	if due := later(b.steady.Add(settleIntervals*b.interval), b.quiet.Add(b.interval)); now.Before(due) {
		return due
	}
	m, ok := announce.Rebalance(ds)
	if !ok || m.From != s.opts.NodeName {
		return time.Time{}
	}
	b.move, b.started, b.published = m, now, false
	s.log.Info("rebalancing: handing an address over", "ip", m.IP, "to", m.To)
	s.metrics.rebalanced.Inc()
	return now // act on it at once (View.Moves has it), then publish it
}

// told is the move this node tells the others of: its move under
// way once published, else none.
func (b *rebalancing) told() announce.Move {
	if !b.published {
		return announce.Move{}
	}
	return b.move
}

// handingOver reports whether a planned handover is under way in ds.
func handingOver(ds map[netip.Addr]*announce.Decision) bool {
	for _, d := range ds {
		if d.From != "" {
			return true
		}
	}
	return false
}

// membersKey names the membership as v sees it, and each node's
// readiness, exclusion, drain and data path, to tell when they change: a
// node uncordoned, or whose kube-proxy is healthy again, like one that
// joins, waits an interval before the first address comes to it.
func membersKey(v announce.View) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(v.Nodes)) {
		n := v.Nodes[name]
		fmt.Fprintf(&b, "%s:%t%t%t%t%t,", name, v.Alive[name], n.Ready, n.Excluded, n.Draining, v.DataPathDown[name])
	}
	return b.String()
}

// later is the later of two moments.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
