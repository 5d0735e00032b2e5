package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// lastErrors remembers, per peer address, why its session is not
// established. GoBGP's API reports a session's state but not why a
// connection attempt failed, which is what an operator needs ("connection
// refused", a timeout from a TCP MD5 mismatch); GoBGP logs it, so the
// Speaker hands GoBGP a logger whose handler (errorTap) picks it out.
type lastErrors struct {
	mu sync.Mutex
	m  map[netip.Addr]string
}

func (e *lastErrors) set(a netip.Addr, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[netip.Addr]string{}
	}
	if msg == "" {
		delete(e.m, a)
		return
	}
	e.m[a] = msg
}

func (e *lastErrors) get(a netip.Addr) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[a]
}

// errorTap is a slog.Handler around the caller's handler. On GoBGP's
// per-peer loggers (made with With("Topic", "Peer", "Key", address)) it
// also reads debug records, for "failed to connect" and "state changed",
// and records them in errs. On its other loggers it also reads info
// records, for the hard resets GoBGP queues (see resetQueue), and adds their
// peers to resets, if set. Everything is passed on to next only at the
// levels next wants.
type errorTap struct {
	next   slog.Handler
	errs   *lastErrors
	resets *resetQueue // nil: not watched
	peer   netip.Addr  // valid on a per-peer logger
	// stopped, once set, drops GoBGP's error that BGP is not running,
	// which Stop logs after stopToRestart has stopped BGP already.
	stopped *atomic.Bool
}

func (h *errorTap) Enabled(ctx context.Context, l slog.Level) bool {
	return h.peer.IsValid() || h.resets != nil && l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *errorTap) Handle(ctx context.Context, r slog.Record) error {
	if h.stopped != nil && h.stopped.Load() && r.Message == "failed to stop BGP server" {
		return nil
	}
	if h.peer.IsValid() {
		h.observe(r)
	} else if h.resets != nil {
		h.observeReset(r)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// attr returns the value of r's attribute key, or "".
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// observeReset reads GoBGP's record of a hard ResetPeer, logged by its
// server goroutine just before it queues the Cease
// (BgpServer.sendNotification, pkg/server/server.go in GoBGP 4.8.0). The
// Speaker never resets a session hard itself, so this is GoBGP's BFD
// resetting one. It must not block: GoBGP's server goroutine runs it.
func (h *errorTap) observeReset(r slog.Record) {
	if r.Message != "Send operation notification" || attr(r, "Op") != "Neighbor reset" {
		return
	}
	if a, err := netip.ParseAddr(attr(r, "Key")); err == nil {
		h.resets.add(a)
	}
}

func (h *errorTap) observe(r slog.Record) {
	switch r.Message {
	case "failed to connect":
		h.errs.set(h.peer, attr(r, "Error"))
	case "state changed":
		switch {
		case attr(r, "new") == "BGP_FSM_ESTABLISHED":
			h.errs.set(h.peer, "")
		case attr(r, "old") == "BGP_FSM_ESTABLISHED" || attr(r, "old") == "BGP_FSM_OPENSENT" || attr(r, "old") == "BGP_FSM_OPENCONFIRM":
			if reason := attr(r, "reason"); reason != "" && !strings.HasPrefix(reason, "dying") {
				h.errs.set(h.peer, "session closed: "+reason)
			}
		}
	}
}

func (h *errorTap) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &errorTap{next: h.next.WithAttrs(attrs), errs: h.errs, resets: h.resets, peer: h.peer, stopped: h.stopped}
	var topic, key string
	for _, a := range attrs {
		switch a.Key {
		case "Topic":
			topic = a.Value.String()
		case "Key":
			key = a.Value.String()
		}
	}
	if topic == "Peer" {
		if a, err := netip.ParseAddr(key); err == nil {
			n.peer = a
		}
	}
	return n
}

func (h *errorTap) WithGroup(name string) slog.Handler {
	return &errorTap{next: h.next.WithGroup(name), errs: h.errs, resets: h.resets, peer: h.peer, stopped: h.stopped}
}
