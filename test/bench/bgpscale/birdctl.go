package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// birdCtl is a connection to BIRD's control socket speaking its CLI
// protocol, as birdc does. The benchmark polls the route count every
// few tens of milliseconds; a birdc process per poll (through `ip netns
// exec`) would cost the shared CPUs more than BIRD's answer does. Unix
// sockets are reached by path, so the benchmark, outside the router's
// network namespace, can use it. Not safe for concurrent use.
type birdCtl struct {
	conn net.Conn
	r    *bufio.Reader
}

// birdReplyTimeout bounds one command's reply.
const birdReplyTimeout = 10 * time.Second

// dialBIRD connects to the control socket at path and reads BIRD's
// greeting ("0001 BIRD 2.0.12 ready.").
func dialBIRD(path string) (*birdCtl, error) {
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bird control socket: %w", err)
	}
	b := &birdCtl{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(birdReplyTimeout))
	if _, err := b.reply(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bird greeting: %w", err)
	}
	return b, nil
}

func (b *birdCtl) Close() error { return b.conn.Close() }

// command sends one CLI command and returns the lines of its reply.
func (b *birdCtl) command(cmd string) ([]string, error) {
	b.conn.SetDeadline(time.Now().Add(birdReplyTimeout))
	if _, err := fmt.Fprintf(b.conn, "%s\n", cmd); err != nil {
		return nil, fmt.Errorf("bird %q: %w", cmd, err)
	}
	lines, err := b.reply()
	if err != nil {
		return lines, fmt.Errorf("bird %q: %w", cmd, err)
	}
	return lines, nil
}

// reply reads the lines of one reply. Each line is a four-digit code and
// '-' (more follow) or ' ' (the last), or a continuation starting with a
// space; codes 8xxx and 9xxx are errors (BIRD's doc/prog, "CLI").
func (b *birdCtl) reply() ([]string, error) {
	var lines []string
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		line = strings.TrimSuffix(line, "\n")
		lines = append(lines, line)
		code, last := replyCode(line)
		if !last {
			continue
		}
		if code[0] == '8' || code[0] == '9' {
			return lines, fmt.Errorf("error %s: %s", code, line[5:])
		}
		return lines, nil
	}
}

// replyCode returns the code of a reply line ("" for a continuation)
// and whether the line ends the reply.
func replyCode(line string) (code string, last bool) {
	if len(line) < 5 || line[4] != ' ' && line[4] != '-' {
		return "", false
	}
	for _, c := range line[:4] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return line[:4], line[4] == ' '
}

// routeCount is the router's view of the BGP routes.
type routeCount struct {
	// Routes are the paths, Networks the prefixes with at least one.
	Routes, Networks int
}

// showCount is what `show route ... count` says of one table.
type showCount struct {
	// Shown are the routes that passed the command's filter, of Routes
	// looked at; Networks are every prefix with a route, filtered or not
	// (BIRD 2.0.12, nest/rt-show.c: rt_show_net counts a network before
	// it filters).
	Shown, Routes, Networks int
}

// parseShowCount reads the reply of `show route table T ... count`:
//
//	1007-3000 of 3000 routes for 1002 networks in table master6
//	0000
func parseShowCount(lines []string) (showCount, error) {
	for _, line := range lines {
		text := line
		if code, _ := replyCode(line); code != "" {
			text = line[5:]
		}
		var c showCount
		if n, _ := fmt.Sscanf(strings.TrimSpace(text), "%d of %d routes for %d networks", &c.Shown, &c.Routes, &c.Networks); n == 3 {
			return c, nil
		}
	}
	return showCount{}, fmt.Errorf("no route count in %q", lines)
}

// shown runs a `show route ... count` command and returns how many routes
// passed its filter.
func (b *birdCtl) shown(cmd string) (int, error) {
	lines, err := b.command(cmd)
	if err != nil {
		return 0, err
	}
	c, err := parseShowCount(lines)
	return c.Shown, err
}

// countBGP counts the BGP paths of table master6 and the prefixes that
// have at least one: with "primary" only each prefix's best route passes
// the filter, and the BGP prefixes here are not the direct ones. It walks
// the table twice, evaluating a filter on every route; the pollers use
// count and imported instead.
func (b *birdCtl) countBGP() (routeCount, error) {
	var c routeCount
	var err error
	if c.Routes, err = b.shown("show route table master6 count where source = RTS_BGP"); err != nil {
		return c, err
	}
	c.Networks, err = b.shown("show route table master6 count primary where source = RTS_BGP")
	return c, err
}

// count counts every route and network of table master6, in one walk
// without a filter.
func (b *birdCtl) count() (routeCount, error) {
	lines, err := b.command("show route table master6 count")
	if err != nil {
		return routeCount{}, err
	}
	c, err := parseShowCount(lines)
	return routeCount{Routes: c.Shown, Networks: c.Networks}, err
}

// imported returns how many routes BGP protocol proto has in its table,
// from the protocol's channel statistics: no table walk.
func (b *birdCtl) imported(proto string) (int, error) {
	lines, err := b.command("show protocols all " + proto)
	if err != nil {
		return 0, err
	}
	return parseImported(lines)
}

// parseImported reads the channel statistics in `show protocols all P`:
//
//	1006-  Channel ipv6
//	         State:          UP
//	         ...
//	         Routes:         10000 imported, 0 exported, 3334 preferred
//
// A protocol that is down has no Routes line: 0.
func parseImported(lines []string) (int, error) {
	for _, line := range lines {
		_, rest, ok := strings.Cut(line, "Routes:")
		if !ok {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d imported", &n); err != nil {
			return 0, fmt.Errorf("channel statistics %q: %w", line, err)
		}
		return n, nil
	}
	return 0, nil
}

// birdProtoName is the name the lab gives BIRD's BGP protocol for a
// neighbour (internal/lab/bird.go): "n_2001_db8_1__11".
func birdProtoName(a netip.Addr) string {
	return "n_" + strings.NewReplacer(".", "_", ":", "_").Replace(a.String())
}
