// Package l2 answers ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861)
// for the service IPs this node owns, on one interface: ironlb's Layer 2
// mode. It decides nothing about which addresses those are; the speaker
// tells a Responder its current set and the Responder makes the LAN send
// traffic for them to this node's MAC. It can also answer for another
// node's addresses with that node's MAC, while that node cannot.
//
// # What goes on the wire
//
//   - An ARP request (who-has) for an owned IPv4 address gets an ARP reply
//     from the interface's MAC, unicast to the asker (RFC 826).
//   - A Neighbor Solicitation for an owned IPv6 address, whether sent to the
//     address's solicited-node multicast group or unicast, gets a Neighbor
//     Advertisement with the Solicited and Override flags and a Target
//     Link-Layer Address option (RFC 4861, sections 4.4 and 7.2.4); one
//     from the unspecified address (duplicate address detection) is answered
//     to all-nodes ff02::1 without the Solicited flag, which defends the
//     address. The Responder joins each owned address's solicited-node
//     group at the link layer, so the NIC does not filter those frames out.
//   - Every newly owned address is announced at once: a burst of gratuitous
//     ARP (an ARP Announcement, RFC 5227 section 3: a broadcast request
//     whose sender and target IP are both the address) or unsolicited
//     Neighbor Advertisements to ff02::1 with the Override flag (RFC 4861,
//     section 7.2.6), so clients and switches that cached another node's
//     MAC move to this one without asking. Owned addresses are announced
//     again periodically, for caches that missed the burst.
//   - Proxy answers (SetProxied): while the speaker on node X restarts,
//     in a rolling upgrade, X keeps its addresses (its kernel and
//     kube-proxy still take their traffic) but nothing on X answers ARP
//     or NDP for them, so a peer answers instead, naming X's MAC: as the
//     ARP reply's sender hardware address, or in the Neighbor
//     Advertisement's Target Link-Layer Address option, with the flags of
//     an owned address (Override too: the address really is at that MAC).
//     New clients thus resolve to X and no traffic moves. The frame's
//     Ethernet source stays the peer's own MAC, since switches learn where
//     a MAC lives from Ethernet sources and would otherwise send X's
//     traffic to the peer's port. Proxied addresses are never announced:
//     their clients already hold X's MAC, and X announces when it is back.
//     An address both owned and proxied is answered as owned, and X's own
//     requests for its addresses (a probe, duplicate address detection)
//     get no proxy answer, which would tell X they are taken.
//
// Requests for anything else, replies, announcements from other hosts and
// malformed frames get no answer; every frame is parsed defensively (see
// the fuzz tests), since anything on the LAN may send anything.
//
// # Withdrawing an address
//
// Neither protocol can take a mapping back: there is no "un-announce" in
// ARP or NDP. Removing an address from the set simply stops the answers.
// Clients keep the old MAC until their cache entry ages out or, in a
// failover, until the new owner's announcements override it, which is why
// the new owner announces at once and ironlb does not wait for caches to
// expire.
//
// # Performance
//
// The node's kernel answers ARP for its own addresses in softirq context, in
// microseconds; a responder in user space should not be much slower. Each
// family therefore has its own packet socket carrying whole Ethernet frames,
// with a BPF filter so that only ARP requests and Neighbor Solicitations
// wake the process, and a goroutine that answers in place: the set of owned
// and proxied addresses is an immutable value swapped atomically by
// SetAddrs and SetProxied, so the read path takes no lock and allocates nothing (on sockets given to NewWithConns, the
// packet library's ReadFrom still allocates its source address), and
// replies are built by hand into a reused buffer rather than through the
// arp and ndp packages' general-purpose (and allocating) marshalling, which
// the tests use to check them. On the sockets New opens, that goroutine
// waits in a blocking read and sends the reply itself, outside the Go
// runtime's network poller, which halves the time to an answer (see
// rawsock.go for the figures).
//
// # Coexistence with the kernel
//
// The kernel must not answer for the same addresses, or the LAN sees two
// MACs: an IPv4 service IP bound to a local device is answered by the kernel
// unless arp_ignore/arp_announce say otherwise (kube-proxy IPVS mode with
// strictARP). The kernel never answers NDP for addresses on lo.
//
// # Address conflicts
//
// A Prober (probe.go) asks the LAN whether another host holds an address
// (RFC 5227 ARP Probes, RFC 4862 duplicate address detection), so that the
// speaker can leave out an address some other host took rather than answer
// for it next to that host. A Responder itself does not defend its
// addresses (RFC 5227 section 2.4) beyond answering requests.
package l2
