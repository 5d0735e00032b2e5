package speaker

import (
	"context"
	"hash/maphash"
	"iter"
	"log/slog"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/config"
)

// passwordTTL is how long a BGP password read from a Secret is reused
// before it is read again: the speaker does not watch Secrets (it would
// need to read every Secret of the cluster).
const passwordTTL = 30 * time.Second

// bgpOptions are what newBGP needs.
type bgpOptions struct {
	Node string
	// Namespace holds this node's BGPSessionStates.
	Namespace string
	Logger    *slog.Logger
	Metrics   *metrics
	// Client writes the BGPSessionStates and reads them and the password
	// Secrets (the speaker caches neither).
	Client apiAccess
	// Run starts a function in the background until the speaker stops
	// (GoBGP and the session writer).
	Run func(func(context.Context))
	// RestartTime is the BGP graceful restart time (RFC 4724) the
	// speaker offers, Options.RestartHold; 0 offers none (see
	// restartTime).
	RestartTime time.Duration
}

// bgpAnnouncer is the BGP announcer: one embedded BGP speaker, started
// when a BGPPeer first selects this node, fed the sessions and routes of
// every turn. Every node that may announce an address announces it, so
// there is no election and no per-Service report: the session writer
// reports the sessions. Used by the sync loop only.
type bgpAnnouncer struct {
	node, ns string
	log      *slog.Logger
	metrics  *metrics
	c        apiAccess
	run      func(func(context.Context))

	speaker *bgp.Speaker // nil until a peer selects this node
	// routesFrom is what the routes last set were made of; seed keys its
	// digests.
	routesFrom  routeInput
	seed        maphash.Seed
	restartTime time.Duration
	routerID    netip.Addr
	passwords   map[types.NamespacedName]password
	problems    string // last reported, to log each change once
	// sessions writes the BGPSessionStates; nil until the first report.
	sessions *sessionWriter
}

type password struct {
	value string
	read  time.Time
}

// newBGP sets the BGP announcer up; it starts nothing.
func newBGP(o bgpOptions) *bgpAnnouncer {
	return &bgpAnnouncer{
		node: o.Node, ns: o.Namespace, log: o.Logger, metrics: o.Metrics,
		c: o.Client, run: o.Run,
		restartTime: restartTime(o.RestartTime),
		passwords:   map[types.NamespacedName]password{},
		seed:        maphash.MakeSeed(),
	}
}

// announce applies the turn to the BGP speaker: the sessions the BGPPeers
// selecting this node ask for, and a route for each address of a BGP
// pool this node may announce (announce.Round's BGP).
func (b *bgpAnnouncer) announce(ctx context.Context, t *turn) {
	cfg := t.view.Config
	if cfg == nil {
		return
	}
	node := t.view.Nodes[b.node]
	peers, problems := bgp.PeersFor(cfg, node.Labels, b.readPasswords(ctx, cfg))
	if b.speaker == nil {
		if len(peers) == 0 {
			return
		}
		id, errs := bgp.RouterIDFor(cfg, node.Labels, t.nodeIP)
		problems = append(problems, errs...)
		sp, err := bgp.New(bgp.Options{RouterID: id, Logger: b.log.With("component", "bgp"), RestartTime: b.restartTime})
		if err != nil {
			b.log.Error("cannot start BGP", "error", err)
			return
		}
		b.speaker, b.routerID = sp, id
		b.run(func(ctx context.Context) {
			if err := sp.Run(ctx); err != nil {
				b.log.Error("BGP stopped", "error", err)
			}
		})
		b.log.Info("BGP started", "routerID", id)
	}
	if msg := joinErrors(problems); msg != b.problems {
		if msg != "" {
			b.log.Warn("BGP configuration problems", "problems", msg)
		}
		b.problems = msg
	}
	if err := b.speaker.SetPeers(peers); err != nil {
		b.log.Error("set BGP peers", "error", err)
	}
	// Most turns change nothing this node announces over BGP (a member
	// came or went, a Layer 2 address moved): the routes are made again
	// only when what they are made of changed. With 10,000 Services,
	// making them took a third of a sync's memory, and a sync's peak is
	// the speaker's (test/bench/bgpscale).
	if in := b.routeInput(cfg, node.Labels, t.round); in != b.routesFrom {
		if err := b.speaker.SetRoutes(bgp.Routes(cfg, node.Labels, b.addresses(t.round))); err != nil {
			b.log.Error("set BGP routes", "error", err)
		} else {
			b.routesFrom = in
		}
	}
	b.metrics.observeBGP(b.speaker.Status())
}

// routeInput identifies what this node's routes are made of
// (bgp.Routes' arguments): the Config, which the speaker builds anew
// whenever a config object changes (configCache), and digests of the
// node's labels and of the addresses it announces by pool. The digests
// are sums of keyed 64-bit hashes, one per label or address, so that the
// order of the round's addresses does not matter; two different inputs
// have the same digests with a chance of 1 in 2^64.
type routeInput struct {
	cfg           *config.Config
	labels, addrs uint64
	n             int
}

// routeInput returns the routeInput of a turn.
func (b *bgpAnnouncer) routeInput(cfg *config.Config, labels map[string]string, r *announce.Round) routeInput {
	in := routeInput{cfg: cfg}
	var h maphash.Hash
	h.SetSeed(b.seed)
	for k, v := range labels {
		h.Reset()
		h.WriteString(k)
		h.WriteByte(0)
		h.WriteString(v)
		in.labels += h.Sum64()
	}
	for pool, addr := range b.addresses(r) {
		h.Reset()
		h.WriteString(pool)
		h.WriteByte(0)
		ip := addr.As16()
		h.Write(ip[:])
		h.WriteByte(byte(addr.BitLen()))
		in.addrs += h.Sum64()
		in.n++
	}
	return in
}

// addresses yields the Service addresses this node announces over BGP,
// each with its pool (see announce.Round.BGP for which).
func (b *bgpAnnouncer) addresses(r *announce.Round) iter.Seq2[string, netip.Addr] {
	return func(yield func(string, netip.Addr) bool) {
		for v := range r.BGP(b.node) {
			if !v.Refusal.Refused() && !yield(v.Pool, v.IP) {
				return
			}
		}
	}
}

// report hands the session writer (started on first use) what this turn
// learnt: whether there is a BGP speaker and, on the janitor, the
// cluster's nodes.
func (b *bgpAnnouncer) report(t *turn) {
	if t.view.Config == nil {
		return
	}
	if b.sessions == nil {
		b.sessions = newSessionWriter(sessionWriterOptions{
			Client: b.c, Namespace: b.ns, Node: b.node,
			Logger: b.log.With("component", "bgp-status"),
		})
		b.run(b.sessions.run)
	}
	var sessions func() []bgp.PeerStatus
	if b.speaker != nil {
		sessions = b.speaker.Status
	}
	var nodes map[string]bool
	if t.janitor == b.node {
		nodes = make(map[string]bool, len(t.view.Nodes))
		for name := range t.view.Nodes {
			nodes[name] = true
		}
	}
	b.sessions.set(sessions, nodes)
}

// handover does nothing: no node takes BGP routes over, every eligible
// node announces them already, and the routers drop this node's routes
// when its sessions close.
func (b *bgpAnnouncer) handover() int { return 0 }

// release does nothing: the routes go when the sessions close.
func (b *bgpAnnouncer) release() {}

// stopToRestart has the BGP speaker, when it stops, close its sessions as
// a restarting speaker (bgp.Speaker.PrepareRestart), instead of with a
// Cease: the routers keep this node's routes for the restart time, and
// the next speaker takes them up again. The speaker calls it when it
// stops to restart (restart.go), instead of handover and release.
func (b *bgpAnnouncer) stopToRestart() {
	if b.speaker != nil {
		b.speaker.PrepareRestart()
	}
}

// restartTime is the graceful restart time for a restart hold of hold: the
// same, so that the routers keep this node's routes exactly as long as the
// other speakers keep its Layer 2 addresses here, and a speaker that is not
// back by then is given up in both modes at once. A restarted speaker must
// have its sessions re-established within it: GoBGP connects at once, so
// the hold's 20 s leave the 2-4 s of a DaemonSet's pod replacement ample
// room. Whole seconds, rounded up, at most the 4095 s the capability can
// carry; 0 (no restart hold) offers no graceful restart, so every stop
// withdraws at once.
func restartTime(hold time.Duration) time.Duration {
	if hold <= 0 {
		return 0
	}
	return min((hold + time.Second - 1).Truncate(time.Second), 4095*time.Second)
}

// readPasswords reads the Secrets the BGPPeers name, reusing what was read
// less than passwordTTL ago. Secrets that cannot be read are left out, and
// bgp.PeersFor reports their peers.
func (b *bgpAnnouncer) readPasswords(ctx context.Context, cfg *config.Config) bgp.Passwords {
	out := bgp.Passwords{}
	for _, p := range cfg.BGPPeers {
		if p.PasswordSecret == nil {
			continue
		}
		name := *p.PasswordSecret
		pw, ok := b.passwords[name]
		if !ok || time.Since(pw.read) > passwordTTL {
			var sec corev1.Secret
			err := b.c.Get(ctx, name, &sec)
			switch {
			case err == nil:
				pw = password{value: string(sec.Data["password"]), read: time.Now()}
			case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
				b.log.Warn("cannot read the BGP password", "secret", name, "error", err)
				continue
			default:
				if !ok {
					continue
				}
			}
			b.passwords[name] = pw
		}
		out[name] = pw.value
	}
	return out
}

func joinErrors(errs []error) string {
	var s string
	for i, e := range errs {
		if i > 0 {
			s += "; "
		}
		s += e.Error()
	}
	return s
}
