package labnet

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Options shapes a lab. The zero value is a three-node LAN without
// strictARP, logs in a temporary directory, and a signal handler.
type Options struct {
	// Nodes is the number of node-N hosts, 1 to MaxNodes; 0 means 3.
	Nodes int
	// StrictARP chooses how a node treats ARP for service IPs on its lo
	// (see Host.AddServiceIP): true is kube-proxy IPVS with strictARP
	// (arp_ignore=1, arp_announce=2: the kernel stays silent and only
	// ironlb answers), false the kernel defaults (every node holding the
	// address answers).
	StrictARP bool
	// Dir receives process logs, in a subdirectory "lab-<suffix>" so
	// that several labs can share it. Empty means a new temporary
	// directory that Close removes; a directory given here, and the
	// subdirectory, are created if needed and never removed.
	Dir string
	// Logger receives the lab's own progress; nil discards it.
	Logger *slog.Logger
	// NoSignalHandler leaves SIGINT and SIGTERM alone. Set it in programs
	// (such as the demo) that handle signals themselves and call Close;
	// the default handler closes every lab and re-raises the signal.
	NoSignalHandler bool
	// StopGrace is how long Process.Stop waits between SIGTERM and
	// SIGKILL; 0 means five seconds.
	StopGrace time.Duration
}

func (o Options) nodes() int {
	if o.Nodes == 0 {
		return 3
	}
	return o.Nodes
}

func (o Options) stopGrace() time.Duration {
	if o.StopGrace == 0 {
		return defaultStopGrace
	}
	return o.StopGrace
}

// Lab is a LAN of network namespaces: a bridge in a switch namespace and
// the hosts cp, node-1..N and client. Create one with New and always Close
// it. Its methods, and its hosts', are safe for concurrent use.
type Lab struct {
	opts    Options
	log     *slog.Logger
	suffix  string
	dir     string
	ownsDir bool
	ipPath  string
	spawn   *spawner
	seq     atomic.Int64 // numbers log files

	swNS   string // switch namespace name
	swFd   netns.NsHandle
	swNL   *netlink.Handle
	bridge netlink.Link

	hosts  []*Host // every host, in creation order
	cp     *Host
	nodes  []*Host
	client *Host
	router *Router // set by AddRouter

	// buildMu is held by New while it builds, so a signal-driven Close
	// waits for a consistent lab instead of racing the builder.
	buildMu sync.Mutex

	mu         sync.Mutex
	closed     bool
	namespaces []string // created, in order
	procs      map[*Process]bool
	closers    map[any]func() error // servers and probers

	closeOnce sync.Once
	closeErr  error
}

// New builds a lab: it sweeps the leftovers of crashed labs (see Sweep),
// reserves a unique suffix, creates the switch and host namespaces, wires
// them to the bridge and numbers them. On error it removes whatever it had
// created. The caller must Close the lab; tests use NewForTest, which does.
//
// Unless opts.NoSignalHandler is set, SIGINT and SIGTERM close every open
// lab of the process and are then re-raised with their default action; this
// replaces, while labs are open, any other handling of those signals in the
// process (see Options.NoSignalHandler).
func New(opts Options) (*Lab, error) {
	n := opts.nodes()
	if n < 1 || n > MaxNodes {
		return nil, fmt.Errorf("lab: %d nodes, want 1 to %d", n, MaxNodes)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("lab: iproute2 is needed: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if swept, err := Sweep(); err != nil {
		log.Warn("sweeping crashed labs", "error", err)
	} else if len(swept) > 0 {
		log.Info("swept namespaces of crashed labs", "namespaces", swept)
	}
	// cp, the client and a router besides the nodes.
	if err := raiseNeighbourLimits(n+3, log); err != nil {
		log.Warn("a lab this large may overflow the kernel's neighbour tables", "nodes", n, "error", err)
	}
	suffix, m, err := reserveMarker()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l := &Lab{
		opts:    opts,
		log:     log.With("lab", suffix),
		suffix:  suffix,
		ipPath:  ipPath,
		procs:   map[*Process]bool{},
		closers: map[any]func() error{},
	}
	l.buildMu.Lock()
	if !opts.NoSignalHandler {
		registerSignals(l)
	}
	err = l.build(m)
	l.buildMu.Unlock()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lab: %w", err), l.Close())
	}
	l.log.Info("lab ready", "nodes", n, "dir", l.dir, "switch", l.swNS)
	return l, nil
}

// build creates the log directory, the switch and the hosts.
func (l *Lab) build(m marker) error {
	if l.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ironlb-lab-"+l.suffix+"-")
		if err != nil {
			return fmt.Errorf("create log directory: %w", err)
		}
		l.dir, l.ownsDir = dir, true
	} else {
		l.dir = filepath.Join(l.opts.Dir, "lab-"+l.suffix)
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return fmt.Errorf("create log directory: %w", err)
		}
	}
	m.Dir, m.OwnsDir = l.dir, l.ownsDir
	if err := writeMarker(l.suffix, m); err != nil {
		return err
	}
	l.spawn = newSpawner()

	if err := l.buildSwitch(); err != nil {
		return err
	}
	var err error
	if l.cp, err = l.addHost("cp", cpHostNum); err != nil {
		return err
	}
	for i := 1; i <= l.opts.nodes(); i++ {
		h, err := l.addHost(nodeName(i), nodeHostNum(i))
		if err != nil {
			return err
		}
		l.nodes = append(l.nodes, h)
	}
	if l.client, err = l.addHost("client", clientHostNum); err != nil {
		return err
	}
	for _, h := range l.hosts {
		if err := h.waitUp(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every server, prober and process the lab started, deletes
// its namespaces (and with them the veths and the bridge), removes its
// marker and, if the lab created it, its log directory. It is idempotent
// and safe to call concurrently; every call returns the first call's error.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.buildMu.Lock()
	defer l.buildMu.Unlock()
	l.mu.Lock()
	l.closed = true
	closers := make([]func() error, 0, len(l.closers))
	for _, c := range l.closers {
		closers = append(closers, c)
	}
	procs := make([]*Process, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	namespaces := slices.Clone(l.namespaces)
	l.mu.Unlock()

	var errs []error
	for _, c := range closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	var wg sync.WaitGroup
	perr := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { perr[i] = p.Stop() })
	}
	wg.Wait()
	errs = append(errs, perr...)
	if l.spawn != nil {
		l.spawn.close()
	}

	// Our own netlink sockets and namespace file descriptors would keep
	// the namespaces alive after their names are gone.
	for _, h := range l.hosts {
		h.release()
	}
	if l.swNL != nil {
		l.swNL.Close()
	}
	if l.swFd.IsOpen() {
		l.swFd.Close()
	}
	// Hosts first: deleting a host namespace deletes its veth, whose peer
	// is the bridge port, so the switch goes last and empty.
	for _, name := range slices.Backward(namespaces) {
		if err := delNetns(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(markerPath(l.suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove marker: %w", err))
	}
	if l.ownsDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove log directory: %w", err))
		}
	}
	if !l.opts.NoSignalHandler {
		unregisterSignals(l)
	}
	l.log.Info("lab closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %s: %w", l.suffix, err)
	}
	return nil
}

// Suffix is the unique part of the lab's namespace names.
func (l *Lab) Suffix() string { return l.suffix }

// Dir is where process logs go.
func (l *Lab) Dir() string { return l.dir }

// SwitchNS is the name of the namespace holding the bridge, for debugging
// (`ip netns exec NAME bridge fdb`).
func (l *Lab) SwitchNS() string { return l.swNS }

// Namespaces lists the names of every namespace the lab created.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// CP is the control-plane host (198.51.100.2).
func (l *Lab) CP() *Host { return l.cp }

// Client is the user's machine on the LAN (198.51.100.100), from which
// measurements are taken.
func (l *Lab) Client() *Host { return l.client }

// Node returns node-i, counting from 1 like the host names, so Node(2) is
// node-2 (198.51.100.12). It panics if i is out of range, like an index.
func (l *Lab) Node(i int) *Host {
	if i < 1 || i > len(l.nodes) {
		panic(fmt.Sprintf("lab: Node(%d) out of range: the lab has nodes 1 to %d", i, len(l.nodes)))
	}
	return l.nodes[i-1]
}

// Nodes returns node-1..N in order.
func (l *Lab) Nodes() []*Host { return slices.Clone(l.nodes) }

// Hosts returns every host: cp, the nodes and client.
func (l *Lab) Hosts() []*Host { return slices.Clone(l.hosts) }

// addNamespace records and creates a namespace; recording first means a
// failure halfway still gets it deleted.
func (l *Lab) addNamespace(name string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errClosed
	}
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	return addNetns(name)
}

func (l *Lab) addProcess(p *Process) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	l.procs[p] = true
	return nil
}

func (l *Lab) removeProcess(p *Process) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.procs, p)
}

// addCloser makes Close call c (once) for key, unless removeCloser ran.
func (l *Lab) addCloser(key any, c func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	l.closers[key] = c
	return nil
}

func (l *Lab) removeCloser(key any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.closers, key)
}
