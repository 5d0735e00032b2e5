// Package labcluster gives a test a cluster in the lab: on a lab network
// (internal/labnet), a control plane in the cp host, `ironlb controller`
// beside it and `ironlb speaker` in every node host, with backends on the
// nodes standing in for IPVS kube-proxy with strictARP. The end-to-end
// tests, the failover benchmark and the demo all drive ironlb through it.
//
// The other harnesses give less: internal/labnet the network alone (hosts,
// probes, routers, a control plane when asked), internal/apiservertest an
// API server with no network at all, internal/deptest no process, only
// the dependency rules.
package labcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/internal/labnet"
)

// Ports the backends serve on each service address.
const (
	HTTPPort = 80
	UDPPort  = 9000
)

// Options configures Start.
type Options struct {
	// Lab are the lab's options; StrictARP is forced on (service addresses
	// sit on the nodes' lo, as with IPVS kube-proxy and strictARP).
	Lab labnet.Options
	// Bin is the ironlb binary; default <repo>/bin/ironlb.
	Bin string
	// SpeakerBin runs the speakers; default ironlb-speaker beside Bin
	// (`make build` writes it, and the DaemonSet runs it), or Bin itself
	// if there is none.
	SpeakerBin string
	// ControllerArgs and SpeakerArgs are added to the daemons' flags.
	ControllerArgs, SpeakerArgs []string
	// NoSpeakers starts no speaker (call StartSpeaker).
	NoSpeakers bool
	// AuditLog has the API server write an audit log of every request
	// that is not a read (AuditEvents), so a test can tell who wrote what
	// and when.
	AuditLog bool
}

// Cluster is ironlb running in a lab. Close it.
type Cluster struct {
	Lab        *labnet.Lab
	CP         *labnet.ControlPlane
	Client     client.Client
	Controller *labnet.Process

	bin, speakerBin             string
	speakerArgs, controllerArgs []string
	auditLog                    string // its path, "" if off

	mu       sync.Mutex
	speakers map[string]*labnet.Process
}

// Start builds the lab, starts the control plane, the controller and a
// speaker on every node.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	bin := opts.Bin
	if bin == "" {
		root, err := apiservertest.RepoRoot()
		if err != nil {
			return nil, err
		}
		bin = filepath.Join(root, "bin", "ironlb")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: run `make build`", bin)
	}
	speakerBin := opts.SpeakerBin
	if speakerBin == "" {
		speakerBin = filepath.Join(filepath.Dir(bin), "ironlb-speaker")
		if _, err := os.Stat(speakerBin); err != nil {
			speakerBin = bin
		}
	}
	opts.Lab.StrictARP = true
	l, err := labnet.New(opts.Lab)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	// The control plane runs until the lab's Close; ctx ending during the
	// start aborts it.
	cpCtx, abort := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, abort)
	var cpOpts labnet.ControlPlaneOptions
	auditLog := ""
	if opts.AuditLog {
		if cpOpts.APIServerArgs, auditLog, err = auditArgs(l.Dir()); err != nil {
			return nil, err
		}
	}
	cp, err := l.StartControlPlane(cpCtx, cpOpts)
	if !stop() {
		err = errors.Join(err, fmt.Errorf("start the control plane: %w", ctx.Err()))
	}
	if err != nil {
		return nil, err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: kubecr.Scheme()})
	if err != nil {
		return nil, err
	}
	cl := &Cluster{Lab: l, CP: cp, Client: c, bin: bin, speakerBin: speakerBin, speakerArgs: opts.SpeakerArgs, controllerArgs: opts.ControllerArgs,
		auditLog: auditLog, speakers: map[string]*labnet.Process{}}
	if err := cl.RespawnController(); err != nil {
		return nil, err
	}
	if !opts.NoSpeakers {
		for _, h := range l.Nodes() {
			if _, err := cl.StartSpeaker(h.Name); err != nil {
				return nil, err
			}
		}
	}
	return cl, nil
}

// Close stops ironlb's daemons (all at once, each with SIGTERM and the
// lab's stop grace), then the control plane, and removes the lab. The
// daemons go first so that they shut down cleanly while the API server is
// still there.
func (c *Cluster) Close() error {
	c.mu.Lock()
	procs := []*labnet.Process{c.Controller}
	for _, p := range c.speakers {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		if p != nil {
			wg.Go(func() { errs[i] = p.Stop() })
		}
	}
	wg.Wait()
	return errors.Join(append(errs, c.Lab.Close())...)
}

// StartController starts a controller in the cp host, with the cluster's
// controller flags and then args (a later flag wins). It does not replace
// Controller, which Close stops: stop the ones you start.
func (c *Cluster) StartController(args ...string) (*labnet.Process, error) {
	args = append(append([]string{"controller", "--kubeconfig", c.CP.Kubeconfig,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-level=debug"}, c.controllerArgs...), args...)
	return c.Lab.CP().Start(context.Background(), c.bin, args...)
}

// RestartController stops Controller (SIGTERM) and starts it again with
// the same flags, as a rollout of its Deployment does.
func (c *Cluster) RestartController() error {
	if err := c.Controller.Stop(); err != nil {
		return fmt.Errorf("stop the controller: %w", err)
	}
	return c.RespawnController()
}

// RespawnController starts a controller with the cluster's controller
// flags and without leader election, and makes it Controller, as a
// Deployment's ReplicaSet replaces a pod that died. It does not stop the
// one it replaces: Stop or Kill that first.
func (c *Cluster) RespawnController() error {
	p, err := c.StartController("--leader-elect=false")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.Controller = p
	c.mu.Unlock()
	return nil
}

// SpeakerBin is the binary the speakers run (Options.SpeakerBin).
func (c *Cluster) SpeakerBin() string { return c.speakerBin }

// StartSpeaker starts the speaker of node name, with extra flags.
func (c *Cluster) StartSpeaker(name string, args ...string) (*labnet.Process, error) {
	h, err := c.Host(name)
	if err != nil {
		return nil, err
	}
	args = append(append([]string{"speaker", "--node-name", name, "--kubeconfig", c.CP.Kubeconfig,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-level=debug"}, c.speakerArgs...), args...)
	p, err := h.Start(context.Background(), c.speakerBin, args...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.speakers[name] = p
	c.mu.Unlock()
	return p, nil
}

// StopSpeakers stops every node's last speaker that is still running, all
// at once (each with SIGTERM and the lab's stop grace), as a benchmark does
// between runs.
func (c *Cluster) StopSpeakers() error {
	c.mu.Lock()
	var procs []*labnet.Process
	for _, p := range c.speakers {
		procs = append(procs, p)
	}
	c.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Speaker is the last speaker process started on node name.
func (c *Cluster) Speaker(name string) *labnet.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.speakers[name]
}

// Host returns the lab host called name.
func (c *Cluster) Host(name string) (*labnet.Host, error) {
	for _, h := range c.Lab.Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("no host %s in the lab", name)
}

// Backends puts ip on every node's lo (as IPVS kube-proxy does) and
// serves HTTP on HTTPPort and UDP echo on UDPPort there, each answering
// with the node's name. They stop with the lab.
func (c *Cluster) Backends(ctx context.Context, ip netip.Addr) error {
	for _, h := range c.Lab.Nodes() {
		if err := h.AddServiceIP(ip); err != nil {
			return err
		}
		// A new IPv6 address takes a moment before it can be bound.
		err := Eventually(ctx, 5*time.Second, func() error {
			_, err := h.ServeHTTP(context.Background(), ip, HTTPPort)
			return err
		})
		if err != nil {
			return err
		}
		if _, err := h.ServeUDPEcho(context.Background(), ip, UDPPort); err != nil {
			return err
		}
	}
	return nil
}

// Announcer is what the ServiceAnnouncement of ns/name says of ip.
func (c *Cluster) Announcer(ctx context.Context, ns, name string, ip netip.Addr) (v1alpha1.Announcer, error) {
	var a v1alpha1.ServiceAnnouncement
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &a); err != nil {
		return v1alpha1.Announcer{}, err
	}
	for _, e := range a.Status.Announcers {
		if e.IP == ip.String() {
			return e, nil
		}
	}
	return v1alpha1.Announcer{}, fmt.Errorf("%s not in %+v", ip, a.Status.Announcers)
}

// WaitAnnouncer waits until a node announces ip for ns/name.
func (c *Cluster) WaitAnnouncer(ctx context.Context, ns, name string, ip netip.Addr, timeout time.Duration) (v1alpha1.Announcer, error) {
	var got v1alpha1.Announcer
	err := Eventually(ctx, timeout, func() (err error) {
		got, err = c.Announcer(ctx, ns, name, ip)
		if err == nil && got.Node == "" {
			err = fmt.Errorf("no announcer: %s", got.Reason)
		}
		return err
	})
	return got, err
}

// Resolve sends one ARP request (IPv4) or Neighbor Solicitation (IPv6)
// for ip from the client and returns the MAC of every answer within
// 300 ms.
func (c *Cluster) Resolve(ctx context.Context, ip netip.Addr) ([]string, error) {
	return c.resolve(ctx, ip, 300*time.Millisecond)
}

// resolve is Resolve, collecting answers for window.
func (c *Cluster) resolve(ctx context.Context, ip netip.Addr, window time.Duration) ([]string, error) {
	cl := c.Lab.Client()
	var macs []net.HardwareAddr
	var err error
	if ip.Is4() {
		macs, err = cl.ARPRequest(ctx, cl.IfName, ip, window)
	} else {
		macs, err = cl.NDPSolicit(ctx, cl.IfName, ip, window)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ip, err)
	}
	out := make([]string, 0, len(macs))
	for _, m := range macs {
		out = append(out, m.String())
	}
	return out, nil
}

// NodeMAC is the MAC of node's LAN interface, "" if there is no such node.
func (c *Cluster) NodeMAC(node string) string {
	h, err := c.Host(node)
	if err != nil {
		return ""
	}
	return h.MAC.String()
}

// Get fetches http://ip/ from the client and returns the body: the name
// of the node that answered.
func (c *Cluster) Get(ip netip.Addr) (string, error) {
	hc := c.Lab.Client().HTTPClient()
	hc.Timeout = 2 * time.Second
	resp, err := hc.Get("http://" + netip.AddrPortFrom(ip, HTTPPort).String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", err
	}
	return string(trimNewline(b)), nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Eventually calls f every 50 ms until it returns nil, timeout passes or
// ctx ends; then it returns f's last error.
func Eventually(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not the case after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CutGossip firewalls node's memberlist port (7946, UDP and TCP, both
// directions) in its own network namespace, so its speaker can neither
// gossip nor fall back to TCP pings while its LAN works. It returns the
// function that heals the cut; calling it again does nothing.
func (c *Cluster) CutGossip(ctx context.Context, node string) (heal func() error, err error) {
	return c.firewall(ctx, node, "gossipcut", "7946", netip.Addr{})
}

// CutGossipBetween firewalls the memberlist port between nodes a and b
// only (in a's namespace, both directions): each still gossips with every
// other node.
func (c *Cluster) CutGossipBetween(ctx context.Context, a, b string) (heal func() error, err error) {
	hb, err := c.Host(b)
	if err != nil {
		return nil, err
	}
	return c.firewall(ctx, a, "gossipcut-"+b, "7946", hb.IPv4)
}

// CutAPIServer firewalls node off the API server's port, both ways, while
// its LAN and gossip work: the node's speaker keeps its last view of the
// cluster and cannot renew anything.
func (c *Cluster) CutAPIServer(ctx context.Context, node string) (heal func() error, err error) {
	return c.firewall(ctx, node, "apicut", fmt.Sprint(labnet.APIServerPort), netip.Addr{})
}

// firewall drops, in node's namespace, every TCP and UDP packet to or
// from port (exchanged with peer only, if it is valid), in a table of its
// own, and returns the function that deletes the table.
func (c *Cluster) firewall(ctx context.Context, node, table, port string, peer netip.Addr) (func() error, error) {
	return c.nftTable(ctx, node, "inet", table, func(chain string) [][]string {
		var match []string
		if peer.IsValid() {
			match = []string{"ip", map[string]string{"in": "saddr", "out": "daddr"}[chain], peer.String()}
		}
		var rules [][]string
		for _, proto := range []string{"udp", "tcp"} {
			for _, dir := range []string{"dport", "sport"} {
				rules = append(rules, append(slices.Clone(match), proto, dir, port, "drop"))
			}
		}
		return rules
	})
}

// nftTable makes, in node's namespace, a table of family with an input
// chain "in" and an output chain "out", adds to each the rules rules gives
// for it, and returns the function that deletes the table (once; calling
// it again does nothing).
func (c *Cluster) nftTable(ctx context.Context, node, family, table string, rules func(chain string) [][]string) (func() error, error) {
	h, err := c.Host(node)
	if err != nil {
		return nil, err
	}
	nft := func(args ...string) error {
		_, err := h.Run(ctx, "nft", args...)
		return err
	}
	if err := nft("add", "table", family, table); err != nil {
		return nil, err
	}
	healed := false
	heal := func() error {
		if healed {
			return nil
		}
		healed = true
		return nft("delete", "table", family, table)
	}
	for _, chain := range []string{"in { type filter hook input priority 0; }", "out { type filter hook output priority 0; }"} {
		if err := nft("add", "chain", family, table, chain); err != nil {
			return nil, errors.Join(err, heal())
		}
	}
	for _, chain := range []string{"in", "out"} {
		for _, r := range rules(chain) {
			if err := nft(append([]string{"add", "rule", family, table, chain}, r...)...); err != nil {
				return nil, errors.Join(err, heal())
			}
		}
	}
	return heal, nil
}

// StartTest starts a cluster of n nodes for t, its processes' logs kept in
// t's artifact directory, and removes it when t ends, printing the tails
// of the logs first if t failed. It skips t where the lab cannot run
// (labnet.Require).
func StartTest(t *testing.T, n int, opts Options) *Cluster {
	t.Helper()
	labnet.Require(t)
	opts.Lab.Nodes, opts.Lab.Dir = n, t.ArtifactDir()
	if opts.Lab.StopGrace == 0 {
		opts.Lab.StopGrace = 5 * time.Second
	}
	cl, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			labnet.LogTails(t, cl.Lab.Dir())
		}
		if err := cl.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return cl
}

// Delay holds every IP packet node sends on the LAN for d ± jitter
// (labnet's Host.Delay: netem's delay, which the lab's kernel lacks),
// until heal.
func (c *Cluster) Delay(ctx context.Context, node string, d, jitter time.Duration) (heal func() error, err error) {
	h, err := c.Host(node)
	if err != nil {
		return nil, err
	}
	stop, err := h.Delay(ctx, d, jitter, 0)
	if err != nil {
		return nil, err
	}
	return func() error { _, err := stop(); return err }, nil
}

// RandomLoss drops percent of the packets node receives and sends (IP and
// ARP alike), at random, in its own network namespace, and returns the
// function that stops it. The kernels this lab runs on may lack netem
// (sch_netem), so loss is nftables' random numbers (see Delay for the
// delay).
func (c *Cluster) RandomLoss(ctx context.Context, node string, percent int) (heal func() error, err error) {
	drop := func(string) [][]string {
		return [][]string{{"numgen", "random", "mod", "100", "<", fmt.Sprint(percent), "drop"}}
	}
	healIP, err := c.nftTable(ctx, node, "inet", "randomloss", drop)
	if err != nil {
		return nil, err
	}
	healARP, err := c.nftTable(ctx, node, "arp", "randomloss", drop)
	if err != nil {
		return nil, errors.Join(err, healIP())
	}
	return func() error { return errors.Join(healIP(), healARP()) }, nil
}

// SpeakerLogMarks returns how far the log of every speaker but except's
// has come, for WaitJoined.
func (c *Cluster) SpeakerLogMarks(except string) map[string]int64 {
	marks := map[string]int64{}
	for _, n := range c.Lab.Nodes() {
		if n.Name != except {
			marks[n.Name] = c.Speaker(n.Name).LogSize()
		}
	}
	return marks
}

// WaitJoined waits, up to timeout, until the speaker of every node in
// marks has logged node's joining the membership after the offset marks
// gives its log (SpeakerLogMarks, taken before node's speaker started).
func (c *Cluster) WaitJoined(ctx context.Context, node string, marks map[string]int64, timeout time.Duration) error {
	joined := regexp.MustCompile(`msg="member alive".* member=` + regexp.QuoteMeta(node) + `( |$)`)
	seen := map[string]bool{}
	return Eventually(ctx, timeout, func() error {
		for other, off := range marks {
			if seen[other] {
				continue
			}
			text, err := c.Speaker(other).LogSince(off)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(strings.Split(text, "\n"), joined.MatchString) {
				return fmt.Errorf("%s has not seen %s join (%d of %d have)", other, node, len(seen), len(marks))
			}
			seen[other] = true
		}
		return nil
	})
}
