// Package ipam is ironlb's pure address allocator: pools made of ranges,
// requested addresses, automatic assignment and the IP-sharing rules.
// It imports nothing from Kubernetes and does no I/O, so it can be tested
// exhaustively and benchmarked on its own; the controller feeds it Services
// and writes its answers back.
package ipam
