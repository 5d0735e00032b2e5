package l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
)

// Errors returned by this package, to be matched with errors.Is.
var (
	// ErrInvalidAddr means SetAddrs or SetProxied was given an address no
	// host can own on a LAN (zero, unspecified, multicast, loopback,
	// limited broadcast, or with an IPv6 zone).
	ErrInvalidAddr = errors.New("l2: not an ownable unicast address")
	// ErrFamily means SetAddrs or SetProxied was given an address of a
	// family the Responder has no socket for (see Conns).
	ErrFamily = errors.New("l2: address family not served")
	// ErrInvalidMAC means SetProxied was given a MAC no host can have on an
	// Ethernet LAN (not 6 bytes, zero, or a group address), or two for one
	// address.
	ErrInvalidMAC = errors.New("l2: not a unicast Ethernet MAC")
	// ErrNotEthernet means the interface's hardware address is not a 6-byte
	// Ethernet MAC.
	ErrNotEthernet = errors.New("l2: not an Ethernet interface")
	// ErrNoConns means NewWithConns was given neither an ARP nor an NDP socket.
	ErrNoConns = errors.New("l2: no sockets")
	// ErrRunning means Run was called a second time.
	ErrRunning = errors.New("l2: Run called twice")
	// ErrClosed means the Responder was closed (Close, or Run returned).
	ErrClosed = errors.New("l2: responder closed")
)

// Defaults for Options' zero values.
const (
	DefaultAnnounceCount      = 3
	DefaultAnnounceInterval   = 150 * time.Millisecond
	DefaultReannounceInterval = 10 * time.Second
)

// Options tunes a Responder. The zero value announces each newly owned
// address DefaultAnnounceCount times, DefaultAnnounceInterval apart, and
// every owned address again every DefaultReannounceInterval.
type Options struct {
	// Logger receives errors and changes of the owned set; nil discards.
	Logger *slog.Logger
	// AnnounceCount is how many gratuitous ARP packets (IPv4) or
	// unsolicited Neighbor Advertisements (IPv6) an address gets when it
	// joins the owned set, the first at once. 0 means
	// DefaultAnnounceCount; a negative value sends none.
	AnnounceCount int
	// AnnounceInterval spaces those; 0 means DefaultAnnounceInterval.
	AnnounceInterval time.Duration
	// ReannounceInterval is how often every owned address is announced
	// again (once), for caches that missed the first announcements or
	// have since learnt a stale MAC. 0 means DefaultReannounceInterval; a
	// negative value disables it.
	ReannounceInterval time.Duration
}

// Conns are the sockets of a Responder and what it says about itself, for
// NewWithConns. Both sockets carry whole Ethernet frames, like a
// packet.Raw socket: reads return frames, writes take frames and a
// *packet.Addr (whose MAC repeats the frame's destination; a packet.Raw
// socket uses only the frame's).
type Conns struct {
	// HardwareAddr is the interface's 6-byte MAC: the Ethernet source of
	// every frame sent, and the MAC claimed by every answer for an owned
	// address and every announcement.
	HardwareAddr net.HardwareAddr
	// IPv6Source is the IPv6 source address of Neighbor Advertisements,
	// which RFC 4861 section 4.4 wants to be an address of the sending
	// interface: its link-local address. The zero Addr sends each from
	// its target address instead.
	IPv6Source netip.Addr
	// ARP carries ARP frames (EtherType 0x0806); nil serves no IPv4.
	ARP net.PacketConn
	// NDP carries IPv6 frames with Neighbor Solicitations; nil serves no
	// IPv6. If it has packet.Conn's JoinGroup and LeaveGroup methods, the
	// Responder joins the solicited-node Ethernet group of each owned
	// IPv6 address through them.
	NDP net.PacketConn
}

// groupJoiner is the part of *packet.Conn that joins link-layer multicast
// groups.
type groupJoiner interface {
	JoinGroup(net.HardwareAddr) error
	LeaveGroup(net.HardwareAddr) error
}

// Responder answers ARP and NDP for a set of owned addresses on one
// interface, and announces addresses as they join the set; it may also
// answer for addresses of other hosts, naming their MACs (SetProxied).
// Create it with New or NewWithConns, set its addresses with SetAddrs and
// SetProxied (before or during Run) and call Run, once. Its methods are
// safe for concurrent use.
type Responder struct {
	log        *slog.Logger
	me         self
	hw         net.HardwareAddr
	arp, ndp   net.PacketConn
	count      int
	interval   time.Duration
	reannounce time.Duration

	set atomic.Pointer[addrSet]

	mu      sync.Mutex // serializes SetAddrs and SetProxied, the writers of set; guards the fields below
	closed  bool
	pending map[netip.Addr]struct{} // newly owned, not yet announced
	groups  map[[macLen]byte]bool   // solicited-node groups joined
	wake    chan struct{}           // cap 1: pending has news

	// rawARP and rawNDP are the sockets requests are read from and
	// answered on, if New opened them (see rawsock.go); nil means arp and
	// ndp. Run's readers use them while rawBusy (guarded by mu); closeRaw
	// closes them once neither a reader nor Close needs them.
	rawARP, rawNDP *rawSocket
	rawBusy        bool
	rawClosed      bool

	running   atomic.Bool
	quiet     atomic.Bool // Quiet was called: announce nothing more
	closeOnce sync.Once
	closeErr  error

	stats struct{ arp, ndp counters }
}

// New opens packet sockets on ifi, for ARP and for IPv6 Neighbor
// Solicitations, each read through a BPF filter that passes only the
// frames a Responder may answer, and returns a Responder on them that owns
// no address yet. Requests are read and answered on blocking sockets of
// their own, outside the Go runtime's network poller, for latency (see
// rawsock.go); announcements and multicast memberships go through
// packet.Conns, as with NewWithConns. The sockets are opened in the
// calling thread's network namespace, which must be ifi's; they need
// CAP_NET_RAW. It starts nothing: call Run, or Close to release the
// sockets.
func New(ifi *net.Interface, opts Options) (*Responder, error) {
	if ifi == nil || len(ifi.HardwareAddr) != macLen {
		return nil, ErrNotEthernet
	}
	arpFilter, err := arpRequestFilter()
	if err != nil {
		return nil, fmt.Errorf("l2: ARP filter: %w", err)
	}
	nsFilter, err := solicitationFilter()
	if err != nil {
		return nil, fmt.Errorf("l2: NDP filter: %w", err)
	}
	arpConn, arpRaw, err := listenPair(ifi, etherTypeARP, arpFilter)
	if err != nil {
		return nil, fmt.Errorf("l2: ARP socket on %s: %w", ifi.Name, err)
	}
	ndpConn, ndpRaw, err := listenPair(ifi, etherTypeIPv6, nsFilter)
	if err != nil {
		arpConn.Close()
		arpRaw.close()
		return nil, fmt.Errorf("l2: NDP socket on %s: %w", ifi.Name, err)
	}
	r, err := NewWithConns(Conns{
		HardwareAddr: ifi.HardwareAddr,
		IPv6Source:   linkLocal(ifi),
		ARP:          arpConn,
		NDP:          ndpConn,
	}, opts)
	if err != nil {
		arpConn.Close()
		ndpConn.Close()
		arpRaw.close()
		ndpRaw.close()
		return nil, err
	}
	r.rawARP, r.rawNDP = arpRaw, ndpRaw
	return r, nil
}

// linkLocal returns ifi's IPv6 link-local address, or the zero Addr if it
// has none (or IPv6 is off).
func linkLocal(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// NewWithConns returns a Responder on the given sockets, which it owns
// from now on: Close, or the end of Run, closes them. Tests use it with
// fakes; New opens real ones.
func NewWithConns(c Conns, opts Options) (*Responder, error) {
	if len(c.HardwareAddr) != macLen {
		return nil, ErrNotEthernet
	}
	if c.ARP == nil && c.NDP == nil {
		return nil, ErrNoConns
	}
	if c.IPv6Source.IsValid() && (!c.IPv6Source.Is6() || c.IPv6Source.Is4In6() || c.IPv6Source.IsMulticast()) {
		return nil, fmt.Errorf("l2: IPv6 source %s: %w", c.IPv6Source, ErrInvalidAddr)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{
		log:        log,
		hw:         slices.Clone(c.HardwareAddr),
		arp:        c.ARP,
		ndp:        c.NDP,
		count:      opts.AnnounceCount,
		interval:   opts.AnnounceInterval,
		reannounce: opts.ReannounceInterval,
		pending:    map[netip.Addr]struct{}{},
		groups:     map[[macLen]byte]bool{},
		wake:       make(chan struct{}, 1),
	}
	r.me.mac = [macLen]byte(c.HardwareAddr)
	r.me.src6 = c.IPv6Source.WithZone("")
	if r.count == 0 {
		r.count = DefaultAnnounceCount
	}
	if r.interval <= 0 {
		r.interval = DefaultAnnounceInterval
	}
	if r.reannounce == 0 {
		r.reannounce = DefaultReannounceInterval
	}
	r.set.Store(emptySet)
	return r, nil
}

// HardwareAddr is the MAC the Responder answers with.
func (r *Responder) HardwareAddr() net.HardwareAddr { return slices.Clone(r.hw) }

// Addrs returns the owned set, sorted; proxied addresses are not in it.
func (r *Responder) Addrs() []netip.Addr { return slices.Clone(r.set.Load().list) }

// Proxied returns a copy of the proxied set, as SetProxied last set it
// (with IPv4-mapped IPv6 addresses unmapped), addresses also owned
// included.
func (r *Responder) Proxied() map[netip.Addr]net.HardwareAddr { return r.set.Load().proxiedMACs() }

// SetAddrs replaces the owned set with addrs (IPv4-mapped IPv6 addresses
// count as IPv4; duplicates are fine). The new set is answered for from
// the next frame on. Each address that was not in the previous set is
// announced (see Options), now if Run is running or else when it starts;
// an address that stays gets nothing new, and one that leaves is simply no
// longer answered (see "Withdrawing an address" in the package doc).
//
// If any address is invalid (ErrInvalidAddr) or of a family without a
// socket (ErrFamily), SetAddrs changes nothing and returns an error naming
// each. An error joining or leaving a solicited-node group is returned
// too, but the set is in effect: unicast solicitations are still answered,
// and the join is retried by the next SetAddrs.
//
// An address also proxied (SetProxied) is answered as owned while it is
// owned, and as proxied again once it is not.
func (r *Responder) SetAddrs(addrs []netip.Addr) error {
	owned, err := validOwned(addrs, r.serves)
	if err != nil {
		return fmt.Errorf("l2: set addresses: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	old := r.set.Load()
	set := old.withOwned(owned, r.me.mac)
	r.set.Store(set)
	added := set.added(old)
	for _, a := range added {
		r.pending[a] = struct{}{}
	}
	if len(added) > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	if removed := old.added(set); len(added) > 0 || len(removed) > 0 {
		r.log.Debug("owned addresses changed", "addrs", set.list, "added", added, "removed", removed)
	}
	if err := r.syncGroups(set); err != nil {
		return fmt.Errorf("l2: set addresses: %w", err)
	}
	return nil
}

// SetProxied replaces the set of addresses r answers for on behalf of
// another host: an ARP request or Neighbor Solicitation for one of addrs
// gets an answer naming its MAC (as the ARP sender hardware address, or in
// the Target Link-Layer Address option) instead of r's, in a frame that
// is still from r's MAC. A speaker calls it while a peer restarts: the
// peer keeps its addresses and forwards their traffic, and its clients
// must keep resolving them to the peer, not to whoever answers. It serves
// the new set from the next frame on and joins the solicited-node groups
// of its IPv6 addresses, as SetAddrs does.
//
// Proxied addresses are never announced, neither now nor periodically:
// the clients that have one cached already hold the peer's MAC, and the
// peer announces again when it is back. An address both owned (SetAddrs)
// and proxied is answered as owned, with r's MAC.
//
// Addresses are validated as by SetAddrs; a MAC must be a 6-byte unicast
// Ethernet address (ErrInvalidMAC). If any entry is invalid, SetProxied
// changes nothing and returns an error naming each address. Errors joining
// or leaving groups are as for SetAddrs.
func (r *Responder) SetProxied(addrs map[netip.Addr]net.HardwareAddr) error {
	proxied, err := validProxied(addrs, r.serves)
	if err != nil {
		return fmt.Errorf("l2: set proxied addresses: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	old := r.set.Load()
	if maps.Equal(proxied, old.proxied) {
		// The speaker sets the proxied addresses at every sync, and they
		// seldom change (a peer restarting): rebuilding the whole set
		// for nothing would double each sync's work here. A group join
		// that failed is retried by the next SetAddrs.
		return nil
	}
	set := old.withProxied(proxied, r.me.mac)
	r.set.Store(set)
	r.log.Debug("proxied addresses set", "proxied", len(proxied))
	if err := r.syncGroups(set); err != nil {
		return fmt.Errorf("l2: set proxied addresses: %w", err)
	}
	return nil
}

func (r *Responder) serves(a netip.Addr) bool {
	if a.Is4() {
		return r.arp != nil
	}
	return r.ndp != nil
}

// syncGroups joins the solicited-node Ethernet group of every IPv6 address
// in set, owned or proxied, and leaves the others, if the NDP socket can.
// Called with r.mu held.
func (r *Responder) syncGroups(set *addrSet) error {
	j, ok := r.ndp.(groupJoiner)
	if !ok {
		return nil
	}
	want := map[[macLen]byte]bool{}
	for a := range set.m {
		if a.Is6() {
			want[solicitedNodeMAC(a)] = true
		}
	}
	var errs []error
	for g := range r.groups {
		if !want[g] {
			if err := j.LeaveGroup(g[:]); err != nil {
				errs = append(errs, fmt.Errorf("leave group %s: %w", net.HardwareAddr(g[:]), err))
				continue
			}
			delete(r.groups, g)
		}
	}
	for g := range want {
		if !r.groups[g] {
			if err := j.JoinGroup(g[:]); err != nil {
				errs = append(errs, fmt.Errorf("join group %s: %w", net.HardwareAddr(g[:]), err))
				continue
			}
			r.groups[g] = true
		}
	}
	return errors.Join(errs...)
}

// takePending returns the addresses waiting for their first announcement,
// sorted, and forgets them.
func (r *Responder) takePending() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.Addr, 0, len(r.pending))
	for a := range r.pending {
		out = append(out, a)
	}
	clear(r.pending)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Run answers requests and sends announcements until ctx is done, then
// waits for its goroutines, closes the sockets and returns nil. It returns
// early with an error if a socket is closed under it (ErrClosed, after
// Close). On the sockets from New, it returns up to readTimeout (250 ms)
// after ctx ends or Close (see rawsock.go). Transient socket errors, such as the interface going down, are
// counted and logged, and Run carries on. Run may be called once.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.Close()
	r.mu.Lock()
	closed = r.closed   // Close may have come in between
	r.rawBusy = !closed // the readers' sockets stay open until they are done
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Wake the readers when ctx ends: a read deadline in the past fails
	// their pending and every later read; a raw socket's read sees its
	// stop flag within readTimeout.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range r.conns() {
			c.SetReadDeadline(time.Unix(1, 0))
		}
		r.stopRaw()
	})
	defer stop()

	var wg sync.WaitGroup
	var errARP, errNDP error
	if r.arp != nil {
		rw := r.frameIO(r.arp, r.rawARP)
		wg.Go(func() {
			if errARP = r.serve(ctx, rw, answerARP, &r.stats.arp); errARP != nil {
				cancel()
			}
		})
	}
	if r.ndp != nil {
		rw := r.frameIO(r.ndp, r.rawNDP)
		wg.Go(func() {
			if errNDP = r.serve(ctx, rw, answerNS, &r.stats.ndp); errNDP != nil {
				cancel()
			}
		})
	}
	wg.Go(func() { r.announce(ctx) })
	wg.Wait()
	r.mu.Lock()
	r.rawBusy = false
	r.mu.Unlock()
	return errors.Join(errARP, errNDP)
}

// Close closes the sockets, which stops a running Run with ErrClosed.
// Later calls to SetAddrs, SetProxied and Run return ErrClosed. It is
// idempotent.
func (r *Responder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.stopRaw()
		var errs []error
		for _, c := range r.conns() {
			errs = append(errs, c.Close())
		}
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("l2: close: %w", err)
		}
	})
	r.closeRaw()
	return r.closeErr
}

func (r *Responder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// stopRaw makes the raw sockets' reads return errStopped.
func (r *Responder) stopRaw() {
	for _, s := range []*rawSocket{r.rawARP, r.rawNDP} {
		if s != nil {
			s.stop.Store(true)
		}
	}
}

// closeRaw closes the raw sockets after Close, once no reader uses them:
// closing a descriptor that a read is blocked on would not wake the read,
// and the number could be reused under it. Run calls it (through Close)
// when its readers are done.
func (r *Responder) closeRaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed || r.rawBusy || r.rawClosed {
		return
	}
	r.rawClosed = true
	for _, s := range []*rawSocket{r.rawARP, r.rawNDP} {
		if s != nil {
			s.close()
		}
	}
}

func (r *Responder) conns() []net.PacketConn {
	var cs []net.PacketConn
	if r.arp != nil {
		cs = append(cs, r.arp)
	}
	if r.ndp != nil {
		cs = append(cs, r.ndp)
	}
	return cs
}

// answerFunc is answerARP or answerNS.
type answerFunc func(set *addrSet, me *self, in, out []byte) (int, verdict)

// Buffer sizes: a whole standard frame in, the largest answer out.
const (
	readBufLen = 1 << 11
	outBufLen  = max(arpFrameLen, naFrameLen)
)

// frameIO is where serve reads requests and writes replies: a rawSocket,
// or a net.PacketConn through connIO.
type frameIO interface {
	// read blocks until a frame arrives and copies it into b.
	read(b []byte) (int, error)
	// write sends the frame b to its Ethernet destination.
	write(b []byte) error
}

// frameIO returns raw if New opened it, else conn.
func (r *Responder) frameIO(conn net.PacketConn, raw *rawSocket) frameIO {
	if raw != nil {
		return raw
	}
	return &connIO{conn: conn, to: &packet.Addr{HardwareAddr: make(net.HardwareAddr, macLen)}}
}

// connIO reads and writes frames through any net.PacketConn, such as the
// tests' fakes.
type connIO struct {
	conn net.PacketConn
	to   *packet.Addr // reused for every write
}

func (c *connIO) read(b []byte) (int, error) {
	n, _, err := c.conn.ReadFrom(b)
	return n, err
}

func (c *connIO) write(b []byte) error {
	copy(c.to.HardwareAddr, b[0:macLen])
	_, err := c.conn.WriteTo(b, c.to)
	return err
}

// serve is the hot path: read a frame, answer it from the current set,
// write the answer, with nothing in between that locks or allocates.
func (r *Responder) serve(ctx context.Context, rw frameIO, answer answerFunc, c *counters) error {
	in := make([]byte, readBufLen)
	out := make([]byte, outBufLen)
	var backoff time.Duration
	for {
		n, err := rw.read(in)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A packet.Conn closed under its reader fails it with EBADF or
			// "use of closed file" rather than net.ErrClosed, hence the
			// look at r.closed.
			if errors.Is(err, net.ErrClosed) || errors.Is(err, errStopped) || r.isClosed() {
				return ErrClosed
			}
			// ENETDOWN while the link is down, and the like: carry on
			// once it is back, without spinning meanwhile.
			c.errors.Add(1)
			if backoff == 0 {
				r.log.Warn("reading frames", "error", err)
			}
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if backoff != 0 {
			r.log.Info("reading frames again")
			backoff = 0
		}
		m, v := answer(r.set.Load(), &r.me, in[:n], out)
		c.count(v)
		if m == 0 {
			continue
		}
		if err := rw.write(out[:m]); err != nil {
			c.errors.Add(1)
			r.log.Debug("sending reply", "error", err)
			continue
		}
		c.replies.Add(1)
	}
}
