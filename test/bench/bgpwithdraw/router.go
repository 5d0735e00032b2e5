package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/routerctl"
)

// peerState is the router's view of one neighbour: its BGP session and
// its BFD session.
type peerState struct {
	Established bool
	BFDUp       bool
	// Drops and BFDDowns are the daemon's own counts of the times the
	// session left Established and the BFD session went down, or -1
	// where the daemon does not count (BIRD).
	Drops, BFDDowns int
	// Info is the daemon's word on the state ("Active", "down", a last
	// error), for the diagnostics.
	Info string
}

// routerDaemon is one run's daemon on the router, with its control
// connections. Not safe for concurrent use.
type routerDaemon struct {
	kind   routerKind
	daemon labnet.RouterDaemon
	// FRR: bgpd's and bfdd's vty sockets; BIRD: its control socket.
	bgpd, bfdd *routerctl.VTY
	bird       *routerctl.BIRD
	neighbors  []netip.Addr
}

// routerKind is a routing daemon the lab's router runs.
type routerKind string

const (
	routerFRR  routerKind = "frr"
	routerBIRD routerKind = "bird"
)

// startRouter starts a daemon of kind k on r with rc and connects to its
// control sockets. Stop stops it.
func startRouter(ctx context.Context, k routerKind, r *labnet.Router, rc labnet.RouterConfig) (*routerDaemon, error) {
	d := &routerDaemon{kind: k}
	for _, n := range rc.Neighbors {
		d.neighbors = append(d.neighbors, n.Address)
	}
	var err error
	switch k {
	case routerFRR:
		var frr *labnet.FRR
		if frr, err = r.StartFRR(ctx, rc); err != nil {
			return nil, err
		}
		d.daemon = frr
		if d.bgpd, err = routerctl.DialVTY(filepath.Join(frr.Dir(), "bgpd.vty")); err == nil {
			d.bfdd, err = routerctl.DialVTY(filepath.Join(frr.Dir(), "bfdd.vty"))
		}
		if err == nil {
			// bfdd's show commands are in its enable node, where vtysh
			// is but a new vty connection is not.
			_, err = d.bfdd.Command("enable")
		}
	case routerBIRD:
		var bird *labnet.BIRD
		if bird, err = r.StartBIRD(ctx, rc); err != nil {
			return nil, err
		}
		d.daemon = bird
		d.bird, err = routerctl.DialBIRD(filepath.Join(bird.Dir(), "bird.ctl"))
	default:
		return nil, fmt.Errorf("unknown router %q", k)
	}
	if err != nil {
		return nil, errors.Join(err, d.Stop())
	}
	return d, nil
}

// Stop closes the control connections and stops the daemon.
func (d *routerDaemon) Stop() error {
	var errs []error
	for _, v := range []*routerctl.VTY{d.bgpd, d.bfdd} {
		if v != nil {
			errs = append(errs, v.Close())
		}
	}
	if d.bird != nil {
		errs = append(errs, d.bird.Close())
	}
	if d.daemon != nil {
		errs = append(errs, d.daemon.Stop())
	}
	return errors.Join(errs...)
}

// state returns the router's view of every neighbour.
func (d *routerDaemon) state() (map[netip.Addr]peerState, error) {
	out := map[netip.Addr]peerState{}
	var err error
	switch d.kind {
	case routerFRR:
		err = d.frrState(out)
	case routerBIRD:
		err = d.birdState(out)
	}
	if err != nil {
		return nil, err
	}
	for _, a := range d.neighbors {
		if _, ok := out[a]; !ok {
			return nil, fmt.Errorf("%s has no neighbour %s", d.kind, a)
		}
	}
	return out, nil
}

// FRR's commands: bgpd's neighbours (state and counters), bfdd's sessions
// and their counters.
const (
	frrNeighbors   = "show bgp neighbors json"
	frrBFDPeers    = "show bfd peers json"
	frrBFDCounters = "show bfd peers counters json"
)

func (d *routerDaemon) frrState(out map[netip.Addr]peerState) error {
	nb, err := d.bgpd.Command(frrNeighbors)
	if err != nil {
		return err
	}
	peers, err := d.bfdd.Command(frrBFDPeers)
	if err != nil {
		return err
	}
	counters, err := d.bfdd.Command(frrBFDCounters)
	if err != nil {
		return err
	}
	return parseFRR(nb, peers, counters, out)
}

// frrNeighbor is the part of `show bgp neighbors json` read here.
type frrNeighbor struct {
	BGPState           string `json:"bgpState"`
	ConnectionsDropped int    `json:"connectionsDropped"`
	LastResetDueTo     string `json:"lastResetDueTo"`
}

// frrBFDPeer is one session of `show bfd peers json` and `show bfd peers
// counters json` (FRR 8.4, bfdd/bfdd_vty.c).
type frrBFDPeer struct {
	Peer        string `json:"peer"`
	Status      string `json:"status"`
	SessionDown *int   `json:"session-down"`
}

// parseFRR reads bgpd's neighbours and bfdd's sessions and counters into
// out. bfdd may hold two sessions for one neighbour for a moment (bgpd
// registers a new one when its BGP session comes up, see
// internal/bgp.Speaker.gateBFD): BFD counts as up if one of them is, and
// their down events add up.
func parseFRR(neighbors, bfdPeers, bfdCounters []byte, out map[netip.Addr]peerState) error {
	var ns map[string]json.RawMessage
	if err := json.Unmarshal(neighbors, &ns); err != nil {
		return fmt.Errorf("FRR neighbours: %w", err)
	}
	for k, raw := range ns {
		a, err := netip.ParseAddr(k)
		if err != nil {
			continue // a peer group or an interface name
		}
		var n frrNeighbor
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("FRR neighbour %s: %w", k, err)
		}
		out[a] = peerState{Established: n.BGPState == "Established", Drops: n.ConnectionsDropped, Info: n.BGPState}
		if n.LastResetDueTo != "" {
			s := out[a]
			s.Info += " (last reset: " + n.LastResetDueTo + ")"
			out[a] = s
		}
	}
	var peers, counters []frrBFDPeer
	if err := json.Unmarshal(bfdPeers, &peers); err != nil {
		return fmt.Errorf("FRR BFD peers: %w", err)
	}
	if err := json.Unmarshal(bfdCounters, &counters); err != nil {
		return fmt.Errorf("FRR BFD counters: %w", err)
	}
	for _, p := range peers {
		a, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return fmt.Errorf("FRR BFD peer %q: %w", p.Peer, err)
		}
		if s, ok := out[a]; ok && p.Status == "up" {
			s.BFDUp = true
			out[a] = s
		}
	}
	for _, c := range counters {
		a, err := netip.ParseAddr(c.Peer)
		if err != nil {
			return fmt.Errorf("FRR BFD counters of %q: %w", c.Peer, err)
		}
		if c.SessionDown == nil {
			return fmt.Errorf("FRR BFD counters of %s: no session-down count", a)
		}
		if s, ok := out[a]; ok {
			s.BFDDowns += *c.SessionDown
			out[a] = s
		}
	}
	return nil
}

// BIRD's commands: the protocols (one line each) and the BFD sessions.
const (
	birdProtocols   = "show protocols"
	birdBFDSessions = "show bfd sessions"
)

func (d *routerDaemon) birdState(out map[netip.Addr]peerState) error {
	protos, err := d.bird.Command(birdProtocols)
	if err != nil {
		return err
	}
	sessions, err := d.bird.Command(birdBFDSessions)
	if err != nil {
		return err
	}
	byProto := map[string]netip.Addr{}
	for _, a := range d.neighbors {
		byProto[routerctl.BIRDProtocol(a)] = a
	}
	parseBIRD(protos, sessions, byProto, out)
	return nil
}

// parseBIRD reads `show protocols`, a line per protocol:
//
//	1002-n_198_51_100_11 BGP        ---        up     2026-12-06 20:01:02.345  Established
//
// and `show bfd sessions`, a line per session under a header:
//
//	1020-bfd1:
//	 IP address                Interface  State      Since         Interval  Timeout
//	 198.51.100.11             eth0       Up         2026-12-06 20:01:03.456    0.100    0.300
//
// into out, for the BGP protocols named in byProto. BIRD counts neither
// drops nor BFD down events.
func parseBIRD(protocols, bfdSessions []string, byProto map[string]netip.Addr, out map[netip.Addr]peerState) {
	for _, line := range protocols {
		f := strings.Fields(routerctl.ReplyText(line))
		if len(f) < 2 || f[1] != "BGP" {
			continue
		}
		a, ok := byProto[f[0]]
		if !ok {
			continue
		}
		info := strings.Join(f[min(len(f), 6):], " ")
		out[a] = peerState{Established: len(f) > 6 && f[6] == "Established", Drops: -1, BFDDowns: -1, Info: f[3] + " " + info}
	}
	for _, line := range bfdSessions {
		f := strings.Fields(routerctl.ReplyText(line))
		if len(f) < 3 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		if s, ok := out[a]; ok && f[2] == "Up" {
			s.BFDUp = true
			out[a] = s
		}
	}
}
