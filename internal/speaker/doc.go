// Package speaker is the per-node daemon that makes Service addresses
// reachable: it answers ARP and NDP for the Layer 2 addresses its node
// owns and announces routes to the BGP addresses its node may announce.
// It decides nothing itself: who may announce what is internal/announce's
// rule, shared with ironlbctl.
//
// # One address, from the Service status to the wire
//
//  1. The controller writes the address into the Service's
//     status.loadBalancer.ingress. The speaker's Service records
//     (records.go: serviceRecords, reduceService, with kube.IngressIPs)
//     keep it, and the change kicks a sync (Speaker.watch).
//  2. Speaker.loop runs Speaker.sync. Speaker.view reads the view
//     (announce.View): the Config, rebuilt only when the config objects
//     changed (configCache, kube.InputVersion); the Nodes (kube.NodeReady,
//     kube.Excluded); the membership's alive speakers and their
//     interfaces (election.Members); the Services from the records with,
//     for externalTrafficPolicy: Local, the nodes holding a ready endpoint
//     (the EndpointSlice records); and who announces each address now,
//     from the ServiceAnnouncements.
//  3. Speaker.stand (quorum.go) says whether this speaker may take part
//     in the Layer 2 election: it has settled among the others and
//     reaches their majority.
//  4. announce.NewRound groups the view's addresses by pool, and sync
//     hands the turn to each announcer in mode order.
//  5. Layer 2 (layer2.go): layer2.announce asks the round for the owners
//     (announce.Round.Layer2, with election.StickyOwner), takes this
//     node's addresses per interface (announce.Mine), and gives each
//     interface's l2.Responder its set (SetAddrs). The responder sends
//     gratuitous ARP and unsolicited NA for a new address, and answers
//     each ARP request and Neighbor Solicitation for it with this node's
//     MAC: the ARP reply.
//  6. BGP (bgp.go): bgpAnnouncer.announce asks the round for this node's
//     addresses (announce.Round.BGP) and, when they, the configuration
//     or the node's labels changed (routeInput), turns them into routes
//     (bgp.Routes) and hands them to the embedded BGP speaker
//     (bgp.Speaker.SetRoutes), which sends the BGP UPDATE on each
//     Established session whose peer the announcement names.
//  7. Then each announcer reports, in its own goroutine so that a slow API
//     server never delays an answer: layer2.report hands statusWriter
//     (status.go) the ServiceAnnouncements this node writes, naming the
//     owner, its interface and MAC; bgpAnnouncer.report keeps
//     sessionWriter (bgpstatus.go) writing this node's BGPSessionStates.
//
// # Interfaces
//
// The speaker answers on the interfaces LocalIfaces lists, one
// l2.Responder each (ifaceSet), and publishes them with their MACs as its
// membership metadata, from which the other speakers learn which nodes
// may own an address whose L2Announcement names interfaces. The list
// follows the host: watchLinks hears every link and address change over
// rtnetlink and wakes the sync loop, which reads the interfaces again
// (Speaker.refreshIfaces, also on every resync) and, when the list
// changed, opens or closes responders, hands the Layer 2 announcer the
// new set, publishes the new metadata (election.Members.SetMeta) and
// syncs. So a bond or VLAN made after the speaker started is answered on
// within moments.
//
// # Faults: one answering node, whatever breaks
//
// What a speaker may answer for rests on more than the gossip, each part
// where the fault suite (test/faults) found a hole:
//   - registry.go: every speaker holds a Lease, so a speaker that starts
//     cut off from the others' gossip knows they exist and answers for
//     nothing until it reaches a majority of them (quorum.go);
//   - apicut.go: a node cut off from the API server but still on the LAN
//     cannot learn from the Node object that the others took its
//     addresses. The design decision and its reason are written there:
//     the speakers tell each other through the gossip who lost the API
//     server, with the moment it did, and all of them drop a node that
//     has said so for 5 s while another reaches it, so it stops as they
//     start; when the API server is down for everyone, nobody is dropped;
//   - members.go (membership): a membership that cannot start (the key
//     Secret unreadable) is tried again, and meanwhile the speaker answers
//     for nothing rather than electing by node readiness apart from the
//     others;
//   - announcer.release: a stopping speaker stops answering before it
//     leaves, so that its addresses never have two answering nodes;
//   - meta.go (probation): a member that joined moments ago, long after
//     the others, is a candidate only where no other node is, so that a
//     node that comes back after an outage of the API server takes
//     nothing back while the new owners' reports reach the API server;
//     and New waits for an absent API server rather than exit;
//   - degraded.go: when gossip is lost everywhere (no majority anywhere,
//     most speakers still reaching the API server), the speakers fall
//     back on the API server as the arbiter: each answers only for the
//     addresses whose ServiceAnnouncement names it, and an address moves
//     only by a write of its announcement; the decision and its bounds
//     are written there;
//   - handover.go: an address moved while its owner could keep it (a
//     cordon, the rebalancing) goes by a planned handover: the old owner
//     answers in the new owner's name before the new owner answers at
//     all, so that no moment has two MACs or none;
//   - rebalance.go: one address at a time, only while the membership and
//     the nodes are steady, the owner of the address starting the move
//     and telling the others, so that a move starts once.
//
// # Shape
//
// Speaker is the thin loop: it owns the records, the caches, the
// membership and the goroutines. Each mode is an announcer (announcer.go)
// built with what it needs passed in (logger, metrics, clients, node
// name, a function to start goroutines with), never the Speaker itself.
// On a planned stop, Start asks each announcer to hand over (the Layer 2
// responders go quiet) and to release what the others are to take over
// (the Layer 2 responders answer nothing more, so that no address has two
// answering nodes), leaves the membership so the others take over, waits
// Options.HandoverGrace, and only then stops the responders and GoBGP.
package speaker
