package speaker

import (
	"context"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
)

// mode is a way of making Service addresses reachable; the speaker has
// one announcer per mode.
type mode int

// Modes, in the order a sync hands them their part: Layer 2 first, since
// its failover is measured in milliseconds, and a BGP update of
// thousands of routes must not delay it.
const (
	modeLayer2 mode = iota
	modeBGP
	numModes
)

// announcer makes one mode's share of the Service addresses reachable
// from this node. The sync loop hands it each turn; it takes its mode's
// decisions from the turn's round (announce.Round.Layer2, .BGP), applies
// them to the network, and later reports them. Its methods are called on
// the sync loop's goroutine only; what it starts in the background, it
// starts through the run function it was built with, so the Speaker stops
// it.
type announcer interface {
	// announce applies the turn's decisions for this node.
	announce(ctx context.Context, t *turn)
	// report hands the announcer's status writers what the last announce
	// did. It runs after every announcer has announced: reports wait,
	// answers do not.
	report(t *turn)
	// handover prepares a planned stop while the speaker leaves the
	// membership: the announcer keeps serving what it serves but
	// announces nothing anew, since the new owners do. It returns how
	// many addresses the other nodes take over from it, which the speaker
	// waits for (Options.HandoverGrace) when there are any.
	handover() int
	// release follows handover, just before the speaker leaves the
	// membership: the announcer stops answering for what the others are
	// about to take over, so that no address is answered from two nodes
	// while they do. Clients that hold this node's MAC keep reaching it
	// (the service addresses stay on the node) until the new owners'
	// announcements reach them.
	release()
}

// turn is what one sync hands every announcer.
type turn struct {
	view  announce.View
	round *announce.Round
	// answer is false while this speaker may not take part in the Layer 2
	// election (it has not settled among the others, or it is cut off
	// from their majority: see quorum.go); it then answers and reports
	// nothing. BGP does not read it: every eligible node announces, and
	// the routers judge a node by its sessions.
	answer bool
	// confirmedOnly limits the Layer 2 answers to the addresses whose
	// ServiceAnnouncement names this node; with degraded false it also
	// writes none (degraded.go).
	degraded, confirmedOnly bool
	// janitor is the node that writes what no owner writes and deletes
	// what nobody needs (see janitor).
	janitor string
	// nodeIP is this node's InternalIP, the default BGP router ID.
	nodeIP netip.Addr
	// announcements are the ServiceAnnouncements in the cache (read only).
	announcements []v1alpha1.ServiceAnnouncement
	// wake is when an announcer wants the next sync at the latest, with
	// no other change (zero: no need); the sync loop wakes then.
	wake time.Time
}
