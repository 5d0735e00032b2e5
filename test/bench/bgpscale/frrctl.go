package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// frrVTY is a connection to one FRR daemon's vty socket speaking vtysh's
// protocol, as vtysh does (FRR's lib/vty.c, vtysh_read): a command line
// ended by a NUL byte, answered by the command's output and then three
// NUL bytes and the command's status (CMD_SUCCESS is 0). The benchmark
// polls every 20 ms; a vtysh process per poll (internal/lab's FRR.VTY,
// through `ip netns exec`) takes 200-300 ms on this machine kind, most of
// it vtysh building its command tree, which would make the polls, not
// FRR, the figure. Unix sockets are reached by path, so the benchmark,
// outside the router's namespace, can use it. Not safe for concurrent
// use.
type frrVTY struct {
	conn net.Conn
	r    *bufio.Reader
}

// frrReplyTimeout bounds one command's reply.
const frrReplyTimeout = 10 * time.Second

// dialFRRVTY connects to the vty socket at path ("DIR/bgpd.vty").
func dialFRRVTY(path string) (*frrVTY, error) {
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("FRR vty socket: %w", err)
	}
	return &frrVTY{conn: conn, r: bufio.NewReader(conn)}, nil
}

func (v *frrVTY) Close() error { return v.conn.Close() }

// command runs one command and returns its output.
func (v *frrVTY) command(cmd string) ([]byte, error) {
	v.conn.SetDeadline(time.Now().Add(frrReplyTimeout))
	if _, err := v.conn.Write(append([]byte(cmd), 0)); err != nil {
		return nil, fmt.Errorf("FRR %q: %w", cmd, err)
	}
	out, err := readVTYReply(v.r)
	if err != nil {
		return out, fmt.Errorf("FRR %q: %w", cmd, err)
	}
	return out, nil
}

// errVTYStatus is readVTYReply's error for a command that failed.
var errVTYStatus = errors.New("command failed")

// readVTYReply reads one reply: the output up to three NUL bytes, then the
// status byte.
func readVTYReply(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice(0)
		out = append(out, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return out, err
		}
		if !bytes.HasSuffix(out, []byte{0, 0, 0}) {
			continue
		}
		status, err := r.ReadByte()
		if err != nil {
			return out, err
		}
		out = out[:len(out)-3]
		if status != 0 {
			return out, fmt.Errorf("%w: status %d: %s", errVTYStatus, status, bytes.TrimSpace(out))
		}
		return out, nil
	}
}

// FRR's commands the counter polls.
const (
	// frrSummary is per-neighbour state and accepted prefix count
	// (peer->pcount): no table walk.
	frrSummary = "show bgp ipv6 unicast summary json"
	// frrStatistics walks the IPv6 unicast table once, in bgpd, and
	// prints counts only: the prefixes with a path and every path
	// (bgp_table_stats_rn, FRR 8.4). Printing the table itself
	// (`show bgp ipv6 unicast json`) would be megabytes of JSON at
	// 10,000 prefixes, and zebra's RIB (`show ipv6 route summary json`)
	// is empty when bgpd runs with -n (labnet.RouterConfig's NoKernel).
	frrStatistics = "show bgp ipv6 unicast statistics json"
)

// frrCounter counts the speakers' routes in FRR's bgpd over its vty
// socket. The table holds BGP routes only (the lab redistributes nothing
// into it), so nothing is subtracted.
type frrCounter struct {
	vty       *frrVTY
	neighbors []netip.Addr
}

// newFRRCounter connects to bgpd and checks that its table is empty
// before the speakers start.
func newFRRCounter(ctx context.Context, frr *labnet.FRR, neighbors []netip.Addr) (*frrCounter, error) {
	vty, err := dialFRRVTY(filepath.Join(frr.Dir(), "bgpd.vty"))
	if err != nil {
		return nil, err
	}
	c := &frrCounter{vty: vty, neighbors: neighbors}
	got, err := c.table(ctx)
	if err == nil && got != (routeCount{}) {
		err = fmt.Errorf("the router has BGP routes before any speaker started: %+v", got)
	}
	if err != nil {
		vty.Close()
		return nil, err
	}
	return c, nil
}

func (c *frrCounter) paths(context.Context) (map[netip.Addr]int, error) {
	b, err := c.vty.command(frrSummary)
	if err != nil {
		return nil, err
	}
	got, err := parseFRRSummary(b)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]int{}
	for _, a := range c.neighbors {
		n, ok := got[a]
		if !ok {
			return nil, fmt.Errorf("FRR has no neighbour %s", a)
		}
		out[a] = n
	}
	return out, nil
}

func (c *frrCounter) table(context.Context) (routeCount, error) {
	b, err := c.vty.command(frrStatistics)
	if err != nil {
		return routeCount{}, err
	}
	return parseFRRStatistics(b)
}

// bgp is table: the statistics are exact already.
func (c *frrCounter) bgp(ctx context.Context) (routeCount, error) { return c.table(ctx) }

func (c *frrCounter) Close() error { return c.vty.Close() }

// frrSummaryJSON is the part of `show bgp ipv6 unicast summary json` the
// counter reads.
type frrSummaryJSON struct {
	Peers map[string]struct {
		State  string `json:"state"`
		PfxRcd int    `json:"pfxRcd"`
	} `json:"peers"`
}

// parseFRRSummary reads `show bgp ipv6 unicast summary json`: the
// prefixes each neighbour gave, 0 for one that is not Established. A
// neighbour is in the map if bgpd has it configured. With no neighbour in
// the address family bgpd prints {}.
func parseFRRSummary(b []byte) (map[netip.Addr]int, error) {
	var s frrSummaryJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("FRR summary: %w", err)
	}
	out := map[netip.Addr]int{}
	for k, p := range s.Peers {
		a, err := netip.ParseAddr(k)
		if err != nil {
			return nil, fmt.Errorf("FRR summary: neighbour %q: %w", k, err)
		}
		if p.State == "Established" {
			out[a] = p.PfxRcd
		} else {
			out[a] = 0
		}
	}
	return out, nil
}

// frrStatisticsJSON is the part of `show bgp ipv6 unicast statistics json`
// the counter reads (FRR 8.4: one object per table in a list under the
// address family's name).
type frrStatisticsJSON struct {
	IPv6Unicast []struct {
		TotalPrefixes       *int `json:"totalPrefixes"`
		TotalAdvertisements *int `json:"totalAdvertisements"`
	} `json:"ipv6Unicast"`
}

// parseFRRStatistics reads `show bgp ipv6 unicast statistics json`:
// totalPrefixes counts the prefixes with at least one path,
// totalAdvertisements every path (a path bgpd has marked removed but not
// yet freed included: it is still in the table).
func parseFRRStatistics(b []byte) (routeCount, error) {
	var s frrStatisticsJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return routeCount{}, fmt.Errorf("FRR statistics: %w", err)
	}
	if len(s.IPv6Unicast) != 1 || s.IPv6Unicast[0].TotalPrefixes == nil || s.IPv6Unicast[0].TotalAdvertisements == nil {
		return routeCount{}, fmt.Errorf("FRR statistics: no IPv6 unicast counts in %.200q", b)
	}
	st := s.IPv6Unicast[0]
	return routeCount{Routes: *st.TotalAdvertisements, Networks: *st.TotalPrefixes}, nil
}
