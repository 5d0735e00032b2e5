package bgp

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

const (
	// bfdSettle is how long a session must have been established before
	// the speaker starts its BFD session (see gateBFD). FRR re-registers
	// its BFD session within milliseconds of its own Established.
	bfdSettle = time.Second
	// bfdResync bounds how long gateBFD goes without looking, should it
	// miss a session state change.
	bfdResync = 2 * time.Second
)

// gateBFD runs each peer's BFD session in GoBGP only while its BGP session
// has been established for bfdSettle, until ctx is done. Run runs it. Every
// peer is added to GoBGP without BFD; gateBFD turns BFD on with UpdatePeer,
// which GoBGP applies without resetting the session, and off again as soon
// as the session is no longer established.
//
// It works around FRR (8.4) and GoBGP (4.8.0) together making every session
// flap once, right after it first comes up. bgpd registers a neighbour's BFD
// session with bfdd when it is configured, with local address 0.0.0.0;
// when the BGP session is established it learns its local address, and
// bgp_peer_bfd_update_source deregisters that session and registers a new
// one with local address and interface. bfdd deletes the old session,
// sending the node a last Down (diagnostic 3, "neighbor signaled session
// down"; not AdminDown), and starts the new one with a new discriminator.
// If GoBGP's BFD was Up, it takes that Down for a failure (bfdPeer.rxPacket,
// pkg/server/bfd_peer.go:346-347, calling remoteDown, :405-413) and resets
// the BGP session. If it was still Init, it stays bound to the old session's
// discriminator: it drops the new session's Down (its Your Discriminator is
// zero and its My Discriminator is not the bound one, bfd_peer.go:320-323),
// bfdd drops GoBGP's packets ("no session found"), and GoBGP's detection
// time expires (expiry, :381-396), which resets the BGP session too. Either
// way the session flaps, GoBGP's BFD having started before the router's
// final BFD session existed.
//
// Started bfdSettle after the session is established, GoBGP's BFD only ever
// meets bfdd's final session, so there is nothing to flap. It costs no
// failure detection that BFD could have given: until then bfdd's session
// is Down (FRR's bgpd acts only on a BFD session that went from Up to
// Down), so neither side could have detected a failure by BFD before
// anyway; the hold timer covers those first seconds, as it does today. A
// session that is not established has no routes to withdraw; stopping its
// BFD also keeps GoBGP's BFD from failing while the session is down, which
// queues a reset for the next session (see resetQueue). A router restart
// re-opens the session, and gateBFD starts BFD bfdSettle after it, so the
// restarted bfdd's re-registration is over by then too. BIRD re-registers
// nothing; with it, BFD comes up bfdSettle later than before.
//
// GoBGP's peer state events wake it, and it recomputes from ListPeer what
// BFD each peer should have; apply wakes it after changing peers. It holds
// mu while it changes GoBGP, so it does not run during apply or
// replacePeer; those add peers without BFD, and gateBFD then sees BFD off.
func (s *Speaker) gateBFD(ctx context.Context, srv *server.BgpServer) {
	err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		// Runs on a goroutine of GoBGP's: it must not block.
		OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) { s.wakeBFD() },
	}, server.WatchPeer())
	if err != nil {
		s.log.Warn("watching BGP sessions; BFD may start late", "delay", bfdResync, "error", err)
	}
	g := &bfdGate{seen: map[netip.Addr]established{}, set: map[netip.Addr]BFD{}}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.bfdWake:
		case <-t.C:
		}
		t.Reset(s.syncBFD(ctx, g, time.Now()))
	}
}

// wakeBFD makes gateBFD look at the peers again. It never blocks.
func (s *Speaker) wakeBFD() {
	select {
	case s.bfdWake <- struct{}{}:
	default:
	}
}

// bfdGate is what gateBFD remembers between looks. Only its goroutine uses
// it.
type bfdGate struct {
	// By peer address, since when the established session is known to
	// be established.
	seen map[netip.Addr]established
	// By peer address, the BFD settings gateBFD last turned on; GoBGP's
	// own report of them has its defaults filled in.
	set map[netip.Addr]BFD
}

// established is one established session: GoBGP's Uptime (in seconds)
// tells sessions apart, at when gateBFD first saw it.
type established struct {
	uptime int64
	at     time.Time
}

// syncBFD turns each peer's BFD on or off in GoBGP as gateBFD's rule says,
// and returns when it should look again.
func (s *Speaker) syncBFD(ctx context.Context, g *bfdGate, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.srv
	if srv == nil {
		return bfdResync
	}
	byAddr := map[netip.Addr]*api.Peer{}
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil {
			byAddr[a] = p
		}
	})
	if err != nil {
		s.log.Warn("listing BGP peers for BFD", "error", err)
		return bfdResync
	}
	next := bfdResync
	live := map[netip.Addr]bool{}
	for _, name := range slices.Sorted(maps.Keys(s.havePeers)) {
		p := s.havePeers[name]
		ap := byAddr[p.Address]
		if ap == nil || ap.State == nil {
			continue
		}
		live[p.Address] = true
		on := ap.Bfd != nil && ap.Bfd.Enabled
		want := false
		if ap.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED {
			var up int64
			if ap.Timers != nil && ap.Timers.State != nil && ap.Timers.State.Uptime != nil {
				up = ap.Timers.State.Uptime.Seconds
			}
			e, ok := g.seen[p.Address]
			if !ok || e.uptime != up {
				e = established{uptime: up, at: now}
				g.seen[p.Address] = e
			}
			if wait := e.at.Add(bfdSettle).Sub(now); wait > 0 {
				next = min(next, wait)
			} else {
				want = p.BFD != nil
			}
		} else {
			delete(g.seen, p.Address)
		}
		if on == want && (!want || g.set[p.Address] == *p.BFD) {
			continue
		}
		conf := apiPeer(p, s.opts)
		if want {
			conf.Bfd = apiBFD(p.BFD)
		}
		if _, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: conf}); err != nil {
			s.log.Warn("changing BFD of BGP peer", "peer", name, "address", p.Address, "error", err)
			next = min(next, bfdSettle)
			continue
		}
		if want {
			g.set[p.Address] = *p.BFD
			s.log.Info("BGP peer BFD started", "peer", name, "address", p.Address)
		} else {
			delete(g.set, p.Address)
			s.log.Info("BGP peer BFD stopped", "peer", name, "address", p.Address, "established", ap.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED)
		}
	}
	for a := range g.seen {
		if !live[a] {
			delete(g.seen, a)
		}
	}
	for a := range g.set {
		if !live[a] {
			delete(g.set, a)
		}
	}
	return next
}
