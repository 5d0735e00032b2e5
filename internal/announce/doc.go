// Package announce is the one rule of which node may announce which
// Service address: in Layer 2 mode, the one node that answers ARP and NDP
// for it, and in BGP mode, every node that announces a route to it; and,
// where no node may, why. The speakers act on it and ironlbctl explains
// it, so the two cannot disagree.
//
// It is pure: it reads a View and returns values, with no Kubernetes
// client, no network, no membership and no clock (TestDependencies keeps
// it so). Its callers read the facts (internal/kube) and the
// configuration (internal/config) and hand them in.
//
// # One address, in order
//
// A Service address enters as one of View.Services' IPs, read by the
// caller from the Service's status.loadBalancer.ingress. Then:
//
//  1. NewRound groups the View's addresses: each address once, with the
//     Services that use it and its pool (config.Config.PoolFor), and each
//     pool once, with the L2Announcements and BGPAnnouncements that cover
//     it (L2For, BGPFor). An address in no pool, or in a pool no
//     announcement covers, goes no further.
//  2. Round.Layer2 takes the addresses of pools an L2Announcement covers.
//     For each pool once, it checks every node in Reason's order: Ready,
//     not excluded, an alive member (View.Alive), its data path up
//     (View.DataPathDown, unless DataPathsIgnored), selected by one of
//     the pool's L2Announcements, holding one of the interfaces they name.
//     For each address, it keeps the nodes that hold a ready endpoint of
//     every externalTrafficPolicy: Local Service using it. The current
//     owner keeps the address while it is among them (sticky), unless it
//     is drained (cordoned, or in maintenance) or publishes a move
//     (View.Moves): then, and for a new or orphaned address, the caller's
//     OwnerFunc (election.StickyOwner) picks among the best-ranked
//     (L2Announcement.NodePreference, drained nodes last). A current
//     owner that could stay but is not left the address hands it over
//     (Decision.From: a planned handover). The Decision names the owner
//     and its interfaces, or why no node may (refusals: "no node may
//     announce it (node-1: not Ready; ...)"). Mine then gives the
//     speaker on the owner its addresses per interface, and Rebalance
//     the one planned handover that best evens the addresses out.
//  3. Round.BGP takes the addresses of pools a BGPAnnouncement covers,
//     for one node. For each pool once, it checks the node: Ready, not
//     excluded, its data path up, selected by one of the pool's
//     BGPAnnouncements; for each
//     address, unless a Cluster Service uses it, a ready endpoint of one
//     of its Local Services. No owner is chosen: every eligible node
//     announces. The BGPVerdict names the announcements selecting the
//     node, whose attributes and peers the routes carry, or why not.
//
// The speaker (internal/speaker) hands the Decisions to its responders
// (internal/l2) and the BGP addresses to its BGP speaker (internal/bgp);
// ironlbctl matches the BGP verdicts of every node with the sessions the
// speakers report.
//
// # Cost
//
// Every speaker computes a Round at every sync, over every Service of the
// cluster. The work that depends on the pool and the node is done once
// per pool, so a round costs the addresses plus pools x nodes, not
// addresses x nodes (BenchmarkBGP); only Layer 2's owner choice hashes
// each candidate node per address.
package announce
