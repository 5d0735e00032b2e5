package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the UDP and TCP port speakers gossip on when Options
// leaves it zero: memberlist's own default, which is also MetalLB's. A
// cluster migrating from MetalLB runs one of the two speakers per node at
// a time, or moves one of them with --memberlist-bind.
const DefaultPort = 7946

// Defaults for Options.
const (
	DefaultRejoinInterval = time.Second
	DefaultLeaveTimeout   = time.Second
)

// label is put on every packet and stream (memberlist's Config.Label, GCM
// additional data when encrypting), so a speaker ignores any other
// memberlist cluster that shares its port or its peers' addresses.
const label = "ironlb"

// tcpTimeout bounds a join or push-pull exchange. memberlist's 10 s is
// meant for WANs; on a LAN 2 s is plenty, and it bounds how long a rejoin
// attempt to a peer that is down, and Run's exit, can take.
const tcpTimeout = 2 * time.Second

// Options configures a Members. Name is required; the zero value of every
// other field is usable.
type Options struct {
	// Name is this member's name, unique in the cluster: the Kubernetes
	// node name, which is also what Owner's candidates are made of.
	Name string
	// Bind is where to listen for gossip, UDP and TCP on the same port. The
	// zero value means every address (0.0.0.0); port 0 means DefaultPort.
	Bind netip.AddrPort
	// Advertise is the address and port peers reach this member at: the
	// node IP. If the address is unset, memberlist uses Bind's address, or
	// if that is unspecified the first private (RFC 1918) address of the
	// host; port 0 means Bind's port.
	Advertise netip.AddrPort
	// SecretKey, if set, encrypts and authenticates all gossip with
	// AES-GCM (16, 24 or 32 bytes: AES-128, -192 or -256). Members with
	// another key, or none, cannot join or be heard.
	SecretKey []byte
	// AcceptKeys are keys gossip from others may also be encrypted with
	// (a key rotation under way: members that have the new key as
	// SecretKey and those that still have the old one hear each other
	// when each accepts the other's). Ignored without SecretKey.
	AcceptKeys [][]byte
	// Join lists peers to join: the other speakers' addresses. Run keeps
	// joining the peers in Join that are not alive members (up to four
	// a round, see maxJoins), so a cluster
	// forms whatever order speakers start in, and a member that was cut off
	// merges back once it can reach a peer again. Listing this member's own
	// address is harmless.
	Join []netip.AddrPort
	// RejoinInterval is how often Run retries Join peers that are not
	// members. Default 1 s.
	RejoinInterval time.Duration
	// LeaveTimeout bounds the Leave that Run does when its context ends.
	// Default 1 s.
	LeaveTimeout time.Duration
	// Logger receives membership changes and memberlist's own log. nil
	// discards them.
	Logger *slog.Logger
	// Tuning sets the failure detector's timers; the zero value is tuned
	// for a LAN (see Tuning).
	Tuning Tuning
	// Meta is published to the other members, who read it with Meta. The
	// speaker puts there what the others need to know of this node and
	// cannot read from the API server without putting it on the failover
	// path: its announcing interfaces and their MACs. At most MaxMeta bytes.
	// SetMeta replaces it while the member runs.
	Meta string
}

// MaxMeta bounds Options.Meta: memberlist carries at most 512 bytes of
// metadata per member, and the encoding takes a few (restartMeta's
// prefix, the longest, 16 until the year 2286).
const MaxMeta = 490

// Members is this speaker's view of which speakers are alive, kept by a
// memberlist gossip cluster. Create it with New, run it with Run. Its
// methods are safe for concurrent use.
type Members struct {
	opts    Options
	log     *slog.Logger
	changes chan struct{}

	// life serializes Leave, SetMeta and shutdown: memberlist panics on a
	// Leave after Shutdown. It is held while Leave and SetMeta wait for
	// their broadcasts. It also guards opts.Meta: memberlist reads the
	// metadata (delegate.NodeMeta) only inside Create and UpdateNode, and
	// Run, Leave and SetMeta call those with life held.
	life sync.Mutex
	// leaving is set by Leave; NodeMeta then publishes metaLeaving.
	leaving atomic.Bool
	// restartUntil is set by Restart (Unix milliseconds); NodeMeta then
	// publishes restartMeta, and Run stops without a leave.
	restartUntil atomic.Int64
	// joined is set once a Join of a peer has succeeded (see Joined).
	joined atomic.Bool
	// workers counts the goroutines Run owns: the rejoin loop and those
	// verifying deaths (verify.go). Run waits for them before it returns.
	workers sync.WaitGroup

	// mu guards the fields below. It is never held while calling into
	// memberlist, whose event callbacks (which take mu) run under
	// memberlist's own locks.
	mu      sync.Mutex
	ml      *memberlist.Memberlist // set while Run runs
	runCtx  context.Context        // ends when Run begins to stop
	started bool                   // Run was called
	closing bool                   // Run is stopping: start no more workers
	down    bool                   // ml is shut down
	members map[string]member      // alive members, as the events report them
	self    netip.AddrPort         // this member's gossip address
	held    map[string]held        // members reported dead, being verified
	// restartHolds are members that stopped to restart (restart.go).
	restartHolds map[string]*restartHold
	gen          uint64 // last held.gen
	// unreachable are alive members that did not answer a ping when this
	// member found itself cut off from most of the others (verify.go,
	// cutOff); Alive leaves them out until they answer one.
	unreachable map[string]net.Addr
	// beats are the members' heartbeats as this member hears them
	// (heartbeat.go).
	beats map[string]*heartbeat
	// The ring's state (ring.go). ringOn says the cluster was large
	// enough to watch a ring at the last tick; suspecting are the
	// members this member suspects, to be sent when suspicionsChanged
	// and every suspicionRefresh after suspicionsSent; reports are the
	// others' suspicions; ringOut the members counted out by them.
	// cutOffCheck is set while a cut-off check started at cutOffAt runs.
	// ring is the ring as ringLocked last worked it out, nil after a
	// change of the membership.
	ring              []string
	ringOn            bool
	suspecting        map[string]bool
	suspicionsChanged bool
	suspicionsSent    time.Time
	reports           map[string]report
	ringOut           map[string]bool
	cutOffCheck       bool
	cutOffAt          time.Time
}

// member is what Members keeps of a memberlist node. It is copied in the
// event callbacks, under memberlist's lock: the *memberlist.Node values
// memberlist hands out point into its own state, which it keeps changing.
type member struct {
	addr netip.AddrPort
	meta string
}

// memberOf copies what Members keeps of n. Call it only where memberlist
// holds its lock (event callbacks).
func memberOf(n *memberlist.Node) member {
	a, _ := netip.AddrFromSlice(n.Addr)
	return member{addr: netip.AddrPortFrom(a.Unmap(), n.Port), meta: string(n.Meta)}
}

// New checks opts and returns a Members ready to Run. It binds nothing and
// starts nothing.
func New(opts Options) (*Members, error) {
	if opts.Name == "" {
		return nil, errors.New("election: member name is required")
	}
	switch len(opts.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("election: secret key is %d bytes, want 16, 24 or 32", len(opts.SecretKey))
	}
	for i, k := range opts.AcceptKeys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("election: accepted key %d is %d bytes, want 16, 24 or 32", i+1, len(k))
		}
	}
	if opts.Bind.Addr().IsValid() && opts.Bind.Addr().Zone() != "" {
		return nil, fmt.Errorf("election: bind address %s has a zone; use a global or unspecified address", opts.Bind.Addr())
	}
	if !opts.Bind.Addr().IsValid() {
		opts.Bind = netip.AddrPortFrom(netip.IPv4Unspecified(), opts.Bind.Port())
	}
	if opts.Bind.Port() == 0 {
		opts.Bind = netip.AddrPortFrom(opts.Bind.Addr(), DefaultPort)
	}
	if a := opts.Advertise.Addr(); a.IsValid() && (a.IsUnspecified() || a.Zone() != "") {
		return nil, fmt.Errorf("election: cannot advertise %s", a)
	}
	for _, p := range opts.Join {
		if !p.IsValid() || p.Addr().IsUnspecified() {
			return nil, fmt.Errorf("election: cannot join %s", p)
		}
	}
	if len(opts.Meta) > MaxMeta {
		return nil, fmt.Errorf("election: metadata is %d bytes, at most %d fit", len(opts.Meta), MaxMeta)
	}
	if opts.RejoinInterval < 0 || opts.LeaveTimeout < 0 {
		return nil, errors.New("election: negative rejoin interval or leave timeout")
	}
	if opts.RejoinInterval == 0 {
		opts.RejoinInterval = DefaultRejoinInterval
	}
	if opts.LeaveTimeout == 0 {
		opts.LeaveTimeout = DefaultLeaveTimeout
	}
	opts.Tuning = opts.Tuning.withDefaults()
	if err := opts.Tuning.validate(); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Join = slices.Clone(opts.Join)
	opts.SecretKey = slices.Clone(opts.SecretKey)
	opts.AcceptKeys = slices.Clone(opts.AcceptKeys)
	return &Members{
		opts:         opts,
		log:          log,
		changes:      make(chan struct{}, 1),
		members:      map[string]member{},
		held:         map[string]held{},
		restartHolds: map[string]*restartHold{},
		unreachable:  map[string]net.Addr{},
		beats:        map[string]*heartbeat{},
		suspecting:   map[string]bool{},
		reports:      map[string]report{},
		ringOut:      map[string]bool{},
	}, nil
}

// config builds the memberlist configuration from the options.
func (m *Members) config() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = m.opts.Name
	c.BindAddr = m.opts.Bind.Addr().String()
	c.BindPort = int(m.opts.Bind.Port())
	c.AdvertisePort = c.BindPort
	if a := m.opts.Advertise; a.Addr().IsValid() {
		c.AdvertiseAddr = a.Addr().Unmap().String()
	}
	if p := m.opts.Advertise.Port(); p != 0 {
		c.AdvertisePort = int(p)
	}
	c.SecretKey = m.opts.SecretKey
	if len(c.SecretKey) > 0 && len(m.opts.AcceptKeys) > 0 {
		// Encrypt with SecretKey, decrypt with any of them. NewKeyring
		// fails only on a key of a bad length, which New refused.
		c.Keyring, _ = memberlist.NewKeyring(m.opts.AcceptKeys, c.SecretKey)
	}
	c.Label = label
	c.TCPTimeout = tcpTimeout
	c.Events = events{m}
	c.Delegate = delegate{m}
	c.Logger = newStdLogger(m.log.With("component", "memberlist"))
	// The messages are a few hundred bytes (a node's name and its
	// interfaces), so compression gains nothing, and memberlist's LZW
	// writer allocates its tables afresh for every message: it was the
	// biggest source of a speaker's garbage (28 MB in 35 s). Members
	// still read compressed messages, so speakers of older versions are
	// understood.
	c.EnableCompression = false
	m.opts.Tuning.apply(c)
	return c
}

// Run starts gossiping, joins the configured peers and keeps rejoining
// those that are not members (see Options.Join), and blocks until ctx is
// done. Then it leaves the cluster (waiting up to Options.LeaveTimeout for
// the news to go out), shuts down, waits for its goroutines and returns
// nil. It returns an error at once if it cannot start (the port is taken,
// no address to advertise). Run may be called only once.
func (m *Members) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("election: Run called twice")
	}
	m.started = true
	m.mu.Unlock()

	// life is held from Create, which reads the metadata, until ml is
	// set: a SetMeta in between would otherwise record new metadata that
	// nobody publishes.
	m.life.Lock()
	tr, err := newTransport(m.opts.Bind, m.log.With("component", "memberlist"))
	if err != nil {
		m.life.Unlock()
		return fmt.Errorf("election: start gossip on %s: %w", m.opts.Bind, err)
	}
	c := m.config()
	c.Transport = tr
	ml, err := memberlist.Create(c)
	if err != nil {
		tr.Shutdown()
		m.life.Unlock()
		return fmt.Errorf("election: start gossip on %s: %w", m.opts.Bind, err)
	}
	runCtx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	m.mu.Lock()
	m.ml, m.runCtx = ml, runCtx
	self := m.self // set by the NotifyJoin for ourselves, during Create
	m.mu.Unlock()
	m.life.Unlock()
	m.log.Info("gossip started", "node", m.opts.Name, "addr", self)
	m.notify()

	m.workers.Go(func() { m.keepJoining(runCtx, ml) })
	if m.heartbeatsOn() {
		m.workers.Go(func() { m.runHeartbeats(runCtx, ml) })
	}
	<-ctx.Done()
	stopWorkers()
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()

	if m.restarting() {
		m.log.Info("stopping to restart: no leave, the others keep this member's place (Restart)")
	} else if err := m.Leave(m.opts.LeaveTimeout); err != nil {
		m.log.Warn("leaving the cluster", "error", err)
	}
	m.shutdown()
	m.workers.Wait()
	m.mu.Lock()
	m.ml = nil
	clear(m.members)
	clear(m.held)
	m.ringChangedLocked()
	clear(m.beats)
	clear(m.suspecting)
	clear(m.reports)
	clear(m.ringOut)
	for name := range m.restartHolds {
		m.dropRestart(name)
	}
	m.mu.Unlock()
	m.notify()
	return nil
}

// shutdown stops memberlist without a goodbye, unless that has happened.
func (m *Members) shutdown() {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	ml, down := m.ml, m.down
	m.down = true
	m.mu.Unlock()
	if ml != nil && !down {
		ml.Shutdown()
	}
}

// keepJoining joins the Join peers that are not alive members (joinRound's
// share of them), now and every RejoinInterval, until ctx is done. Peers
// are joined concurrently,
// so one that is unreachable (each attempt can take up to tcpTimeout) does
// not hold up the others.
func (m *Members) keepJoining(ctx context.Context, ml *memberlist.Memberlist) {
	t := time.NewTicker(m.opts.RejoinInterval)
	defer t.Stop()
	for {
		// select picks at random between a done ctx and a due tick, and a
		// member that is leaving must not join anyone again: a push/pull
		// with a peer that is leaving too can hang up to tcpTimeout and
		// hold up the shutdown.
		if ctx.Err() != nil || m.leaving.Load() {
			return
		}
		var wg sync.WaitGroup
		for _, p := range joinRound(m.missing()) {
			wg.Go(func() {
				if _, err := ml.Join([]string{p.String()}); err != nil {
					m.log.Debug("joining peer", "peer", p, "error", err)
				} else {
					m.notifyJoined()
				}
			})
		}
		// Stop waiting for attempts in flight when ctx ends: one to a dead
		// peer takes up to tcpTimeout and would delay Run's return; it
		// fails soon after memberlist shuts down.
		joined := make(chan struct{})
		go func() { wg.Wait(); close(joined) }()
		select {
		case <-ctx.Done():
			return
		case <-joined:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Joined reports whether this member has joined a peer: a Join succeeds
// only after a full state exchange (push/pull) with it, so this member
// then knows every member that peer knows. Hearing of a member by gossip
// alone (it is alive) says nothing of the others.
func (m *Members) Joined() bool { return m.joined.Load() }

// notifyJoined records the first successful join and tells Changes.
func (m *Members) notifyJoined() {
	if !m.joined.Swap(true) {
		m.notify()
	}
}

// maxJoins bounds the peers a member tries to join in one round. A join
// is a full state exchange over TCP, and one that succeeds brings in
// every member that peer knows, so a few at a time are as good as all:
// without the bound, every speaker of a cluster starting at once (a fresh
// install, a power cut) would open an exchange with every other, n*(n-1)
// of them, each carrying the whole membership (a million exchanges of
// 1,000 members each at 1,000 nodes). A node without a running speaker
// is still tried by every speaker each round while at most maxJoins
// peers are missing.
const maxJoins = 4

// joinRound returns the peers of missing to try this round: all of them
// up to maxJoins, otherwise maxJoins picked at random, so that every
// peer is tried in turn and no two members favour the same ones.
func joinRound(missing []netip.AddrPort) []netip.AddrPort {
	if len(missing) <= maxJoins {
		return missing
	}
	rand.Shuffle(len(missing), func(i, j int) { missing[i], missing[j] = missing[j], missing[i] })
	return missing[:maxJoins]
}

// missing returns the Join peers, other than this member, that no alive
// member is reachable at.
func (m *Members) missing() []netip.AddrPort {
	m.mu.Lock()
	have := map[netip.AddrPort]bool{m.self: true} // never join ourselves, even after a Leave
	for _, mb := range m.members {
		have[mb.addr] = true
	}
	m.mu.Unlock()
	var out []netip.AddrPort
	for _, p := range m.opts.Join {
		p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
		if !have[p] {
			out = append(out, p)
		}
	}
	return out
}

// Alive returns the sorted names of the members that are alive, this one
// included, as far as this member knows: members that failed their probes
// but are not yet declared dead (suspects) still count, so a single lost
// packet moves nothing, and so do members declared dead that still answer
// a direct ping (see verify.go). Members that have announced they are
// leaving, this one included, are not listed (see Leave). It returns nil
// when Run is not running.
func (m *Members) Alive() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil || m.down {
		return nil
	}
	names := make([]string, 0, len(m.members)+len(m.held))
	for name, mb := range m.members {
		if _, cut := m.unreachable[name]; mb.meta != metaLeaving && !cut && !m.silentLocked(name) { // leaving: it is handing over
			names = append(names, name)
		}
	}
	for name := range m.held {
		if !m.silentLocked(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Meta returns the Options.Meta of the alive member name (as Alive
// counts them), or of a member listed in Restarting, and whether it is
// one.
func (m *Members) Meta(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil || m.down {
		return "", false
	}
	if mb, ok := m.members[name]; ok && mb.meta != metaLeaving {
		return userMeta(mb.meta), true
	}
	if h, ok := m.held[name]; ok {
		return userMeta(h.meta), true
	}
	if h, ok := m.restartHolds[name]; ok && h.until.After(time.Now()) { // as Restarting
		return h.meta, true
	}
	return "", false
}

// Health is memberlist's local health score (Lifeguard's "awareness"): 0
// when this member's probes get their answers, up to 7 when they do not
// (it is cut off, or too starved of CPU to hear the answers). Each point
// stretches this member's probe interval by one interval, so that a sick
// member is slow to accuse healthy ones. It is -1 when Run is not
// running. Worth exporting as a metric: a speaker that is often above 0 is
// the one to look at.
func (m *Members) Health() int {
	m.mu.Lock()
	ml, down := m.ml, m.down
	m.mu.Unlock()
	if ml == nil || down {
		return -1
	}
	return ml.GetHealthScore()
}

// Changes returns a channel that receives a value after Alive may have
// changed: a member joined, left, was declared dead or changed its address,
// Run started or stopped, or Leave was called. Notifications coalesce (the
// channel holds at most one), so a slow reader misses no change, only
// intermediate states: on receiving, call Alive for the current set. The
// channel is never closed; there is one channel per Members.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// notify signals Changes without blocking.
func (m *Members) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Leave announces that this member is leaving on purpose and waits until
// the announcement has been gossiped, or timeout (0: no limit). The others
// drop this member from Alive as soon as they hear it (within a gossip
// interval, tens of milliseconds), without waiting for failed probes. From
// the moment Leave is called this member's own Alive excludes it, so its
// owner choices agree with everyone else's. It keeps answering probes
// until Run returns.
//
// It is done in two steps, each waiting for its broadcast: this member's
// metadata becomes metaLeaving (which is what the others act on, and what
// tells them not to verify the death, see verify.go), then memberlist's
// own leave.
//
// This is the planned handover: a speaker told to stop (SIGTERM) calls
// Leave first and keeps announcing its IPs until their new owners have
// taken over, then cancels Run. Calling Leave again, or when Run is not
// running, does nothing. Run calls Leave itself when its context ends.
func (m *Members) Leave(timeout time.Duration) error {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	ml, down := m.ml, m.down
	m.mu.Unlock()
	if ml == nil || down || m.leaving.Load() || m.restarting() {
		return nil
	}
	// First tell everyone this is a leave, not a failure, so that nobody
	// verifies it (see verify.go); then leave. Both wait for their
	// broadcast, together at most timeout.
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	remaining := func() time.Duration {
		if deadline.IsZero() {
			return 0
		}
		return max(time.Until(deadline), time.Millisecond)
	}
	m.leaving.Store(true)
	if err := ml.UpdateNode(remaining()); err != nil {
		m.log.Warn("announcing the leave", "error", err)
	}
	err := ml.Leave(remaining())
	m.notify()
	if err != nil {
		return fmt.Errorf("election: leave: %w", err)
	}
	return nil
}

// SetMeta replaces this member's metadata (Options.Meta) and, while Run
// runs, gossips it: memberlist sends a new alive message, and the others
// read the new value with Meta and are told through Changes. It waits up
// to timeout (0: no limit) for that message to go out, which takes up to
// a gossip interval while other members are alive. The speaker calls it
// when the interfaces it answers on change, so that the others elect it
// for an interface it gained, and stop electing it for one it lost.
//
// Before Run, the metadata is recorded and published when Run starts;
// after Leave, it is recorded only: the member goes on telling the others
// it is leaving. Calls are serialized with each other and with Leave.
func (m *Members) SetMeta(meta string, timeout time.Duration) error {
	if len(meta) > MaxMeta {
		return fmt.Errorf("election: metadata is %d bytes, at most %d fit", len(meta), MaxMeta)
	}
	m.life.Lock()
	defer m.life.Unlock()
	m.opts.Meta = meta
	m.mu.Lock()
	ml, down := m.ml, m.down
	m.mu.Unlock()
	if ml == nil || down || m.leaving.Load() {
		return nil
	}
	if err := ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("election: publish metadata: %w", err)
	}
	return nil
}

// events turns memberlist's membership callbacks into Changes signals and
// log lines. memberlist calls them with its node lock held, so they must
// not call back into it, and do not.
type events struct{ m *Members }

func (e events) NotifyJoin(n *memberlist.Node) {
	e.m.log.Info("member alive", "member", n.Name, "addr", n.Address())
	e.m.onAlive(n.Name, memberOf(n))
}

func (e events) NotifyLeave(n *memberlist.Node) { e.m.onDeath(n.Name, memberOf(n)) }

func (e events) NotifyUpdate(n *memberlist.Node) {
	e.m.log.Debug("member updated", "member", n.Name, "addr", n.Address(), "meta", string(n.Meta))
	e.m.onAlive(n.Name, memberOf(n))
}
