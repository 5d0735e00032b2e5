package bgp

import (
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// globalFamilies are the address families of GoBGP's tables: the two the
// speaker announces. Left empty, GoBGP makes a table for each of the 30
// families it knows, twice (its global and route-server RIBs), each split
// into 2,048 locked maps: 10.8 MB of a speaker's heap whatever it
// announces (test/bench/bgpscale heap profile).
func globalFamilies() []uint32 {
	return []uint32{
		uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
		uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
	}
}

// Session timers GoBGP would otherwise default to minutes.
const (
	// defaultConnectRetry is how long the speaker waits between attempts
	// to connect to a router (GoBGP: 120 s); a dial times out a second
	// before the next attempt.
	defaultConnectRetry = 5 * time.Second
	// idleHoldAfterReset is how long a session stays idle after it was
	// reset, by a NOTIFICATION, hold timer expiry or BFD (GoBGP: 30 s).
	// Short, so that a session a router or BFD reset comes back within
	// seconds, not half a minute.
	idleHoldAfterReset = 2 * time.Second
)

// apiPeer is p as GoBGP's peer configuration, with the speaker's graceful
// restart capability (see gracefulRestart) and without BFD: gateBFD turns
// p.BFD on once the session has been established for a moment.
func apiPeer(p Peer, o Options) *api.Peer {
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.PeerASN,
			LocalAsn:        p.MyASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           seconds(o.ConnectRetry),
			HoldTime:               seconds(p.HoldTime),
			KeepaliveInterval:      seconds(p.KeepaliveTime),
			IdleHoldTimeAfterReset: seconds(idleHoldAfterReset),
		}},
		Transport: &api.Transport{
			RemotePort: uint32(p.Port),
		},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}
	gracefulRestart(ap, o.RestartTime)
	if p.SourceAddress.IsValid() {
		ap.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultiHop {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return ap
}

func apiBFD(b *BFD) *api.BfdPeerConfig {
	return &api.BfdPeerConfig{
		Enabled:                  true,
		DesiredMinimumTxInterval: uint32(b.TransmitInterval.Microseconds()),
		RequiredMinimumReceive:   uint32(b.ReceiveInterval.Microseconds()),
		DetectionMultiplier:      b.DetectMultiplier,
	}
}

func seconds(d time.Duration) uint64 { return uint64(d.Round(time.Second) / time.Second) }

// onlyBFDDiffers reports whether a and b differ in BFD settings alone,
// which GoBGP changes without resetting the session.
func onlyBFDDiffers(a, b Peer) bool {
	a.BFD, b.BFD = nil, nil
	return a == b
}

// equalPeers reports whether a and b configure the same session.
func equalPeers(a, b Peer) bool {
	if (a.BFD == nil) != (b.BFD == nil) || a.BFD != nil && *a.BFD != *b.BFD {
		return false
	}
	return onlyBFDDiffers(a, b)
}

// family is the GoBGP address family of a.
func family(a netip.Addr) gobgp.Family {
	if a.Is4() {
		return gobgp.RF_IPv4_UC
	}
	return gobgp.RF_IPv6_UC
}

// path is the GoBGP path announcing prefix p with a's attributes. The next
// hop is unspecified, which GoBGP replaces, per session, with the local
// address of that session.
func path(p netip.Prefix, a *announcement, withdraw bool) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", p, err)
	}
	fam := family(p.Addr())
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == gobgp.RF_IPv4_UC {
		nh, err := gobgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if a != nil {
		if a.localPref != nil {
			attrs = append(attrs, gobgp.NewPathAttributeLocalPref(*a.localPref))
		}
		if len(a.communities) > 0 {
			attrs = append(attrs, gobgp.NewPathAttributeCommunities(a.communities))
		}
		if len(a.largeCommunities) > 0 {
			lc := make([]*gobgp.LargeCommunity, len(a.largeCommunities))
			for i, c := range a.largeCommunities {
				lc[i] = gobgp.NewLargeCommunity(c[0], c[1], c[2])
			}
			attrs = append(attrs, gobgp.NewPathAttributeLargeCommunities(lc))
		}
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

// Names of the GoBGP policy objects that keep routes from the peers they are
// not for. GoBGP applies one export policy to every (non route-server)
// peer, so each peer with restricted routes gets a statement in it that
// matches the peer's address (a neighbor set) and the prefixes it must not
// get (a prefix set), and rejects them.
func neighborSetName(a netip.Addr) string { return "ironlb-peer-" + a.String() }
func denySetName(a netip.Addr) string     { return "ironlb-deny-" + a.String() }
func policyName(a netip.Addr) string      { return "ironlb-export-" + a.String() }

func prefixSet(name string, prefixes []netip.Prefix) *api.DefinedSet {
	ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
	for _, p := range prefixes {
		ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
	}
	return ds
}

func neighborSet(a netip.Addr) *api.DefinedSet {
	return &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
		Name:        neighborSetName(a),
		List:        []string{netip.PrefixFrom(a, a.BitLen()).String()},
	}
}

func denyPolicy(a netip.Addr) *api.Policy {
	return &api.Policy{
		Name: policyName(a),
		Statements: []*api.Statement{{
			Name: policyName(a),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSetName(a)},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: denySetName(a)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		}},
	}
}

// sessionState maps GoBGP's session state.
func sessionState(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_CONNECT:
		return StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

func bfdState(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "Up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "Init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "AdminDown"
	}
	return "Down"
}
