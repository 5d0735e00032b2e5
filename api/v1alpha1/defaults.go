package v1alpha1

import "time"

// Defaults of unset fields, for the CRDs and the legacy ConfigMap alike:
// internal/config fills them in when it reads either, and `ironlbctl
// convert` leaves out a field that holds its default. The BGP and BFD ones
// are those of common routers. Where a CRD field has a default marker, the
// marker must state the same value (a marker cannot name a constant): TestDefaults checks on an API server
// that the CRDs fill in these.
const (
	// DefaultPeerPort is BGPPeer spec.peerPort: BGP's port (RFC 4271).
	DefaultPeerPort = 179
	// DefaultHoldTime is BGPPeer spec.holdTime; the keepalive time
	// defaults to a third of the hold time (RFC 4271 section 10).
	DefaultHoldTime = 90 * time.Second
	// DefaultAggregationLength and DefaultAggregationLengthV6 are
	// BGPAnnouncement spec.aggregationLength(V6): one route per address.
	DefaultAggregationLength   = 32
	DefaultAggregationLengthV6 = 128
	// DefaultBFDInterval is BFDProfile spec.receiveInterval and
	// transmitInterval, in milliseconds.
	DefaultBFDInterval = 300
	// DefaultBFDEchoInterval is BFDProfile spec.echoInterval, in
	// milliseconds.
	DefaultBFDEchoInterval = 50
	// DefaultBFDDetectMultiplier is BFDProfile spec.detectMultiplier.
	DefaultBFDDetectMultiplier = 3
	// DefaultBFDMinimumTTL is BFDProfile spec.minimumTTL.
	DefaultBFDMinimumTTL = 254
	// DefaultAutoAssign is IPPool spec.autoAssign: a pool gives addresses
	// to Services that ask for none in particular.
	DefaultAutoAssign = true
)
