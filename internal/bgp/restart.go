package bgp

import (
	"context"
	"fmt"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Graceful restart (RFC 4724).
//
// A speaker restarted in place (a rolling update, a deleted pod) is back
// on its node seconds later, and the node forwards its routes' traffic
// all along: the data path is the kernel and kube-proxy, not the speaker.
// Withdrawing the node's routes for those seconds would move every flow
// through it to another node, resetting each TCP connection (the other
// node's kube-proxy has no conntrack state for it). So, with
// Options.RestartTime set:
//
//   - every session carries the graceful restart capability, restart time
//     Options.RestartTime, for its address family; a router that supports
//     it as a helper (FRR's default; BIRD's default "graceful restart
//     aware") answers with its own;
//   - a Run stopped after PrepareRestart closes its sessions without a
//     NOTIFICATION (GoBGP's StopBgp with AllowGracefulRestart), which a
//     helper takes for a restart: it keeps the routes, marked stale, for
//     the restart time, and forwards along them;
//   - the next speaker, within RestartTime of its start (restarted),
//     opens its sessions with the Restart State and Forwarding State bits
//     set, defers its routes until it has each router's End-of-RIB (or
//     restartDeferral has passed), then sends them and its own End-of-RIB;
//     the router then drops the stale routes it was not sent again;
//   - if no speaker is back within the restart time, the router drops the
//     stale routes when it runs out.
//
// Every other stop sends a Cease, as without graceful restart, and the
// routers withdraw at once: RFC 4724 ends graceful restart on a
// NOTIFICATION (the speaker does not offer RFC 8538's N bit).
//
// BFD. A node that dies is still found by BFD: its TCP connection never
// closes, the router's BFD session fails, and both routers then end the
// session as a failure and withdraw at once, graceful restart or not
// (TestGracefulRestart: 0.3-0.4 s at 100 ms x 3). A speaker stopping to
// restart also ends its BFD sessions (GoBGP stops sending; it has no
// AdminDown), so the router sees BFD fail too, a detection time after the
// graceful close; the speaker sends no AdminDown (RFC 5880 6.8.16), as
// neither router would read it differently, so what each router does is
// what a helper does with BFD failing during a restart:
//
//   - FRR 8.4 keeps the stale routes: the session closed gracefully first,
//     and bgpd acts on a BFD failure by stopping the session, which is
//     already down. It must not be given "bfd check-control-plane-failure"
//     for these neighbours: with GoBGP's BFD sending the C bit clear, bgpd
//     would then ignore every BFD failure of a graceful-restart-capable
//     session, and a dead node's routes would stay until the hold time and
//     then, stale, for the restart time.
//   - BIRD 2.0.12 withdraws them: on its "bfd on", a BFD session going
//     from Up to Down stops the protocol, stale routes and all, also while
//     it keeps them for a restart (bgp_bfd_notify), and a neighbour's
//     AdminDown is such a Down (bfd_session_process_ctl). An AdminDown
//     would change nothing. "bfd graceful" keeps them, but it turns a dead
//     node into a restart too. So with BIRD, graceful restart keeps the
//     routes of sessions without BFD, and a session with BFD loses them
//     after the detection time (TestGracefulRestartBIRDBFD), as it would
//     without graceful restart.

// maxRestartTime is the largest restart time the capability carries (a
// 12-bit count of seconds).
const maxRestartTime = 4095 * time.Second

// restartDeferral is how long a restarted speaker defers its routes on a
// session while it waits for End-of-RIB from every router (RFC 4724
// section 4.1, "Selection_Deferral_Timer"): the routers send theirs at
// once, so this only bounds the wait when a router is down. Meanwhile the
// routers still forward along the stale routes.
const restartDeferral = 5 * time.Second

func checkRestartTime(d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < time.Second || d > maxRestartTime || d%time.Second != 0:
		return fmt.Errorf("bgp: restart time %v is not a whole number of seconds from 1 to %v", d, maxRestartTime)
	}
	return nil
}

// gracefulRestart adds the graceful restart capability with restart time
// t to ap, if t is not 0: for ap's one address family, with no long-lived
// graceful restart and no N bit. The Restart State bit is session state,
// not configuration (newPeer sets it), so that changing BFD (gateBFD's
// UpdatePeer) never differs from this and re-opens the session.
func gracefulRestart(ap *api.Peer, t time.Duration) {
	if t == 0 {
		return
	}
	ap.GracefulRestart = &api.GracefulRestart{
		Enabled:      true,
		RestartTime:  uint32(t / time.Second),
		DeferralTime: uint32(restartDeferral / time.Second),
	}
	for _, af := range ap.AfiSafis {
		af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
}

// newPeer is p as GoBGP's configuration of a session the speaker opens:
// apiPeer, with the Restart State set if the speaker may be the restart of
// a previous one (restarted). Called with mu held.
func (s *Speaker) newPeer(p Peer) *api.Peer {
	ap := apiPeer(p, s.opts)
	if ap.GracefulRestart != nil && s.restarted(time.Now()) {
		ap.GracefulRestart.LocalRestarting = true
	}
	return ap
}

// restarted reports whether a session opened at now may find this node's
// routes kept stale by a router for the speaker that ran before: only
// within the restart time of this Run's start, since the previous speaker
// stopped before it. Set, the speaker opens the session as a restarting
// speaker: with the Forwarding State bit, without which RFC 4724 section
// 4.2 has the router drop the stale routes at once, before the new
// UPDATEs arrive. On a first start it costs the wait for the routers'
// End-of-RIB, milliseconds, before the routes go out. Called with mu
// held.
func (s *Speaker) restarted(now time.Time) bool {
	return s.opts.RestartTime > 0 && now.Sub(s.since) < s.opts.RestartTime
}

// PrepareRestart makes Run, when its ctx is done, stop as a speaker that
// restarts: it closes its sessions without a NOTIFICATION, so that the
// routers keep its routes for Options.RestartTime (see restart.go). It
// does nothing without a restart time, and Run then withdraws as always.
// It is safe to call at any time, before Run's ctx is done.
func (s *Speaker) PrepareRestart() {
	s.restart.Store(true)
}

// stop stops GoBGP at the end of Run: with a Cease on every session, or,
// after PrepareRestart, as a restarting speaker (stopToRestart).
func (s *Speaker) stop(srv *server.BgpServer) {
	if s.opts.RestartTime > 0 && s.restart.Load() {
		s.stopToRestart(srv)
	}
	srv.Stop()
}

// stopToRestart closes every session without a NOTIFICATION: GoBGP's
// StopBgp with AllowGracefulRestart sends one only to the routers that did
// not negotiate graceful restart, which then withdraw as after any stop.
// StopBgp also ends the BFD sessions, silently. Run's srv.Stop then finds
// BGP stopped (errorTap drops the error it logs) and stops the BFD server.
func (s *Speaker) stopToRestart(srv *server.BgpServer) {
	s.log.Info("BGP speaker stopping to restart: the routers keep its routes", "restartTime", s.opts.RestartTime)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		s.log.Warn("stopping BGP for a restart", "error", err)
	}
	s.stopped.Store(true)
}
