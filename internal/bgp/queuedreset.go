package bgp

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// resetQueue holds the peers for which GoBGP has queued a hard reset, until
// the Speaker replaces them (clearQueuedResets). It works around a GoBGP
// 4.8.0 bug that otherwise resets a session for ever, each time it comes up.
//
// When a peer's BFD session fails, GoBGP's BFD resets the BGP session
// whatever state it is in: bfdPeer.expiry (detection time passed) and
// bfdPeer.remoteDown (the router sent Down or AdminDown) call
// bfdPeer.resetPeer (pkg/server/bfd_peer.go:381-396, 405-413, 415-427),
// which calls BgpServer.ResetPeer with Soft false (server.go:3997-4025).
// That queues a Cease (Administrative Reset, "BFD is down") by
// sendNotification (server.go:3972-3986) and peer.sendNotification
// (peer.go:601-603) into the FSM's notification channel, one slot, with a
// non-blocking send (fsm.go:426, 574; util.go:42-51). Only the Established
// state reads that channel (fsm.go:2046). The channel belongs to the peer's
// FSM, which lives as long as the peer is configured, across sessions. So
// if BFD fails while the session is already down (the router closed it
// and then stopped BFD, as BIRD does on "disable", or any router that
// restarts its BGP), the Cease waits, and the next session sends it the
// moment it is established: the router sees a reset right after every
// OPEN exchange, its BFD session goes down with the session, GoBGP's BFD
// fails again while BGP is down, and queues the next Cease. The session
// never stays up (TestBFDDownWhileSessionDown; in the field, a flap every
// 50 s for ten minutes).
//
// Nothing but deleting the peer empties the channel, so the Speaker deletes
// and re-adds every peer GoBGP queues a hard reset for. It does so for
// every such reset, not only those queued while the session was down: the
// Speaker never resets a session hard itself, so each one is GoBGP's BFD
// ending the session, and replacing the peer ends nothing that the Cease
// would not have ended. Telling the two cases apart is not reliable from
// outside: the FSM leaves Established in its own goroutine, so a session
// can read as Established when it has already stopped reading the channel
// (and the Cease is stale), or as Idle when it read the Cease a moment ago.
//
// It learns of the resets from GoBGP's log, through errorTap:
// sendNotification logs "Send operation notification", Op "Neighbor
// reset", Key the address, on GoBGP's server goroutine, once per reset,
// just before it queues the Cease. Neither alternative sees every reset:
// GoBGP's WatchEvent reports BGP state changes but not BFD ones, nor a
// queued reset; and polling the BFD state (ListPeer) misses a failure
// that is over within a poll interval (BIRD brings BFD back up with the
// next TCP connection, well within a second), and could not tell a queued
// Cease from a consumed one anyway. The Speaker acts through DeletePeer,
// a management operation that GoBGP's server goroutine runs only after
// the ResetPeer that was being logged has queued its Cease, so the Cease
// goes with the deleted peer. A reset that GoBGP's BFD queues for the new
// peer (its old BFD session was still stopping) is logged too, and
// replaces that peer in turn.
//
// resetQueue's methods are safe for concurrent use; add never blocks.
type resetQueue struct {
	mu    sync.Mutex
	addrs map[netip.Addr]bool
	wake  chan struct{} // one slot: something was added since the last take
}

func newResetQueue() *resetQueue {
	return &resetQueue{addrs: map[netip.Addr]bool{}, wake: make(chan struct{}, 1)}
}

// add records that GoBGP queued a hard reset for the peer at a. GoBGP's
// server goroutine calls it, so it must not block.
func (q *resetQueue) add(a netip.Addr) {
	q.mu.Lock()
	q.addrs[a] = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the recorded addresses, sorted, and forgets them.
func (q *resetQueue) take() []netip.Addr {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]netip.Addr, 0, len(q.addrs))
	for a := range q.addrs {
		out = append(out, a)
	}
	clear(q.addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// pastSession is what Status still reports of the GoBGP peers that
// replacePeer deleted for one session.
type pastSession struct {
	drops int       // their drop counts, summed
	since time.Time // when the last of them was established; zero if never
}

// clearQueuedResets replaces every peer that GoBGP queues a hard reset for
// (see resetQueue), until ctx is done. Run runs it.
func (s *Speaker) clearQueuedResets(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.resets.wake:
		}
		for _, a := range s.resets.take() {
			s.replacePeer(a)
		}
	}
}

// replacePeer deletes the session with the router at a from GoBGP and adds
// it again, unchanged, so that no Cease queued for the old one reaches the
// new one. The export policy objects are keyed by the address and stay, as
// when apply re-opens a session. It holds mu, so it does not run during
// apply; a peer that apply has removed meanwhile took its Cease with it.
func (s *Speaker) replacePeer(a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.srv
	if srv == nil {
		return
	}
	var name string
	for n, p := range s.havePeers {
		if p.Address == a {
			name = n
			break
		}
	}
	if name == "" {
		return
	}
	p := s.havePeers[name]
	ctx := context.Background()
	past := s.past[name]
	err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: a.String()}, func(ap *api.Peer) {
		if ap.State != nil {
			past.drops += int(ap.State.Flops)
			if ap.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED {
				past.drops++ // the Cease or the deletion ends it now
			}
		}
		if ap.Timers != nil && ap.Timers.State != nil && ap.Timers.State.Uptime != nil {
			if t := ap.Timers.State.Uptime.AsTime(); t.Unix() > 0 {
				past.since = t
			}
		}
	})
	if err != nil {
		s.log.Warn("reading BGP peer before re-adding it", "peer", name, "address", a, "error", err)
	}
	if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
		s.log.Error("deleting BGP peer to drop a queued BFD reset", "peer", name, "address", a, "error", err)
		return
	}
	s.past[name] = past
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, s.opts)}); err != nil {
		// The next apply adds it, as a new session.
		delete(s.havePeers, name)
		delete(s.past, name)
		s.log.Error("re-adding BGP peer after a BFD reset", "peer", name, "address", a, "error", err)
		return
	}
	s.log.Info("BGP peer re-added after a BFD reset, to drop the reset GoBGP queued for its next session", "peer", name, "address", a)
}
