package bgp

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Options configures a Speaker.
type Options struct {
	// RouterID is the BGP identifier (RFC 6286), an IPv4 address; see
	// RouterIDFor. GoBGP has one per speaker, so it cannot differ between
	// sessions.
	RouterID netip.Addr
	// Logger receives the speaker's and GoBGP's logs; nil discards them.
	Logger *slog.Logger
	// ConnectRetry is the time between attempts to connect to a router;
	// 0 means 5 s.
	ConnectRetry time.Duration
	// RestartTime, if not 0, turns on BGP graceful restart (RFC 4724):
	// the speaker offers it to every router, and a Run stopped after
	// PrepareRestart leaves the routers its routes for this long, for the
	// next speaker to take them up (see restart.go). Whole seconds, at
	// most 4095.
	RestartTime time.Duration
}

// Speaker is one node's BGP speaker: an embedded GoBGP server that connects
// to the routers given by SetPeers and announces the routes given by
// SetRoutes. Create it with New; Run runs it. Its methods are safe for
// concurrent use; SetPeers and SetRoutes may be called before Run (they take
// effect when it starts) and while it runs.
type Speaker struct {
	opts   Options
	log    *slog.Logger
	errs   *lastErrors
	resets *resetQueue
	// bfdWake wakes gateBFD; one slot.
	bfdWake chan struct{}

	// restart is set by PrepareRestart: Run then stops the way a
	// restarting speaker does.
	restart atomic.Bool
	// stopped is set once stopToRestart has stopped BGP (see errorTap).
	stopped atomic.Bool

	mu      sync.Mutex
	started bool
	srv     *server.BgpServer // non-nil while Run runs
	// since is when Run started GoBGP; see restarted.
	since time.Time
	// What the caller wants.
	wantPeers  map[string]Peer
	wantRoutes map[netip.Prefix]*announcement
	// What GoBGP has: peers by name, routes in its RIB, and per peer
	// address the prefixes in its deny set.
	havePeers  map[string]Peer
	haveRoutes map[netip.Prefix]*announcement
	haveDeny   map[netip.Addr]map[netip.Prefix]bool
	// By peer name, what Status still reports of the GoBGP peers that
	// replacePeer replaced; dropped when apply removes or re-opens the
	// session.
	past map[string]pastSession
}

// New returns a Speaker that does nothing until Run.
func New(opts Options) (*Speaker, error) {
	if !opts.RouterID.Is4() || opts.RouterID.IsUnspecified() {
		return nil, fmt.Errorf("bgp: router ID %v is not a non-zero IPv4 address", opts.RouterID)
	}
	if opts.ConnectRetry == 0 {
		opts.ConnectRetry = defaultConnectRetry
	}
	if opts.ConnectRetry < time.Second {
		return nil, fmt.Errorf("bgp: connect retry %v is shorter than a second", opts.ConnectRetry)
	}
	if err := checkRestartTime(opts.RestartTime); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Speaker{
		opts:       opts,
		log:        log,
		errs:       &lastErrors{},
		resets:     newResetQueue(),
		bfdWake:    make(chan struct{}, 1),
		wantPeers:  map[string]Peer{},
		wantRoutes: map[netip.Prefix]*announcement{},
		havePeers:  map[string]Peer{},
		haveRoutes: map[netip.Prefix]*announcement{},
		haveDeny:   map[netip.Addr]map[netip.Prefix]bool{},
		past:       map[string]pastSession{},
	}, nil
}

// defaultASN is GoBGP's global AS number. Every session sets its own local
// AS (Peer.MyASN), so this one only fills GoBGP's required field.
const defaultASN = 64512

// Run starts GoBGP, opens the sessions and announces the routes set so far,
// and keeps them until ctx is done; then it closes every session (the
// routers withdraw the routes at once, without waiting for a hold timer;
// or, after PrepareRestart, keep them for Options.RestartTime: see
// restart.go) and returns. While it runs, it also replaces every peer that GoBGP's BFD
// resets, working around a GoBGP bug (see resetQueue), and runs each
// peer's BFD only while its session is established (see gateBFD, another
// workaround). It returns an error if GoBGP does not start; Run may be
// called only once.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("bgp: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	srv := server.NewBgpServer(server.LoggerOption(slog.New(&errorTap{next: s.log.Handler(), errs: s.errs, resets: s.resets, stopped: &s.stopped}), nil))
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve()
	}()
	// stop closes every session with a NOTIFICATION (Cease) rather than
	// by vanishing, so the routers withdraw our routes at once, unless
	// the speaker stops to restart; and ends Serve and the BFD server.
	defer func() {
		s.stop(srv)
		<-served
	}()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        defaultASN,
		RouterId:   s.opts.RouterID.String(),
		ListenPort: -1, // never listen: the speaker connects out
		Families:   globalFamilies(),
	}})
	if err != nil {
		return fmt.Errorf("bgp: start GoBGP: %w", err)
	}
	// Installed only now, so that no policy operation runs before
	// StartBgp has initialised GoBGP's policy engine.
	if err := srv.SetPolicyAssignment(ctx, exportAssignment(nil)); err != nil {
		return fmt.Errorf("bgp: export policy: %w", err)
	}
	// Stopped, by ctx, and waited for before GoBGP stops.
	var workers sync.WaitGroup
	workers.Go(func() { s.clearQueuedResets(ctx) })
	workers.Go(func() { s.gateBFD(ctx, srv) })
	defer workers.Wait()
	s.mu.Lock()
	s.srv = srv
	s.since = time.Now()
	err = s.apply()
	s.mu.Unlock()
	if err != nil {
		s.log.Error("applying BGP configuration", "error", err)
	}
	s.log.Info("BGP speaker started", "routerID", s.opts.RouterID)

	<-ctx.Done()
	s.mu.Lock()
	s.srv = nil
	s.mu.Unlock()
	s.log.Info("BGP speaker stopping")
	return nil
}

// SetPeers makes the speaker's sessions exactly peers, by name: it opens
// new ones, closes those no longer listed, and changes the changed ones. A
// session whose Peer is unchanged is left alone. A change of BFD settings
// alone is applied without a reset; any other change (addresses, AS
// numbers, timers, password) re-opens that one session, because BGP
// negotiates those when it opens. An invalid list changes nothing.
func (s *Speaker) SetPeers(peers []Peer) error {
	if err := validatePeers(peers); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	want := make(map[string]Peer, len(peers))
	for _, p := range peers {
		want[p.Name] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantPeers = want
	return s.apply()
}

// SetRoutes makes the announced routes exactly routes: new prefixes are
// announced, prefixes no longer listed withdrawn, and changed ones
// re-announced, each to the peers its Route names. Several Routes for one
// prefix are merged (see Route). An invalid list changes nothing.
func (s *Speaker) SetRoutes(routes iter.Seq[Route]) error {
	want, err := mergeRoutes(routes)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantRoutes = want
	return s.apply()
}

// apply changes GoBGP from what it has to what is wanted. It is called
// with mu held. Its order keeps every route away from every peer it is not
// for at every moment:
//  1. withdraw the prefixes no longer wanted;
//  2. remove, change and add sessions (an added peer gets its deny set
//     before its session starts);
//  3. update each peer's deny set; a prefix leaving it for one still
//     announced is queued for a soft reset of that peer;
//  4. announce the new and changed prefixes;
//  5. soft-reset (re-send to) the peers whose deny set changed for
//     prefixes they may already have had.
//
// What fails is left out of the "have" state, so the next call retries it.
func (s *Speaker) apply() error {
	srv := s.srv
	if srv == nil {
		return nil
	}
	ctx := context.Background()
	var errs []error

	// 1. Withdraw.
	routesFailed := false
	var gone []netip.Prefix
	for p := range s.haveRoutes {
		if s.wantRoutes[p] == nil {
			gone = append(gone, p)
		}
	}
	for batch := range slices.Chunk(gone, pathBatch) {
		ps, err := paths(batch, nil)
		if err == nil {
			err = srv.DeletePath(apiutil.DeletePathRequest{Paths: ps})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %d routes: %w", len(batch), err))
			routesFailed = true
			continue
		}
		for _, p := range batch {
			delete(s.haveRoutes, p)
		}
	}

	// 2. Sessions.
	bfdChanged := false
	for _, name := range slices.Sorted(maps.Keys(s.havePeers)) {
		have := s.havePeers[name]
		want, ok := s.wantPeers[name]
		switch {
		case ok && equalPeers(have, want):
		case ok && want.Address == have.Address && onlyBFDDiffers(have, want):
			// gateBFD applies it, without a reset.
			s.havePeers[name] = want
			bfdChanged = true
			s.log.Info("BGP peer BFD settings changed", "peer", name, "address", want.Address)
		case ok && want.Address == have.Address:
			// Re-open: delete and add, keeping the export policy.
			if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: have.Address.String()}); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
				continue
			}
			delete(s.havePeers, name)
			delete(s.past, name)
			if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.newPeer(want)}); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
				continue
			}
			s.havePeers[name] = want
			s.log.Info("BGP peer changed; session re-opened", "peer", name, "address", want.Address)
		default:
			if err := s.removePeer(ctx, have); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
				continue
			}
			delete(s.havePeers, name)
			delete(s.past, name)
			s.log.Info("BGP peer removed", "peer", name, "address", have.Address)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.wantPeers)) {
		if _, ok := s.havePeers[name]; ok {
			continue
		}
		want := s.wantPeers[name]
		if err := s.addPeer(ctx, want); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
			continue
		}
		s.havePeers[name] = want
		s.log.Info("BGP peer added", "peer", name, "address", want.Address)
	}

	if bfdChanged {
		s.wakeBFD()
	}

	// 3. Deny sets.
	var resend []netip.Addr
	for _, name := range slices.Sorted(maps.Keys(s.havePeers)) {
		p := s.havePeers[name]
		want := s.denied(p)
		have := s.haveDeny[p.Address]
		var add, del []netip.Prefix
		kept := false // a prefix the peer may have had changed membership
		for q := range want {
			if !have[q] {
				add = append(add, q)
				kept = kept || s.haveRoutes[q] != nil
			}
		}
		for q := range have {
			if !want[q] {
				del = append(del, q)
				kept = kept || s.haveRoutes[q] != nil && s.wantRoutes[q] != nil
			}
		}
		if len(add) > 0 {
			if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: prefixSet(denySetName(p.Address), add)}); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: deny set: %w", name, err))
				continue
			}
			for _, q := range add {
				have[q] = true
			}
		}
		if len(del) > 0 {
			if err := srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(denySetName(p.Address), del)}); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: deny set: %w", name, err))
				continue
			}
			for _, q := range del {
				delete(have, q)
			}
		}
		if kept {
			resend = append(resend, p.Address)
		}
	}

	// 4. Announce, in order.
	var add []netip.Prefix
	for p, a := range s.wantRoutes {
		if h := s.haveRoutes[p]; h != nil && h.sameAttrs(a) {
			if h != a {
				s.haveRoutes[p] = a // peers may differ; the deny sets did that
			}
			continue
		}
		add = append(add, p)
	}
	slices.SortFunc(add, comparePrefixes)
	for batch := range slices.Chunk(add, pathBatch) {
		ps, err := paths(batch, s.wantRoutes)
		if err != nil {
			errs = append(errs, err)
			routesFailed = true
			continue
		}
		rs, err := srv.AddPath(apiutil.AddPathRequest{Paths: ps})
		if err != nil && len(rs) == 0 {
			errs = append(errs, fmt.Errorf("announce %d routes: %w", len(batch), err))
			routesFailed = true
			continue
		}
		for i, p := range batch {
			switch {
			case i < len(rs) && rs[i].Error != nil:
				errs = append(errs, fmt.Errorf("announce %s: %w", p, rs[i].Error))
				routesFailed = true
			case i >= len(rs) && err != nil: // not known to be in
				routesFailed = true
			default:
				s.haveRoutes[p] = s.wantRoutes[p]
			}
		}
	}
	// GoBGP has every route wanted and no other: one map serves as both
	// until the next SetRoutes replaces wantRoutes (which leaves the old
	// map to haveRoutes alone), instead of a second map of every prefix.
	if !routesFailed && len(s.haveRoutes) == len(s.wantRoutes) {
		s.haveRoutes = s.wantRoutes
	}

	// 5. Re-send.
	for _, a := range resend {
		if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: re-send routes: %w", a, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	return nil
}

// pathBatch is how many routes one GoBGP AddPath or DeletePath call
// takes: the paths handed to GoBGP are garbage once it has them, and
// 10,000 at once were 4 MB of a speaker's peak (test/bench/bgpscale).
const pathBatch = 500

// paths returns GoBGP's paths for prefixes: withdrawals if anns is nil,
// otherwise announcements with anns' attributes.
func paths(prefixes []netip.Prefix, anns map[netip.Prefix]*announcement) ([]*apiutil.Path, error) {
	out := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		pa, err := path(p, anns[p], anns == nil)
		if err != nil {
			return nil, err
		}
		out = append(out, pa)
	}
	return out, nil
}

// denied returns the wanted prefixes of p's family that must not go to p.
func (s *Speaker) denied(p Peer) map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for q, a := range s.wantRoutes {
		if q.Addr().Is4() == p.Address.Is4() && !a.forPeer(p.Name) {
			out[q] = true
		}
	}
	return out
}

// addPeer creates p's export policy objects, with an empty deny set, and
// then the session.
func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	srv := s.srv
	if _, ok := s.haveDeny[p.Address]; !ok {
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: neighborSet(p.Address)}); err != nil {
			return fmt.Errorf("neighbor set: %w", err)
		}
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: prefixSet(denySetName(p.Address), nil)}); err != nil {
			return fmt.Errorf("deny set: %w", err)
		}
		if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: denyPolicy(p.Address)}); err != nil {
			return fmt.Errorf("export policy: %w", err)
		}
		s.haveDeny[p.Address] = map[netip.Prefix]bool{}
		if err := s.assignPolicies(ctx); err != nil {
			return err
		}
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.newPeer(p)}); err != nil {
		return err
	}
	s.errs.set(p.Address, "")
	return nil
}

// removePeer closes p's session and then deletes its export policy objects.
func (s *Speaker) removePeer(ctx context.Context, p Peer) error {
	srv := s.srv
	if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
		return err
	}
	s.errs.set(p.Address, "")
	delete(s.haveDeny, p.Address)
	if err := s.assignPolicies(ctx); err != nil {
		return err
	}
	var errs []error
	errs = append(errs, srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyName(p.Address)}, All: true}))
	errs = append(errs, srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: denySetName(p.Address)}, All: true}))
	errs = append(errs, srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: neighborSetName(p.Address)}, All: true}))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete export policy: %w", err)
	}
	return nil
}

// assignPolicies makes GoBGP's global export policy the deny policies of
// every peer in haveDeny, accepting everything else.
func (s *Speaker) assignPolicies(ctx context.Context) error {
	addrs := slices.SortedFunc(maps.Keys(s.haveDeny), netip.Addr.Compare)
	if err := s.srv.SetPolicyAssignment(ctx, exportAssignment(addrs)); err != nil {
		return fmt.Errorf("export policy assignment: %w", err)
	}
	return nil
}

func exportAssignment(addrs []netip.Addr) *api.SetPolicyAssignmentRequest {
	a := &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}
	for _, addr := range addrs {
		a.Policies = append(a.Policies, &api.Policy{Name: policyName(addr)})
	}
	return &api.SetPolicyAssignmentRequest{Assignment: a}
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Status reports every configured session, sorted by name. Before Run, or
// after it, every session is Idle.
//
// An Established session's PrefixesSent counts the routes in GoBGP's table
// that its export policy lets through (the peer's family, less its deny
// set), which is what GoBGP sends it. Asking GoBGP for its advertised
// count instead would run the export policy over every path, cloning
// each, on every call: with 10,000 routes that was a quarter of the
// speaker's allocations, and Status is called every second or two.
func (s *Speaker) Status() []PeerStatus {
	s.mu.Lock()
	srv := s.srv
	peers := maps.Clone(s.wantPeers)
	exported := make(map[string]int, len(peers))
	past := make(map[string]pastSession, len(s.past))
	for name, p := range peers {
		if hp, ok := s.havePeers[name]; ok && hp.Address == p.Address {
			exported[name] = s.exported(p.Address)
			past[name] = s.past[name]
		}
	}
	s.mu.Unlock()

	byAddr := map[string]*api.Peer{}
	if srv != nil {
		err := srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.Conf != nil {
				byAddr[p.Conf.NeighborAddress] = p
			}
		})
		if err != nil {
			s.log.Warn("listing BGP peers", "error", err)
		}
	}
	out := make([]PeerStatus, 0, len(peers))
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		p := peers[name]
		st := PeerStatus{Name: name, Address: p.Address, State: StateIdle, LastError: explain(s.errs.get(p.Address), p),
			Drops: past[name].drops, Since: past[name].since}
		if p.BFD != nil {
			st.BFD = "Down"
		}
		if ap := byAddr[p.Address.String()]; ap != nil && ap.Conf.Description == name {
			if ap.State != nil {
				st.State = sessionState(ap.State.SessionState)
				st.Drops += int(ap.State.Flops)
				if p.BFD != nil && ap.State.BfdState != nil {
					st.BFD = bfdState(ap.State.BfdState.SessionState)
				}
			}
			if ap.Timers != nil && ap.Timers.State != nil && ap.Timers.State.Uptime != nil {
				if t := ap.Timers.State.Uptime.AsTime(); t.Unix() > 0 {
					st.Since = t
				}
			}
			if st.State == StateEstablished {
				st.PrefixesSent = exported[name]
				st.LastError = ""
			}
		}
		out = append(out, st)
	}
	return out
}

// exported counts the routes GoBGP has that the export policy of the
// peer at addr lets through. Called with s.mu held.
func (s *Speaker) exported(addr netip.Addr) int {
	deny := s.haveDeny[addr]
	n := 0
	for q := range s.haveRoutes {
		if q.Addr().Is4() == addr.Is4() && !deny[q] {
			n++
		}
	}
	return n
}

// explain adds what an operator should check to a raw connection error.
func explain(err string, p Peer) string {
	switch {
	case err == "":
		return ""
	case strings.Contains(err, "i/o timeout"):
		if p.Password != "" {
			return err + " (no answer: the router may expect a different TCP MD5 password, or none; or a firewall drops the connection)"
		}
		return err + " (no answer: the router may require a TCP MD5 password, or a firewall drops the connection)"
	case strings.Contains(err, "connection refused"):
		return err + " (the router does not accept BGP from this address: is the node configured as its neighbor?)"
	}
	return err
}
