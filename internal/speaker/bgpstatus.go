package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
)

// BGPSessionStates are read from the API server (get, list), not watched.
// +kubebuilder:rbac:groups=ironlb.io,resources=bgpsessionstates,verbs=get;list;create;update;delete,namespace=ironlb-system

const (
	// sessionCoalesce is the shortest time between two writes of one
	// BGPSessionState for changes that are not news (see needsWrite): a
	// prefix count climbing through a burst of Services costs one write
	// per this interval, not one per Service.
	sessionCoalesce = 2 * time.Second
	// sessionPollMin and sessionPollMax bound the time between two reads
	// of the sessions' state. GoBGP has no event for a session changing
	// state that we could wait on, so the writer polls; the read costs
	// GoBGP a pass over every route it exports (the prefix count), so the
	// interval grows with what one read takes (sessionPollShare).
	sessionPollMin   = time.Second
	sessionPollMax   = 30 * time.Second
	sessionPollShare = 20
	// sessionListRetry is how long the writer waits before listing again
	// after a failed list (the CRD not installed yet, say).
	sessionListRetry = 10 * time.Second
	// sessionCleanInterval is how often the janitor lists every
	// BGPSessionState even if no node went away, for objects written late
	// by the speaker of a node that was being deleted.
	sessionCleanInterval = 10 * time.Minute
	// sessionStopTimeout bounds the last write, when the speaker stops.
	sessionStopTimeout = 2 * time.Second
	// maxLastError is the API's limit on status.lastError.
	maxLastError = 1024
)

// sessionWriter keeps this node's BGPSessionState objects, one per BGP
// session, in step with the BGP speaker, in its own goroutine (run). It
// reads the sessions itself, since they change without a sync, and
// writes only what changed: a change of whether a session is Established,
// of its BFD state, or a reset, at once; anything else (prefix count,
// error text, the states a failing session cycles through) at most once
// per sessionCoalesce per object.
//
// The writer keeps its own record of what it wrote instead of watching
// BGPSessionStates (the speaker's cache does not hold them): on start it
// lists this node's objects once, through the API reader, adopts those
// of sessions that still exist and deletes the others. On the node the
// speakers agree on (see janitor), it also deletes the objects of
// nodes that no longer exist, listing them when the set of nodes changes.
type sessionWriter struct {
	c    apiAccess // writes, and uncached reads: the startup list and the janitor's
	ns   string
	node string
	log  *slog.Logger
	wake chan struct{}

	mu sync.Mutex
	// known turns true at the first sync that knew the config: until
	// then, no session is known to be gone.
	known bool
	// sessions reads the sessions' state; nil while there is no BGP
	// speaker (no session).
	sessions func() []bgp.PeerStatus
	// nodes are the cluster's nodes when this node is the janitor; nil
	// otherwise.
	nodes map[string]bool

	// Used by run's goroutine only.
	adopted   bool
	nextList  time.Time                            // no list before this (after a failure)
	have      map[string]*v1alpha1.BGPSessionState // by name: as last written or read
	wrote     map[string]time.Time                 // by name: when last written
	cleaned   map[string]bool                      // the nodes the janitor last cleaned up for
	cleanedAt time.Time
	warned    map[string]bool // kinds of error logged at Warn already
	poll      time.Duration   // the current polling interval
}

// sessionWriterOptions configures newSessionWriter.
type sessionWriterOptions struct {
	Client    apiAccess // writes BGPSessionStates, and lists them
	Namespace string
	Node      string
	Logger    *slog.Logger
}

func newSessionWriter(o sessionWriterOptions) *sessionWriter {
	return &sessionWriter{
		c: o.Client, ns: o.Namespace, node: o.Node, log: o.Logger,
		wake:  make(chan struct{}, 1),
		have:  map[string]*v1alpha1.BGPSessionState{},
		wrote: map[string]time.Time{},
		poll:  sessionPollMin,
	}
}

// set hands the writer what the latest sync knows: how to read the
// sessions (nil: no BGP speaker, so no session) and, on the janitor, the
// cluster's nodes (nil elsewhere). It wakes the writer only when that
// changed: a sync runs for every burst of API changes, and reading the
// sessions costs GoBGP a pass over its routes; session changes are seen
// at the next poll.
func (w *sessionWriter) set(sessions func() []bgp.PeerStatus, nodes map[string]bool) {
	w.mu.Lock()
	changed := !w.known || (sessions == nil) != (w.sessions == nil) || (nodes == nil) != (w.nodes == nil) || !maps.Equal(nodes, w.nodes)
	w.known, w.sessions, w.nodes = true, sessions, nodes
	w.mu.Unlock()
	if !changed {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until ctx ends, then marks this node's sessions Idle (the
// BGP speaker stops with ctx too), so they do not show Established until
// a new speaker on the node writes them again.
func (w *sessionWriter) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sessionStopTimeout)
			w.stop(sctx)
			cancel()
			return
		case <-w.wake:
		case <-t.C:
		}
		w.step(ctx)
		t.Reset(w.poll)
	}
}

// step reads the sessions and writes what changed.
func (w *sessionWriter) step(ctx context.Context) {
	now := time.Now()
	if !w.adopted && !w.adopt(ctx, now) {
		return
	}
	w.mu.Lock()
	known, sessions, nodes := w.known, w.sessions, w.nodes
	w.mu.Unlock()
	if !known {
		return
	}
	var peers []bgp.PeerStatus
	w.poll = sessionPollMax // nothing to poll: set wakes the writer
	if sessions != nil {
		start := time.Now()
		peers = sessions()
		w.poll = min(max(sessionPollMin, sessionPollShare*time.Since(start)), sessionPollMax)
	}
	want := map[string]bool{}
	for _, p := range peers {
		name := sessionName(w.node, p.Name)
		want[name] = true
		old := w.have[name]
		var oldStatus *v1alpha1.BGPSessionStateStatus
		if old != nil {
			oldStatus = &old.Status
		}
		st := sessionStatus(w.node, p, oldStatus, now)
		if old != nil && !needsWrite(&old.Status, &st, w.wrote[name], now) {
			continue
		}
		w.put(ctx, name, old, st, now)
	}
	for _, name := range slices.Sorted(maps.Keys(w.have)) {
		if !want[name] {
			w.delete(ctx, w.have[name])
		}
	}
	if nodes != nil && (!maps.Equal(nodes, w.cleaned) || now.Sub(w.cleanedAt) >= sessionCleanInterval) && !now.Before(w.nextList) {
		w.clean(ctx, nodes, now)
	}
}

// adopt lists this node's objects once, so that the first step updates
// them rather than creating them, and deletes those of sessions no
// longer there.
func (w *sessionWriter) adopt(ctx context.Context, now time.Time) bool {
	if now.Before(w.nextList) {
		return false
	}
	var list v1alpha1.BGPSessionStateList
	err := w.c.ListIn(ctx, &list, w.ns, map[string]string{v1alpha1.LabelNode: labelValue(w.node)})
	if err != nil {
		w.nextList = now.Add(sessionListRetry)
		w.warnOnce("list", "cannot list this node's BGPSessionStates; retrying", err)
		return false
	}
	for i := range list.Items {
		if o := &list.Items[i]; o.Status.Node == w.node {
			w.have[o.Name] = o
		}
	}
	w.adopted = true
	return true
}

// put creates or updates the object name. On a conflict (someone else
// changed it) or if it vanished, it reads it again, and the next step
// retries.
func (w *sessionWriter) put(ctx context.Context, name string, old *v1alpha1.BGPSessionState, st v1alpha1.BGPSessionStateStatus, now time.Time) {
	labels := map[string]string{v1alpha1.LabelNode: labelValue(st.Node), v1alpha1.LabelPeer: labelValue(st.Peer)}
	var err error
	o := old.DeepCopy()
	if o == nil {
		o = &v1alpha1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name, Labels: labels}, Status: st}
		err = w.c.Create(ctx, o)
	} else {
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		maps.Copy(o.Labels, labels)
		o.Status = st
		err = w.c.Update(ctx, o)
	}
	switch {
	case err == nil:
		w.have[name], w.wrote[name] = o, now
		w.log.Debug("wrote BGP session state", "name", name, "peer", st.Peer, "state", st.State, "prefixes", st.PrefixesSent)
	case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		w.reread(ctx, name)
	case ctx.Err() == nil:
		w.warnOnce("write", "cannot write a BGPSessionState; retrying", err, "name", name)
	}
}

// reread replaces the record of object name with what the API has.
func (w *sessionWriter) reread(ctx context.Context, name string) {
	var o v1alpha1.BGPSessionState
	switch err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: name}, &o); {
	case err == nil:
		w.have[name] = &o
		delete(w.wrote, name) // written by someone else: rewrite at once
	case apierrors.IsNotFound(err):
		delete(w.have, name)
	}
}

func (w *sessionWriter) delete(ctx context.Context, o *v1alpha1.BGPSessionState) {
	err := w.c.Delete(ctx, o, o.UID)
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		if ctx.Err() == nil {
			w.warnOnce("delete", "cannot delete a BGPSessionState; retrying", err, "name", o.Name)
		}
		return
	}
	delete(w.have, o.Name)
	delete(w.wrote, o.Name)
	w.log.Debug("deleted BGP session state", "name", o.Name, "peer", o.Status.Peer)
}

// clean deletes the objects of nodes not in nodes: the speakers of nodes
// that are gone cannot.
func (w *sessionWriter) clean(ctx context.Context, nodes map[string]bool, now time.Time) {
	var list v1alpha1.BGPSessionStateList
	if err := w.c.ListIn(ctx, &list, w.ns, nil); err != nil {
		w.nextList = now.Add(sessionListRetry)
		w.warnOnce("list", "cannot list BGPSessionStates; retrying", err)
		return
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.Status.Node == "" || nodes[o.Status.Node] {
			continue
		}
		err := w.c.Delete(ctx, o, o.UID)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			w.nextList = now.Add(sessionListRetry)
			w.warnOnce("delete", "cannot delete a BGPSessionState of a node that is gone; retrying", err, "name", o.Name)
			return
		}
		w.log.Info("deleted the BGP session state of a node that is gone", "name", o.Name, "gone", o.Status.Node)
	}
	w.cleaned, w.cleanedAt = nodes, now
}

// stop marks every session of this node Idle: the BGP speaker has
// stopped (or is stopping) with the speaker.
func (w *sessionWriter) stop(ctx context.Context) {
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(w.have)) {
		old := w.have[name]
		st := old.Status
		if st.State == v1alpha1.BGPStateIdle && st.PrefixesSent == 0 {
			continue
		}
		st.State, st.PrefixesSent, st.LastError = v1alpha1.BGPStateIdle, 0, "the speaker on "+w.node+" stopped"
		st.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
		if st.BFDState != "" {
			st.BFDState = v1alpha1.BFDStateDown
		}
		w.put(ctx, name, old, st, now)
	}
}

// warnOnce logs err at Warn the first time an error of this kind
// happens, and at Debug after that: a missing CRD or RBAC rule would
// otherwise log a warning every few seconds.
func (w *sessionWriter) warnOnce(kind, msg string, err error, args ...any) {
	if meta.IsNoMatchError(err) {
		msg += " (is the BGPSessionState CRD installed?)"
	}
	args = append(args, "error", err)
	if w.warned[kind] {
		w.log.Debug(msg, args...)
		return
	}
	if w.warned == nil {
		w.warned = map[string]bool{}
	}
	w.warned[kind] = true
	w.log.Warn(msg, args...)
}

// sessionStatus is the status of the session p of node, given the status
// last written (nil if none) and the time now.
func sessionStatus(node string, p bgp.PeerStatus, old *v1alpha1.BGPSessionStateStatus, now time.Time) v1alpha1.BGPSessionStateStatus {
	st := v1alpha1.BGPSessionStateStatus{
		Node:         node,
		Peer:         p.Name,
		PeerAddress:  p.Address.String(),
		State:        v1alpha1.BGPState(p.State),
		BFDState:     v1alpha1.BFDState(p.BFD),
		PrefixesSent: int32(min(max(p.PrefixesSent, 0), math.MaxInt32)),
		LastError:    truncateUTF8(p.LastError, maxLastError),
	}
	// Whole seconds: what the API keeps, so that a comparison with the
	// object read back holds.
	switch {
	case p.State == bgp.StateEstablished && !p.Since.IsZero():
		st.LastTransitionTime = metav1.NewTime(p.Since.Truncate(time.Second))
	case old != nil && old.State == st.State && !old.LastTransitionTime.IsZero():
		st.LastTransitionTime = old.LastTransitionTime
	default:
		st.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	}
	return st
}

// needsWrite reports whether want must be written over old, last
// written at last. News is written at once: the session became or
// stopped being Established, was reset (established anew), its BFD state
// or its peer changed. Anything else (the prefix count, the error text,
// the states a failing session goes through) waits until sessionCoalesce
// has passed since the last write, so that it costs at most one write
// per that interval.
func needsWrite(old, want *v1alpha1.BGPSessionStateStatus, last, now time.Time) bool {
	oldUp, wantUp := old.State == v1alpha1.BGPStateEstablished, want.State == v1alpha1.BGPStateEstablished
	switch {
	case sameSessionStatus(old, want):
		return false
	case oldUp != wantUp, old.BFDState != want.BFDState,
		old.Node != want.Node, old.Peer != want.Peer, old.PeerAddress != want.PeerAddress,
		wantUp && !old.LastTransitionTime.Equal(&want.LastTransitionTime):
		return true
	}
	return now.Sub(last) >= sessionCoalesce
}

func sameSessionStatus(a, b *v1alpha1.BGPSessionStateStatus) bool {
	return a.Node == b.Node && a.Peer == b.Peer && a.PeerAddress == b.PeerAddress && a.State == b.State &&
		a.BFDState == b.BFDState && a.PrefixesSent == b.PrefixesSent && a.LastError == b.LastError &&
		a.LastTransitionTime.Equal(&b.LastTransitionTime)
}

// sessionName is the name of the BGPSessionState of node's session with
// peer: both names, cleaned up into a DNS label, and a hash of the pair.
// The hash is always there, because "-" may be part of either name
// (node "a" with peer "b-c", node "a-b" with peer "c"), and it keeps the
// name unique when cleaning up or shortening changed it. The result is at
// most 63 characters.
func sessionName(node, peer string) string {
	return hashed(node+"-"+peer, node+"\x00"+peer)
}

// labelValue is v if it is a valid label value, else a cleaned-up,
// shortened v with a hash of v.
func labelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	return hashed(v, v)
}

// hashed is readable cleaned up into a DNS label of at most 54
// characters, "-", and 8 hex digits of the SHA-256 of key.
func hashed(readable, key string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(readable) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !ok {
			dash = b.Len() > 0
			continue
		}
		if dash {
			b.WriteByte('-')
			dash = false
		}
		b.WriteRune(r)
	}
	s := b.String()
	if len(s) > 54 {
		s = strings.TrimRight(s[:54], "-")
	}
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:4])
	if s == "" {
		return "session-" + h
	}
	return s + "-" + h
}

// truncateUTF8 shortens s to at most n bytes without splitting a
// character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
