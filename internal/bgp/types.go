package bgp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"time"
)

// Peer is one BGP session the node opens to a router.
type Peer struct {
	// Name identifies the session; Route.Peers refers to it. It is the
	// BGPPeer object's name.
	Name string
	// Address is the router's address. It also fixes the session's
	// address family: IPv4 routes go to IPv4 peers, IPv6 to IPv6.
	Address netip.Addr
	// Port is the router's BGP port; 0 means 179.
	Port uint16
	// MyASN is the node's AS number on this session, PeerASN the
	// router's; equal means iBGP.
	MyASN, PeerASN uint32
	// SourceAddress is the node's address to connect from, and so the
	// next hop of the routes; the zero Addr lets the kernel choose (the
	// node's address on the peering subnet).
	SourceAddress netip.Addr
	// HoldTime is the hold time to offer, KeepaliveTime the keepalive
	// interval (RFC 4271 section 4.2), both in whole seconds. 0 leaves
	// GoBGP's defaults (90 s, and a third of the hold time); GoBGP cannot
	// offer a hold time of 0.
	HoldTime, KeepaliveTime time.Duration
	// EBGPMultiHop allows an eBGP router that is not on a directly
	// connected subnet (TTL 255 instead of 1).
	EBGPMultiHop bool
	// Password turns on TCP MD5 signatures (RFC 2385) with this key.
	Password string
	// BFD, if set, runs a single-hop BFD session (RFC 5880, RFC 5881)
	// with the router; when it fails, the BGP session is reset at once.
	// It runs while the BGP session is established, from a second after
	// the session comes up (see Speaker.gateBFD).
	BFD *BFD
}

// BFD holds the BFD settings GoBGP supports. GoBGP's BFD has no echo mode,
// passive mode or minimum TTL check.
type BFD struct {
	// ReceiveInterval is the required minimum receive interval,
	// TransmitInterval the desired minimum transmit interval; 0 means one
	// second.
	ReceiveInterval, TransmitInterval time.Duration
	// DetectMultiplier is the detection multiplier; 0 means 3.
	DetectMultiplier uint32
}

// Route is a prefix to announce.
type Route struct {
	Prefix netip.Prefix
	// Peers names the peers (Peer.Name) to announce to; empty means all.
	Peers []string
	// LocalPref is LOCAL_PREF (RFC 4271 section 5.1.5); nil leaves it
	// unset (GoBGP then sends 100 to iBGP peers). eBGP peers never get it.
	LocalPref *uint32
	// Communities are standard communities (RFC 1997), each the 32-bit
	// value of ASN:value.
	Communities []uint32
	// LargeCommunities are large communities (RFC 8092):
	// global:local1:local2.
	LargeCommunities [][3]uint32
}

// SessionState is a BGP session's state (RFC 4271 section 8.2.2).
type SessionState string

// Session states.
const (
	StateIdle        SessionState = "Idle"
	StateConnect     SessionState = "Connect"
	StateActive      SessionState = "Active"
	StateOpenSent    SessionState = "OpenSent"
	StateOpenConfirm SessionState = "OpenConfirm"
	StateEstablished SessionState = "Established"
)

// PeerStatus is what a Speaker knows about one session.
type PeerStatus struct {
	Name    string
	Address netip.Addr
	State   SessionState
	// Since is when the session was last established (zero if never);
	// an unchanged Since means the session was not reset meanwhile.
	Since time.Time
	// Drops counts GoBGP's flaps: established sessions that went down
	// within 30 s of coming up (GoBGP's flopThreshold; one that had lasted
	// longer is not counted), plus the sessions the speaker replaced after
	// a BFD reset (see resetQueue). A rising count means a flapping
	// session; it is not a count of every drop.
	Drops int
	// LastError says why the session is not (or was not) established:
	// the last connection error ("connection refused", a timeout, which a
	// TCP MD5 password mismatch looks like) or why it went down (a
	// NOTIFICATION, hold timer expiry, BFD). Empty when none is known.
	LastError string
	// PrefixesSent counts the prefixes announced on the session.
	PrefixesSent int
	// BFD is the BFD session state ("Up", "Down", "Init", "AdminDown"),
	// or "" without BFD.
	BFD string
}

// validatePeers checks what GoBGP would reject, or what would make two
// peers one session.
func validatePeers(peers []Peer) error {
	names := map[string]bool{}
	addrs := map[netip.Addr]string{}
	var errs []error
	for _, p := range peers {
		switch {
		case p.Name == "":
			errs = append(errs, fmt.Errorf("peer %s has no name", p.Address))
		case names[p.Name]:
			errs = append(errs, fmt.Errorf("peer %s: name used twice", p.Name))
		case !p.Address.IsValid() || p.Address.Zone() != "":
			errs = append(errs, fmt.Errorf("peer %s: invalid address %v", p.Name, p.Address))
		case addrs[p.Address] != "":
			errs = append(errs, fmt.Errorf("peer %s: address %s already used by peer %s", p.Name, p.Address, addrs[p.Address]))
		case p.MyASN == 0 || p.PeerASN == 0:
			errs = append(errs, fmt.Errorf("peer %s: needs both AS numbers", p.Name))
		case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
			errs = append(errs, fmt.Errorf("peer %s: source address %s is not of the family of %s", p.Name, p.SourceAddress, p.Address))
		}
		names[p.Name] = true
		if p.Address.IsValid() && addrs[p.Address] == "" {
			addrs[p.Address] = p.Name
		}
	}
	return errors.Join(errs...)
}

// announcement is what the Speaker announces for one prefix: the Routes
// for it merged. Prefixes with the same attributes and peers share one
// announcement (see interner), so an announcement is never changed once
// made.
type announcement struct {
	// peers are the peers to announce to, sorted; nil means all.
	peers            []string
	localPref        *uint32
	communities      []uint32
	largeCommunities [][3]uint32
}

// forPeer reports whether the prefix goes to the peer named name.
func (a *announcement) forPeer(name string) bool {
	return a.peers == nil || slices.Contains(a.peers, name)
}

// sameAttrs reports whether a and b announce the same path attributes.
func (a *announcement) sameAttrs(b *announcement) bool {
	return a == b || equalPtr(a.localPref, b.localPref) && slices.Equal(a.communities, b.communities) &&
		slices.Equal(a.largeCommunities, b.largeCommunities)
}

func equalPtr(a, b *uint32) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// mergeRoutes turns routes into one announcement per prefix. Routes for
// the same prefix (several announcements covering one address) merge: the
// union of their peers (all, if any of them says all), of their
// communities, and the highest local preference. A prefix carries the same
// attributes to every peer it goes to, because GoBGP keeps one path per
// prefix for all its peers.
//
// The prefixes share their announcements (see interner): a cluster has a
// few kinds and thousands of prefixes, and one announcement per prefix,
// made anew at every sync, was a quarter of what a sync held with 10,000
// Services (test/bench/bgpscale heap profile).
func mergeRoutes(routes iter.Seq[Route]) (map[netip.Prefix]*announcement, error) {
	out := map[netip.Prefix]*announcement{}
	var in interner
	var one, both announcement // scratch, reused for every route
	for r := range routes {
		if !r.Prefix.IsValid() || r.Prefix.Addr().Zone() != "" {
			return nil, fmt.Errorf("invalid route prefix %v", r.Prefix)
		}
		p := r.Prefix.Masked()
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("route %s: IPv4-mapped IPv6 prefixes are not announced", p)
		}
		one.of(&r)
		a := in.intern(&one)
		if had := out[p]; had != nil && had != a {
			both.merge(had, a)
			a = in.intern(&both)
		}
		out[p] = a
	}
	return out, nil
}

// of makes a the announcement of r alone, reusing a's slices.
func (a *announcement) of(r *Route) {
	buf := a.peers[:0]
	a.peers = nil // all
	if len(r.Peers) > 0 {
		a.peers = sortedSet(append(buf, r.Peers...))
	}
	a.localPref = r.LocalPref
	a.communities = sortedSet(append(a.communities[:0], r.Communities...))
	a.largeCommunities = sortedLarge(append(a.largeCommunities[:0], r.LargeCommunities...))
}

// merge makes a the union of x and y (see mergeRoutes), reusing a's
// slices.
func (a *announcement) merge(x, y *announcement) {
	buf := a.peers[:0]
	a.peers = nil // all, if either goes to all
	if x.peers != nil && y.peers != nil {
		a.peers = sortedSet(append(append(buf, x.peers...), y.peers...))
	}
	a.localPref = x.localPref
	if y.localPref != nil && (x.localPref == nil || *y.localPref > *x.localPref) {
		a.localPref = y.localPref
	}
	a.communities = sortedSet(append(append(a.communities[:0], x.communities...), y.communities...))
	a.largeCommunities = sortedLarge(append(append(a.largeCommunities[:0], x.largeCommunities...), y.largeCommunities...))
}

func sortedSet[T cmp.Ordered](s []T) []T {
	slices.Sort(s)
	return slices.Compact(s)
}

func sortedLarge(s [][3]uint32) [][3]uint32 {
	slices.SortFunc(s, func(x, y [3]uint32) int { return slices.Compare(x[:], y[:]) })
	return slices.Compact(s)
}

// interner hands out one announcement for each distinct value, so that
// prefixes announced alike share it. It is used by one mergeRoutes call.
type interner struct {
	byKey map[string]*announcement
	key   []byte // reused: a lookup by it allocates nothing
}

// intern returns the announcement equal to a, a copy of a the first time:
// a may be scratch.
func (in *interner) intern(a *announcement) *announcement {
	k := in.key[:0]
	if a.peers == nil {
		k = append(k, 0)
	} else {
		k = binary.AppendUvarint(k, uint64(len(a.peers))+1)
		for _, p := range a.peers {
			k = binary.AppendUvarint(k, uint64(len(p)))
			k = append(k, p...)
		}
	}
	if a.localPref == nil {
		k = append(k, 0)
	} else {
		k = binary.BigEndian.AppendUint32(append(k, 1), *a.localPref)
	}
	k = binary.AppendUvarint(k, uint64(len(a.communities)))
	for _, c := range a.communities {
		k = binary.BigEndian.AppendUint32(k, c)
	}
	for _, c := range a.largeCommunities { // last: no count needed
		for _, v := range c {
			k = binary.BigEndian.AppendUint32(k, v)
		}
	}
	in.key = k
	if got, ok := in.byKey[string(k)]; ok {
		return got
	}
	c := &announcement{peers: slices.Clone(a.peers)}
	if a.localPref != nil {
		v := *a.localPref
		c.localPref = &v
	}
	if len(a.communities) > 0 {
		c.communities = slices.Clone(a.communities)
	}
	if len(a.largeCommunities) > 0 {
		c.largeCommunities = slices.Clone(a.largeCommunities)
	}
	if in.byKey == nil {
		in.byKey = map[string]*announcement{}
	}
	in.byKey[string(k)] = c
	return c
}
