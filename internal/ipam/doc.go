// Package ipam is ironlb's pure address allocator: pools made of ranges,
// requested addresses, automatic assignment and the IP-sharing rules.
// It imports nothing from Kubernetes and does no I/O, so it can be tested
// exhaustively and benchmarked on its own; the controller feeds it Services
// and writes its answers back.
//
// The controller drives an Allocator in this order: SetPools with the
// validated configuration; Assign each Service's current status addresses
// with zero AssignOptions, so that a restart changes no IP; then, per
// Service, Assign for requested addresses or Allocate for automatic ones,
// and Release when a Service goes away; HoldBack keeps an address a
// Service gave up from the others until its status no longer shows it;
// SetReservations keeps the operator's reserved addresses for the
// services entitled to them.
// Allocations survive configuration changes (see Orphans), and the typed
// errors carry what an operator needs to read in `kubectl describe svc`.
//
// Every operation costs O(log n) in the number of addresses in use, not in
// the size of the pools: a /8 or a /64 costs the same as a /24.
package ipam
