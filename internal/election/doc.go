// Package election decides which node announces each service IP.
//
// It has two halves that meet only in the caller (the speaker):
//
//   - Owner and StickyOwner, pure functions (owner.go): given an IP and the
//     names of the nodes that may announce it, every speaker computes the
//     same owner with rendezvous hashing, without talking to anyone. The
//     election is per IP, not per Service, so Services sharing an IP share
//     an announcer, and nothing is sent per Service or per IP.
//   - Members (members.go), the liveness half: a memberlist (SWIM with
//     Lifeguard) cluster of the speakers, with heartbeats on top
//     (heartbeat.go): every member sends each other one every 25 ms, and
//     a member silent for 200 ms that does not answer a ping either is
//     counted out, so that an unplanned failover stays within 300 ms at
//     the client (see Tuning). memberlist's own, slower verdict (about
//     0.6 s) follows and is what every member ends up agreeing on. A
//     death it reports is checked with a direct ping before it is
//     believed, because memberlist briefly "kills" healthy members
//     whenever a partition heals (verify.go). A speaker stopping on
//     purpose calls Leave, and the others take over at once.
//
// The speaker feeds Owner with candidates = eligible nodes (from the API
// server: Ready, selectors, endpoints) ∩ Members.Alive(), and recomputes
// whenever either changes (Members.Changes). The API server is not on the
// failover path: a dead node drops out of Alive() however stale the
// informers are.
//
// The package imports nothing from Kubernetes; owner.go imports only pure
// standard-library packages. TestImports keeps it that way.
package election
