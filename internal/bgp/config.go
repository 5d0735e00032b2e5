package bgp

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/config"
)

// Passwords maps the Secrets that BGPPeers name (spec.passwordSecret) to
// the passwords they hold (key "password"). The caller reads the Secrets;
// this package does no I/O.
type Passwords map[types.NamespacedName]string

// PeersFor returns the sessions a node with labels nodeLabels opens: one per
// BGPPeer whose nodeSelectors match it, in cfg's order. A peer whose
// password Secret is missing from passwords is left out (opening it without
// the password would only fail) and reported, as is any BFD setting GoBGP
// cannot honour (echo mode, passive mode, minimum TTL); the peer is then
// used without it.
func PeersFor(cfg *config.Config, nodeLabels map[string]string, passwords Passwords) ([]Peer, []error) {
	var peers []Peer
	var problems []error
	for _, cp := range cfg.BGPPeers {
		if !cp.SelectsNode(nodeLabels) {
			continue
		}
		p := Peer{
			Name:          cp.Name,
			Address:       cp.PeerAddress,
			Port:          cp.PeerPort,
			MyASN:         cp.MyASN,
			PeerASN:       cp.PeerASN,
			SourceAddress: cp.SourceAddress,
			HoldTime:      cp.HoldTime,
			KeepaliveTime: cp.KeepaliveTime,
			EBGPMultiHop:  cp.EBGPMultiHop,
			Password:      cp.Password,
		}
		if s := cp.PasswordSecret; s != nil {
			pw, ok := passwords[*s]
			if !ok {
				problems = append(problems, fmt.Errorf("%s: password Secret %s not found (or it has no key \"password\"); the session is not opened", cp.Source, s))
				continue
			}
			p.Password = pw
		}
		if cp.BFDProfile != "" {
			if prof := cfg.BFDProfiles[cp.BFDProfile]; prof != nil {
				p.BFD = &BFD{
					ReceiveInterval:  prof.ReceiveInterval,
					TransmitInterval: prof.TransmitInterval,
					DetectMultiplier: prof.DetectMultiplier,
				}
				problems = append(problems, bfdUnsupported(cp, prof)...)
			}
		}
		peers = append(peers, p)
	}
	return peers, problems
}

// bfdUnsupported lists the settings of prof that GoBGP's BFD ignores.
func bfdUnsupported(cp *config.BGPPeer, prof *config.BFDProfile) []error {
	var out []error
	if prof.EchoMode {
		out = append(out, fmt.Errorf("%s: BFD profile %s: echo mode is not supported and is off", cp.Source, prof.Name))
	}
	if prof.PassiveMode {
		out = append(out, fmt.Errorf("%s: BFD profile %s: passive mode is not supported; the node sends BFD packets at once", cp.Source, prof.Name))
	}
	return out
}

// RouterIDFor returns the BGP identifier of a node: the RouterID of the
// first of its peers (in cfg's order) that sets one, else nodeIP if it is
// IPv4. GoBGP has a single identifier per speaker, so peers that set
// different ones are reported, and the first wins. The zero Addr means the
// node has no usable identifier (an IPv6-only node with no RouterID set).
func RouterIDFor(cfg *config.Config, nodeLabels map[string]string, nodeIP netip.Addr) (netip.Addr, []error) {
	var id netip.Addr
	var from config.ObjectRef
	var problems []error
	for _, cp := range cfg.BGPPeers {
		if !cp.SelectsNode(nodeLabels) || !cp.RouterID.IsValid() {
			continue
		}
		switch {
		case !id.IsValid():
			id, from = cp.RouterID, cp.Source
		case cp.RouterID != id:
			problems = append(problems, fmt.Errorf("%s: routerID %s differs from %s of %s; a node has one BGP identifier, so %s is used", cp.Source, cp.RouterID, id, from, id))
		}
	}
	if !id.IsValid() && nodeIP.Is4() {
		id = nodeIP
	}
	return id, problems
}

// Routes yields the routes a node with labels nodeLabels announces for
// the addresses it serves, each with its pool: for every BGPAnnouncement
// that covers the pool and selects the node, the address's prefix at the
// announcement's aggregation length (so several addresses may share one
// route), with its local preference, communities and peers. It yields
// them in the order of addrs, each (prefix, announcement) once;
// Speaker.SetRoutes merges routes that share a prefix. The routes of one
// announcement share its peers and communities: read them, do not change
// them.
//
// Routes go one by one from the addresses to the Speaker's table: with
// 10,000 Services, a slice of them and a map of the addresses by pool
// were 1.5 MB of a speaker's peak (test/bench/bgpscale).
func Routes(cfg *config.Config, nodeLabels map[string]string, addrs iter.Seq2[string, netip.Addr]) iter.Seq[Route] {
	return func(yield func(Route) bool) {
		type key struct {
			prefix netip.Prefix
			ann    *config.BGPAnnouncement
		}
		type template struct {
			ann   *config.BGPAnnouncement
			route Route
		}
		// Only aggregated prefixes can repeat: an address is in one pool.
		var seen map[key]bool
		byPool := map[string][]template{}
		for pool, addr := range addrs {
			ts, ok := byPool[pool]
			if !ok {
				for _, a := range cfg.BGPFor(pool) {
					if a.SelectsNode(nodeLabels) {
						ts = append(ts, template{a, routeFor(a)})
					}
				}
				byPool[pool] = ts
			}
			addr = addr.Unmap()
			for _, t := range ts {
				bits := t.ann.AggregationLength
				if addr.Is6() {
					bits = t.ann.AggregationLengthV6
				}
				p, err := addr.Prefix(bits)
				if err != nil {
					continue // config validated the lengths
				}
				if bits < addr.BitLen() {
					if seen[key{p, t.ann}] {
						continue
					}
					if seen == nil {
						seen = map[key]bool{}
					}
					seen[key{p, t.ann}] = true
				}
				r := t.route
				r.Prefix = p
				if !yield(r) {
					return
				}
			}
		}
	}
}

// routeFor is the Route of announcement a with no prefix yet: its peers,
// local preference and communities, which Routes gives every prefix of a.
func routeFor(a *config.BGPAnnouncement) Route {
	var r Route
	if len(a.Peers) > 0 {
		r.Peers = slices.Clone(a.Peers)
	}
	if a.LocalPref != nil {
		v := *a.LocalPref
		r.LocalPref = &v
	}
	for _, c := range a.Communities {
		if c.Large {
			r.LargeCommunities = append(r.LargeCommunities, [3]uint32{c.Global, c.Local1, c.Local2})
		} else {
			r.Communities = append(r.Communities, c.Value())
		}
	}
	return r
}
