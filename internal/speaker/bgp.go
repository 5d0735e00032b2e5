package speaker

import (
	"context"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// passwordTTL is how long a BGP password read from a Secret is reused
// before it is read again: the speaker does not watch Secrets (it would
// need to read every Secret of the cluster).
const passwordTTL = 30 * time.Second

// bgpMode is the speaker's BGP half: one embedded BGP speaker, started
// when a BGPPeer first selects this node, fed the sessions and routes of
// every sync.
type bgpMode struct {
	s *Speaker

	mu        sync.Mutex
	speaker   *bgp.Speaker // nil until a peer selects this node
	routerID  netip.Addr
	passwords map[types.NamespacedName]password
	problems  string // last reported, to log each change once
	// sessions writes the BGPSessionStates; nil until the first sync
	// that can start it.
	sessions *sessionWriter
}

type password struct {
	value string
	read  time.Time
}

// sync applies cfg to the BGP speaker: the sessions the BGPPeers selecting
// this node ask for, and a route for each address of a BGP pool this node
// may announce.
func (b *bgpMode) sync(ctx context.Context, run func(func(context.Context)), v View, node Node, nodeIP netip.Addr) {
	cfg := v.Config
	if cfg == nil {
		return
	}
	peers, problems := bgp.PeersFor(cfg, node.Labels, b.readPasswords(ctx, cfg))
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.reportSessions(run, v)
	if b.speaker == nil {
		if len(peers) == 0 {
			return
		}
		id, errs := bgp.RouterIDFor(cfg, node.Labels, nodeIP)
		problems = append(problems, errs...)
		sp, err := bgp.New(bgp.Options{RouterID: id, Logger: b.s.log.With("component", "bgp")})
		if err != nil {
			b.s.log.Error("cannot start BGP", "error", err)
			return
		}
		b.speaker, b.routerID = sp, id
		run(func(ctx context.Context) {
			if err := sp.Run(ctx); err != nil {
				b.s.log.Error("BGP stopped", "error", err)
			}
		})
		b.s.log.Info("BGP started", "routerID", id)
	}
	if msg := joinErrors(problems); msg != b.problems {
		if msg != "" {
			b.s.log.Warn("BGP configuration problems", "problems", msg)
		}
		b.problems = msg
	}
	if err := b.speaker.SetPeers(peers); err != nil {
		b.s.log.Error("set BGP peers", "error", err)
	}
	if err := b.speaker.SetRoutes(bgp.RoutesFor(cfg, node.Labels, b.addresses(v, node))); err != nil {
		b.s.log.Error("set BGP routes", "error", err)
	}
	b.s.metrics.observeBGP(b.speaker.Status())
}

// reportSessions hands the session writer (started on first use) what this
// sync learnt: whether there is a BGP speaker and, on the node that cleans
// up after others, the cluster's nodes. It is called with mu held.
func (b *bgpMode) reportSessions(run func(func(context.Context)), v View) {
	if run == nil {
		return
	}
	if b.sessions == nil {
		b.sessions = newSessionWriter(sessionWriterOptions{
			Client: b.s.c, APIReader: b.s.mgr.GetAPIReader(),
			Namespace: b.s.opts.Namespace, Node: b.s.opts.NodeName,
			Logger: b.s.log.With("component", "bgp-status"),
		})
		run(b.sessions.run)
	}
	var sessions func() []bgp.PeerStatus
	if b.speaker != nil {
		sessions = b.speaker.Status
	}
	var nodes map[string]bool
	if janitor(v) == b.s.opts.NodeName {
		nodes = make(map[string]bool, len(v.Nodes))
		for name := range v.Nodes {
			nodes[name] = true
		}
	}
	b.sessions.set(sessions, nodes)
}

// addresses are the Service addresses this node announces over BGP, by
// pool: none when the node is not Ready or is excluded from load
// balancers; with externalTrafficPolicy: Local only those of Services with
// a ready endpoint here, since traffic for them is not forwarded to other
// nodes.
func (b *bgpMode) addresses(v View, node Node) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	if !node.Ready {
		return out
	}
	if kube.Excluded(node.Labels) {
		return out
	}
	seen := map[netip.Addr]bool{} // shared addresses are announced once
	for _, svc := range v.Services {
		if svc.Local && !svc.EndpointNodes[node.Name] {
			continue
		}
		for _, ip := range svc.IPs {
			if seen[ip] {
				continue
			}
			if p := v.Config.PoolFor(ip); p != nil && len(v.Config.BGPFor(p.Name)) > 0 {
				out[p.Name] = append(out[p.Name], ip)
				seen[ip] = true
			}
		}
	}
	return out
}

// readPasswords reads the Secrets the BGPPeers name, reusing what was read
// less than passwordTTL ago. Secrets that cannot be read are left out, and
// bgp.PeersFor reports their peers.
func (b *bgpMode) readPasswords(ctx context.Context, cfg *config.Config) bgp.Passwords {
	out := bgp.Passwords{}
	for _, p := range cfg.BGPPeers {
		if p.PasswordSecret == nil {
			continue
		}
		name := *p.PasswordSecret
		b.mu.Lock()
		pw, ok := b.passwords[name]
		b.mu.Unlock()
		if !ok || time.Since(pw.read) > passwordTTL {
			var sec corev1.Secret
			err := b.s.mgr.GetAPIReader().Get(ctx, name, &sec)
			switch {
			case err == nil:
				pw = password{value: string(sec.Data["password"]), read: time.Now()}
			case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
				b.s.log.Warn("cannot read the BGP password", "secret", name, "error", err)
				continue
			default:
				if !ok {
					continue
				}
			}
			b.mu.Lock()
			if b.passwords == nil {
				b.passwords = map[types.NamespacedName]password{}
			}
			b.passwords[name] = pw
			b.mu.Unlock()
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
