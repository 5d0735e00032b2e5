package speaker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/kube"
)

// Restarting in place.
//
// A speaker stopped by a rolling update (or a deleted pod) is back on the
// same node seconds later, and its node forwards its addresses' traffic
// all along: the data path is the kernel and kube-proxy. Handing the
// addresses over would move each of them, and a move resets every TCP
// connection through it (the new node's kube-proxy has no conntrack
// state for it): a rollout of n nodes would cut every long-lived
// connection through ironlb at least once. So a speaker told to stop on
// a Ready node stops to restart instead (election.Members.Restart):
//
//   - it writes, on its Lease, until when it will be back (now +
//     Options.RestartHold) and when it joined (restartAnnotation);
//   - it tells the others through the membership, and stops without a
//     leave, still answering for HandoverGrace, until the others know;
//   - the others keep it the owner of the addresses it announces
//     (announce.View.Restarting), and the node the election would pick
//     without it answers ARP and NDP for them naming its MACs
//     (announce.Decision.Proxy): new clients resolve to the node that
//     forwards, and nothing moves;
//   - the new speaker reads the Lease; if it is up by until minus
//     restartMargin, it publishes the old join time, so it is not a new
//     member on probation (meta.go) and takes its addresses up again at
//     once. Later, it starts as any new speaker, and the others have
//     taken its addresses over when until passed.
//
// What this costs: if the node itself dies while its speaker restarts,
// its addresses move only when the hold runs out (or when the node goes
// NotReady), not within the failover bound. A speaker stopping while its
// node is not Ready, cut off from the others' majority, in degraded mode,
// or with RestartHold 0, hands its addresses over as before.

// DefaultRestartHold is Options.RestartHold's default: long enough for a
// DaemonSet to replace a speaker whose image is on the node (2-4 s in
// the lab) or pulled from a nearby registry.
const DefaultRestartHold = 20 * time.Second

// restartMargin is how long before its hold runs out a restarting speaker
// must be back to take its place up again: more than the nodes' clocks
// may disagree by, plus a join.
const restartMargin = 3 * time.Second

// restartAnnotation, on a speaker's Lease, is "<until>,<joined>" in Unix
// milliseconds: written by a speaker stopping to restart, read and
// cleared by the next one.
const restartAnnotation = "ironlb.io/restart"

// restartNote is what a stopping speaker leaves its successor.
type restartNote struct {
	until, joined time.Time
}

// encode is the annotation's value.
func (n restartNote) encode() string {
	return strconv.FormatInt(n.until.UnixMilli(), 10) + "," + strconv.FormatInt(n.joined.UnixMilli(), 10)
}

// parseRestartNote reads an annotation made by encode.
func parseRestartNote(s string) (restartNote, bool) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return restartNote{}, false
	}
	until, err1 := strconv.ParseInt(a, 10, 64)
	joined, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || joined <= 0 || until <= joined {
		return restartNote{}, false
	}
	return restartNote{until: time.UnixMilli(until), joined: time.UnixMilli(joined)}, true
}

// resumedJoin is the join time a speaker whose membership starts at now
// publishes: its predecessor's, if it left a note and the hold has
// restartMargin left, else now.
func resumedJoin(note restartNote, now time.Time) (time.Time, bool) {
	if note.until.IsZero() || !now.Before(note.until.Add(-restartMargin)) {
		return now, false
	}
	return note.joined, true
}

// readRestartNote reads, from the speakers' Leases, the note this node's
// previous speaker left, if any.
func (s *Speaker) readRestartNote(leases []coordinationv1.Lease) {
	for _, l := range leases {
		if l.Name != leaseName(s.opts.NodeName) {
			continue
		}
		if v, ok := l.Annotations[restartAnnotation]; ok {
			if note, ok := parseRestartNote(v); ok {
				s.resume = note
				s.log.Info("the previous speaker on this node stopped to restart", "back by", note.until)
			}
		}
	}
}

// mayRestart reports whether this speaker, stopping, may keep its place
// for a restart: its node is Ready and not excluded, and it took part in
// the election as one of a majority, not degraded.
func (s *Speaker) mayRestart(ctx context.Context) (bool, string) {
	switch {
	case s.opts.RestartHold <= 0:
		return false, "--restart-hold is 0"
	case s.members == nil:
		return false, "running without membership"
	case s.degraded.active:
		return false, "in degraded mode"
	case !s.standing.settled || !s.standing.majority:
		return false, "not one of a majority of the speakers"
	}
	var n corev1.Node
	if err := s.cache.Get(ctx, types.NamespacedName{Name: s.opts.NodeName}, &n); err != nil {
		return false, fmt.Sprintf("cannot read this node: %v", err)
	}
	if !kube.NodeReady(&n) || kube.Excluded(n.Labels) {
		return false, "this node is not Ready, or is excluded from load balancers"
	}
	return true, ""
}

// writeRestartNote records note on this speaker's Lease.
func (s *Speaker) writeRestartNote(ctx context.Context, note restartNote) error {
	key := types.NamespacedName{Namespace: s.opts.Namespace, Name: leaseName(s.opts.NodeName)}
	var err error
	for range 3 { // a renewal in flight may conflict once
		var l coordinationv1.Lease
		if err = s.kc.Get(ctx, key, &l); err != nil {
			return err
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[restartAnnotation] = note.encode()
		if err = s.kc.Update(ctx, &l); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

// stopToRestart is the planned stop that keeps this node's place (see
// above). It reports false, having changed nothing the others see, when
// the speaker must hand its addresses over instead.
func (s *Speaker) stopToRestart(ctx context.Context) bool {
	if ok, why := s.mayRestart(ctx); !ok {
		s.log.Info("handing this node's addresses over rather than keeping them through a restart", "why", why)
		return false
	}
	note := restartNote{until: time.Now().Add(s.opts.RestartHold), joined: s.joined}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := s.writeRestartNote(wctx, note)
	cancel()
	if err != nil {
		s.log.Warn("could not leave the next speaker a note on this speaker's Lease; handing this node's addresses over", "error", err)
		return false
	}
	if err := s.members.Restart(note.until, time.Second); err != nil {
		s.log.Warn("could not tell the others of the restart; handing this node's addresses over", "error", err)
		return false
	}
	s.log.Info("stopping to restart: the others keep this node's addresses here, answering for them in its name, until its next speaker is back",
		"addresses", len(s.l2.owned), "back by", note.until)
	return true
}
