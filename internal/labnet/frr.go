package labnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// frrDir holds FRR's daemons in Debian's frr package.
const frrDir = "/usr/lib/frr"

// FRR is FRRouting (zebra, bgpd and bfdd from Debian's frr package) running
// on the lab's router. Each instance keeps its configuration, sockets and
// PID files in its own directory and talks to no system-wide FRR (no
// /etc/frr, no frr service), so labs run in parallel. zebra installs the
// routes bgpd selects, ECMP included, into the router's kernel table.
type FRR struct {
	router *Router
	dir    string
	procs  []*Process // zebra, bfdd, bgpd
}

var _ RouterDaemon = (*FRR)(nil)

// StartFRR starts zebra, bfdd and bgpd on the router with cfg and returns
// once bgpd answers vtysh. The daemons run as the frr user (FRR insists
// that its vty sockets belong to group frrvty), from configuration files in
// a directory of their own; Stop or the lab's Close stops them.
func (r *Router) StartFRR(ctx context.Context, cfg RouterConfig) (*FRR, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("lab: start FRR: %w", err)
	}
	f, err := r.startFRR(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab: start FRR: %w", err)
	}
	return f, nil
}

func (r *Router) startFRR(ctx context.Context, cfg RouterConfig) (*FRR, error) {
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat(filepath.Join(frrDir, d)); err != nil {
			return nil, fmt.Errorf("FRR is needed (apt-get install frr): %w", err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		return nil, fmt.Errorf("FRR's vtysh is needed (apt-get install frr): %w", err)
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("the frr user (made by the frr package) is needed: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	if err := r.addListenAddress(cfg); err != nil {
		return nil, err
	}
	dir, err := r.newDaemonDir("frr")
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	f := &FRR{router: r, dir: dir}
	confs := map[string]string{
		"zebra": frrZebraConf(cfg),
		"bfdd":  frrBFDConf(cfg),
		"bgpd":  frrBGPConf(cfg, r.Host),
	}
	for _, d := range []string{"zebra", "bfdd", "bgpd"} {
		conf := filepath.Join(dir, d+".conf")
		if err := os.WriteFile(conf, []byte(confs[d]), 0o644); err != nil {
			return nil, err
		}
		args := []string{
			"-f", conf,
			"-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"),
			"--vty_socket", dir,
			"-u", "frr", "-g", "frr",
			"-P", "0", // no vty over TCP
			"--log", "stdout",
		}
		switch {
		case d == "bfdd":
			args = append(args, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
		case d == "bgpd" && cfg.ListenAddress.IsValid():
			args = append(args, "-l", cfg.ListenAddress.String())
		}
		if d == "bgpd" && cfg.NoKernel {
			args = append(args, "-n")
		}
		p, err := r.Host.Start(context.WithoutCancel(ctx), filepath.Join(frrDir, d), args...)
		if err != nil {
			f.Stop()
			return nil, err
		}
		f.procs = append(f.procs, p)
		r.track(p)
		// bfdd and bgpd connect to zebra's socket; they retry, but
		// waiting for it spares them the retry delay.
		sock := filepath.Join(dir, d+".vty")
		if err := pollDaemon(ctx, 10*time.Second, p, func() error {
			_, err := os.Stat(sock)
			return err
		}); err != nil {
			f.Stop()
			return nil, fmt.Errorf("%s: %w", d, err)
		}
	}
	if err := pollDaemon(ctx, 10*time.Second, f.procs[2], func() error {
		_, err := f.VTY(ctx, "show bgp summary json")
		return err
	}); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// Dir is the directory holding the daemons' configuration, sockets and PID
// files; `vtysh --vty_socket DIR` opens a shell on them.
func (f *FRR) Dir() string { return f.dir }

// Processes returns zebra, bfdd and bgpd, in that order.
func (f *FRR) Processes() []*Process { return slices.Clone(f.procs) }

// VTY runs one vtysh command against this FRR and returns its output.
func (f *FRR) VTY(ctx context.Context, command string) ([]byte, error) {
	out, err := f.router.Host.Run(ctx, "vtysh", "--vty_socket", f.dir, "-c", command)
	if err != nil {
		return out, fmt.Errorf("vtysh -c %q: %w", command, err)
	}
	return out, nil
}

// Stop stops bgpd, bfdd and zebra. zebra removes the routes it installed.
func (f *FRR) Stop() error {
	var errs []error
	for _, p := range slices.Backward(f.procs) {
		errs = append(errs, p.Stop())
	}
	return errors.Join(errs...)
}

func frrZebraConf(cfg RouterConfig) string {
	var b strings.Builder
	b.WriteString("hostname router\n")
	if cfg.Debug {
		b.WriteString("debug zebra rib\n")
	}
	return b.String()
}

func frrBFDConf(cfg RouterConfig) string {
	var b strings.Builder
	if cfg.Debug {
		b.WriteString("debug bfd peer\ndebug bfd zebra\n")
	}
	ms := cfg.BFD.interval().Milliseconds()
	fmt.Fprintf(&b, "bfd\n profile lab\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier %d\n exit\nexit\n",
		ms, ms, cfg.BFD.multiplier())
	return b.String()
}

func frrBGPConf(cfg RouterConfig, h *Host) string {
	var b strings.Builder
	b.WriteString("frr defaults traditional\nhostname router\n")
	if cfg.Debug {
		b.WriteString("debug bgp neighbor-events\ndebug bgp updates\ndebug bgp bfd\n")
	}
	fmt.Fprintf(&b, "router bgp %d\n", cfg.asn())
	fmt.Fprintf(&b, " bgp router-id %s\n", cfg.localV4(h))
	// No policy needed to accept eBGP routes (RFC 8212 is FRR's default),
	// ECMP across neighbours in different ASes too.
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n")
	for _, n := range cfg.Neighbors {
		a := n.Address
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s passive\n", a, n.ASN, a)
		if cfg.ListenAddress.IsValid() {
			fmt.Fprintf(&b, " neighbor %s update-source %s\n", a, cfg.ListenAddress)
		}
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", a, n.Password)
		}
		if n.HoldTime != 0 {
			hold := int(n.HoldTime / time.Second)
			fmt.Fprintf(&b, " neighbor %s timers %d %d\n", a, max(hold/3, 1), hold)
		}
		if n.BFD {
			fmt.Fprintf(&b, " neighbor %s bfd profile lab\n", a)
		}
	}
	for _, fam := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		fmt.Fprintf(&b, " address-family %s unicast\n  maximum-paths 64\n  maximum-paths ibgp 64\n", fam.name)
		for _, n := range cfg.Neighbors {
			if n.Address.Is4() == fam.v4 {
				fmt.Fprintf(&b, "  neighbor %s activate\n", n.Address)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n")
	return b.String()
}

// frrTable is the part of `show bgp <afi> unicast json` the lab reads.
type frrTable struct {
	Routes map[string]json.RawMessage `json:"routes"`
}

// frrPrefix is `show bgp <afi> unicast <prefix> json`.
type frrPrefix struct {
	Prefix string    `json:"prefix"`
	Paths  []frrPath `json:"paths"`
}

// frrPath is one path of a prefix.
type frrPath struct {
	LocPrf    *uint32 `json:"locPrf"`
	LocalPref *uint32 `json:"localpref"`
	Bestpath  *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	ASPath *struct {
		String string `json:"string"`
	} `json:"aspath"`
	Peer *struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
}

// frrDetailBatch bounds the prefixes asked about in one vtysh call.
const frrDetailBatch = 200

// Routes returns bgpd's IPv4 and IPv6 unicast tables with every path. FRR
// 8.4's table view leaves out communities, so it lists the prefixes and
// then asks about each (`show bgp <afi> unicast <prefix> json`), many
// prefixes per vtysh call.
func (f *FRR) Routes(ctx context.Context) ([]BGPRoute, error) {
	var out []BGPRoute
	for _, afi := range []string{"ipv4", "ipv6"} {
		b, err := f.VTY(ctx, "show bgp "+afi+" unicast json")
		if err != nil {
			return nil, err
		}
		var t frrTable
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("FRR %s table: %w", afi, err)
		}
		prefixes := slices.Sorted(maps.Keys(t.Routes))
		for len(prefixes) > 0 {
			n := min(len(prefixes), frrDetailBatch)
			args := []string{"--vty_socket", f.dir}
			for _, p := range prefixes[:n] {
				args = append(args, "-c", "show bgp "+afi+" unicast "+p+" json")
			}
			prefixes = prefixes[n:]
			b, err := f.router.Host.Run(ctx, "vtysh", args...)
			if err != nil {
				return nil, err
			}
			rs, err := parseFRRPrefixes(b)
			if err != nil {
				return nil, fmt.Errorf("FRR %s routes: %w", afi, err)
			}
			out = append(out, rs...)
		}
	}
	sortRoutes(out)
	return out, nil
}

// parseFRRPrefixes reads a stream of `show bgp <afi> unicast <prefix> json`
// objects.
func parseFRRPrefixes(b []byte) ([]BGPRoute, error) {
	var out []BGPRoute
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var fp frrPrefix
		err := dec.Decode(&fp)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if fp.Prefix == "" {
			continue // the prefix vanished meanwhile: FRR prints {}
		}
		pfx, err := netip.ParsePrefix(fp.Prefix)
		if err != nil {
			return nil, fmt.Errorf("prefix %q: %w", fp.Prefix, err)
		}
		r := BGPRoute{Prefix: pfx}
		for _, p := range fp.Paths {
			r.Paths = append(r.Paths, p.toPath())
		}
		out = append(out, r)
	}
}

func (p frrPath) toPath() BGPPath {
	var bp BGPPath
	if p.Peer != nil {
		bp.From, _ = netip.ParseAddr(p.Peer.PeerID)
	}
	for _, nh := range p.Nexthops {
		if a, err := netip.ParseAddr(nh.IP); err == nil && !a.IsLinkLocalUnicast() {
			bp.NextHop = a
			break
		}
	}
	switch {
	case p.LocPrf != nil:
		bp.LocalPref, bp.HasLocalPref = *p.LocPrf, true
	case p.LocalPref != nil:
		bp.LocalPref, bp.HasLocalPref = *p.LocalPref, true
	}
	if p.ASPath != nil && p.ASPath.String != "Local" { // FRR's word for an empty AS_PATH
		bp.ASPath = p.ASPath.String
	}
	if p.Community != nil {
		for _, c := range strings.Fields(p.Community.String) {
			if v, ok := frrWellKnown[c]; ok {
				c = v
			}
			bp.Communities = append(bp.Communities, c)
		}
		slices.Sort(bp.Communities)
	}
	if p.LargeCommunity != nil {
		bp.LargeCommunities = sortedFields(p.LargeCommunity.String)
	}
	bp.Best = p.Bestpath != nil && p.Bestpath.Overall
	return bp
}

// frrWellKnown maps the names FRR prints for well-known communities to
// their values.
var frrWellKnown = map[string]string{
	"graceful-shutdown": "65535:0",
	"accept-own":        "65535:1",
	"llgr-stale":        "65535:6",
	"no-llgr":           "65535:7",
	"blackhole":         "65535:666",
	"no-export":         "65535:65281",
	"no-advertise":      "65535:65282",
	"local-AS":          "65535:65283",
	"no-peer":           "65535:65284",
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return f
}

// frrNeighbor is the part of `show bgp neighbors json` the lab reads.
type frrNeighbor struct {
	BGPState               string `json:"bgpState"`
	BGPTimerUpMsec         int64  `json:"bgpTimerUpMsec"`
	LastResetTimerMsecs    int64  `json:"lastResetTimerMsecs"`
	LastResetDueTo         string `json:"lastResetDueTo"`
	LastNotificationReason string `json:"lastNotificationReason"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
}

// Neighbors returns bgpd's view of its sessions.
func (f *FRR) Neighbors(ctx context.Context) ([]BGPNeighbor, error) {
	now := time.Now()
	b, err := f.VTY(ctx, "show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	var m map[string]frrNeighbor
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("FRR neighbors: %w", err)
	}
	var out []BGPNeighbor
	for k, n := range m {
		a, err := netip.ParseAddr(k)
		if err != nil {
			continue // a peer group or an interface name
		}
		bn := BGPNeighbor{Address: a, State: n.BGPState, Established: n.ConnectionsEstablished}
		if n.BGPState == "Established" {
			bn.Since = now.Add(-time.Duration(n.BGPTimerUpMsec) * time.Millisecond)
		}
		var info []string
		if n.LastResetDueTo != "" {
			info = append(info, "last reset: "+n.LastResetDueTo)
		}
		if n.LastNotificationReason != "" {
			info = append(info, "last notification: "+n.LastNotificationReason)
		}
		bn.Info = strings.Join(info, "; ")
		out = append(out, bn)
	}
	slices.SortFunc(out, func(a, b BGPNeighbor) int { return a.Address.Compare(b.Address) })
	return out, nil
}
