// Package bgp announces a node's service addresses to BGP routers (RFC
// 4271), on GoBGP embedded as a library, with BFD (RFC 5880) to detect a
// dead node faster than a hold timer can.
//
// A Speaker is one node's BGP speaker. The caller tells it, level-based,
// which sessions it wants (SetPeers) and which routes (SetRoutes); the
// Speaker works out the difference to what it has and changes only that,
// so an unchanged session is never reset. The speaker only ever connects
// out: it does not listen on port 179 (ListenPort -1), so it can share a
// host with a routing daemon, and the routers are configured with the
// nodes as passive or active neighbours.
//
// A route is announced with its next hop left for GoBGP to fill in per
// session with the local address of that session, which is the node's
// address on the peering subnet (or the peer's SourceAddress). Each session
// carries the address family of its peer address: IPv4 routes go to IPv4
// peers and IPv6 routes to IPv6 peers, as in MetalLB's default.
//
// With Options.RestartTime, every session offers BGP graceful restart (RFC
// 4724), and a speaker stopped to restart leaves the routers its routes
// for that long (restart.go).
//
// PeersFor, RouterIDFor and Routes map internal/config's BGPPeer,
// BFDProfile and BGPAnnouncement onto this package's types; they are pure.
package bgp
