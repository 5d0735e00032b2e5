package labnet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BIRD is BIRD 2 (Debian's bird2 package) running on the lab's router, with
// its configuration, control socket and PID file in a directory of its own.
// Its kernel protocols install BGP routes into the router's kernel table,
// merging equal paths into ECMP routes ("merge paths").
type BIRD struct {
	router *Router
	dir    string
	sock   string
	proc   *Process
}

var _ RouterDaemon = (*BIRD)(nil)

// birdTime is BIRD's "iso long ms" time format, which the lab configures for
// protocol and route times.
const birdTime = "2006-01-02 15:04:05.000"

// StartBIRD starts bird on the router with cfg and returns once birdc
// reaches it. Stop or the lab's Close stops it.
func (r *Router) StartBIRD(ctx context.Context, cfg RouterConfig) (*BIRD, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("lab: start BIRD: %w", err)
	}
	b, err := r.startBIRD(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab: start BIRD: %w", err)
	}
	return b, nil
}

func (r *Router) startBIRD(ctx context.Context, cfg RouterConfig) (*BIRD, error) {
	bird, err := exec.LookPath("bird")
	if err != nil {
		return nil, fmt.Errorf("BIRD 2 is needed (apt-get install bird2): %w", err)
	}
	if _, err := exec.LookPath("birdc"); err != nil {
		return nil, fmt.Errorf("BIRD 2's birdc is needed (apt-get install bird2): %w", err)
	}
	if err := r.addListenAddress(cfg); err != nil {
		return nil, err
	}
	dir, err := r.newDaemonDir("bird")
	if err != nil {
		return nil, err
	}
	b := &BIRD{router: r, dir: dir, sock: filepath.Join(dir, "bird.ctl")}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(birdConf(cfg, r.Host)), 0o644); err != nil {
		return nil, err
	}
	// -f: stay in the foreground, so the lab tracks the real PID.
	p, err := r.Host.Start(context.WithoutCancel(ctx), bird, "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return nil, err
	}
	b.proc = p
	r.track(p)
	if err := pollDaemon(ctx, 10*time.Second, p, func() error {
		_, err := b.Command(ctx, "show status")
		return err
	}); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// Dir is the directory holding bird's configuration, control socket
// (bird.ctl) and PID file.
func (b *BIRD) Dir() string { return b.dir }

// Process is the bird process.
func (b *BIRD) Process() *Process { return b.proc }

// Command runs one birdc command and returns its output.
func (b *BIRD) Command(ctx context.Context, command ...string) ([]byte, error) {
	out, err := b.router.Host.Run(ctx, "birdc", append([]string{"-s", b.sock}, command...)...)
	if err != nil {
		return out, fmt.Errorf("birdc %s: %w", strings.Join(command, " "), err)
	}
	return out, nil
}

// Stop stops bird; its kernel protocols remove the routes they installed.
func (b *BIRD) Stop() error { return b.proc.Stop() }

func birdConf(cfg RouterConfig, h *Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\n", cfg.localV4(h))
	b.WriteString("timeformat protocol iso long ms;\ntimeformat route iso long ms;\n")
	if cfg.Debug {
		b.WriteString("debug protocols { states, events, packets };\n")
	}
	b.WriteString("protocol device {}\nprotocol direct { ipv4; ipv6; }\n")
	if !cfg.NoKernel {
		b.WriteString(`protocol kernel kernel4 { ipv4 { export where source = RTS_BGP; }; merge paths on; }
protocol kernel kernel6 { ipv6 { export where source = RTS_BGP; }; merge paths on; }
`)
	}
	ms := cfg.BFD.interval().Milliseconds()
	fmt.Fprintf(&b, "protocol bfd { interface \"*\" { min rx interval %d ms; min tx interval %d ms; multiplier %d; }; }\n",
		ms, ms, cfg.BFD.multiplier())
	for _, n := range cfg.Neighbors {
		local, fam := cfg.localV4(h), "ipv4"
		if n.Address.Is6() {
			local, fam = h.IPv6, "ipv6"
		}
		fmt.Fprintf(&b, "protocol bgp %s {\n", birdProtoName(n.Address))
		fmt.Fprintf(&b, "  local %s as %d;\n  neighbor %s as %d;\n  passive on;\n", local, cfg.asn(), n.Address, n.ASN)
		if cfg.ListenAddress.IsValid() {
			b.WriteString("  strict bind on;\n") // listen on the local address only
		}
		if n.ASN == cfg.asn() {
			// iBGP: the speakers are on the LAN, so their next hops
			// are direct, not resolved through an IGP.
			b.WriteString("  direct;\n")
		}
		if n.Password != "" {
			fmt.Fprintf(&b, "  password %q;\n", n.Password)
		}
		if n.HoldTime != 0 {
			hold := int(n.HoldTime / time.Second)
			fmt.Fprintf(&b, "  hold time %d;\n  keepalive time %d;\n", hold, max(hold/3, 1))
		}
		if n.BFD {
			b.WriteString("  bfd on;\n")
		}
		fmt.Fprintf(&b, "  %s { import all; export none; };\n}\n", fam)
	}
	return b.String()
}

// birdProtoName is the BGP protocol's name for a neighbour: BIRD's names
// are symbols, so "n_198_51_100_11" or "n_2001_db8_1__11".
func birdProtoName(a netip.Addr) string {
	return "n_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}

// Routes returns BIRD's master4 and master6 tables with every BGP path
// (`show route all`).
func (b *BIRD) Routes(ctx context.Context) ([]BGPRoute, error) {
	var out []BGPRoute
	for _, table := range []string{"master4", "master6"} {
		o, err := b.Command(ctx, "show", "route", "all", "table", table, "where", "source = RTS_BGP")
		if err != nil {
			return nil, err
		}
		rs, err := parseBIRDRoutes(o)
		if err != nil {
			return nil, fmt.Errorf("BIRD %s: %w", table, err)
		}
		out = append(out, rs...)
	}
	sortRoutes(out)
	return out, nil
}

// parseBIRDRoutes reads `show route all` output:
//
//	Table master4:
//	203.0.113.100/32     unicast [n_198_51_100_11 2026-11-26 22:30:38.706] * (100) [AS64512i]
//		via 198.51.100.11 on eth0
//		Type: BGP univ
//		BGP.next_hop: 198.51.100.11
//		BGP.local_pref: 100
//		BGP.community: (65000,100)
//		BGP.large_community: (1, 2, 3)
//	                     unicast [n_198_51_100_12 ...] (100) [AS64512i]
//		via 198.51.100.12 on eth0
//
// A line starting with a prefix begins a route; an indented one starting
// with a route type ("unicast") another path of the same prefix.
func parseBIRDRoutes(out []byte) ([]BGPRoute, error) {
	var routes []BGPRoute
	var cur *BGPRoute
	var path *BGPPath
	flush := func() {
		if path != nil && cur != nil {
			cur.Paths = append(cur.Paths, *path)
		}
		path = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table "):
			continue
		case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t"):
			// "PREFIX  unicast [proto time] * (pref) [ASPATH]"
			flush()
			f := strings.Fields(line)
			pfx, err := netip.ParsePrefix(f[0])
			if err != nil {
				return nil, fmt.Errorf("route line %q: %w", line, err)
			}
			routes = append(routes, BGPRoute{Prefix: pfx})
			cur = &routes[len(routes)-1]
			path = newBIRDPath(f[1:])
		case strings.HasPrefix(line, " "):
			// Another path of the same prefix.
			flush()
			path = newBIRDPath(strings.Fields(line))
		case path == nil:
			continue
		default: // a tab-indented attribute of the current path
			key, val, _ := strings.Cut(trimmed, ":")
			val = strings.TrimSpace(val)
			switch {
			case strings.HasPrefix(trimmed, "via "):
				f := strings.Fields(trimmed)
				if a, err := netip.ParseAddr(f[1]); err == nil && !path.NextHop.IsValid() {
					path.NextHop = a
				}
			case key == "BGP.next_hop":
				for _, f := range strings.Fields(val) {
					if a, err := netip.ParseAddr(f); err == nil && !a.IsLinkLocalUnicast() {
						path.NextHop = a
						break
					}
				}
			case key == "BGP.local_pref":
				if v, err := strconv.ParseUint(val, 10, 32); err == nil {
					path.LocalPref, path.HasLocalPref = uint32(v), true
				}
			case key == "BGP.as_path":
				path.ASPath = val
			case key == "BGP.community":
				path.Communities = birdTuples(val, ":")
			case key == "BGP.large_community":
				path.LargeCommunities = birdTuples(val, ":")
			case key == "BGP.from" || key == "BGP.neighbor": // not printed by 2.0.12
			}
		}
	}
	flush()
	for i := range routes {
		for j := range routes[i].Paths {
			if !routes[i].Paths[j].From.IsValid() {
				routes[i].Paths[j].From = routes[i].Paths[j].NextHop
			}
		}
	}
	return routes, sc.Err()
}

// newBIRDPath starts a path from the fields after the prefix:
// "unicast [proto time] * (100) [AS64512i]". The neighbour's address is
// taken from the protocol name the lab gave it.
func newBIRDPath(f []string) *BGPPath {
	p := &BGPPath{}
	if len(f) > 1 {
		name := strings.TrimPrefix(f[1], "[")
		p.From = birdProtoAddr(name)
	}
	p.Best = slices.Contains(f, "*")
	return p
}

// birdProtoAddr inverts birdProtoName; the zero Addr if name is not one.
func birdProtoAddr(name string) netip.Addr {
	rest, ok := strings.CutPrefix(name, "n_")
	if !ok {
		return netip.Addr{}
	}
	if strings.Count(rest, "_") == 3 && !strings.Contains(rest, "__") {
		if a, err := netip.ParseAddr(strings.ReplaceAll(rest, "_", ".")); err == nil {
			return a
		}
	}
	a, _ := netip.ParseAddr(strings.ReplaceAll(rest, "_", ":"))
	return a
}

// birdTuples turns "(65000,100) (65000,200)" or "(1, 2, 3)" into
// "65000:100", "65000:200" or "1:2:3", sorted.
func birdTuples(s, sep string) []string {
	var out []string
	for _, t := range strings.Split(s, ")") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "("))
		if t == "" {
			continue
		}
		parts := strings.Split(t, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		out = append(out, strings.Join(parts, sep))
	}
	slices.Sort(out)
	return out
}

// Neighbors returns BIRD's view of its BGP sessions (`show protocols all`).
func (b *BIRD) Neighbors(ctx context.Context) ([]BGPNeighbor, error) {
	out, err := b.Command(ctx, "show", "protocols", "all")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out), nil
}

// parseBIRDProtocols reads `show protocols all`: a header line per protocol
// ("n_198_51_100_11 BGP --- up 2026-11-26 22:30:38.706 Established")
// followed by indented details ("BGP state:", "Last error:").
func parseBIRDProtocols(out []byte) []BGPNeighbor {
	var ns []BGPNeighbor
	var cur *BGPNeighbor
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			cur = nil
			f := strings.Fields(line)
			if len(f) < 6 || f[1] != "BGP" {
				continue
			}
			a := birdProtoAddr(f[0])
			if !a.IsValid() {
				continue
			}
			ns = append(ns, BGPNeighbor{Address: a})
			cur = &ns[len(ns)-1]
			if t, err := time.ParseInLocation(birdTime, f[4]+" "+f[5], time.Local); err == nil {
				cur.Since = t
			}
			continue
		}
		if cur == nil {
			continue
		}
		key, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		val = strings.TrimSpace(val)
		switch key {
		case "BGP state":
			cur.State = val
		case "Last error":
			cur.Info = val
		}
	}
	slices.SortFunc(ns, func(a, b BGPNeighbor) int { return a.Address.Compare(b.Address) })
	return ns
}
