package election

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Tuning holds memberlist's failure-detection timers. A zero field takes
// the default below; the defaults are tuned for speakers on one LAN
// (sub-millisecond round trips), where the failover budget of
// design/PERFORMANCE.md (client-side gap p99 <= 1 s when the owner crashes)
// leaves the failure detector about 800 ms.
//
// How long detection takes. memberlist (SWIM with Lifeguard's extensions)
// declares a crashed member dead in three steps:
//
//  1. Waiting to be probed. Each member probes one peer per ProbeInterval,
//     round robin, so with n members every peer is probed by each of the
//     others once per (n-1) ProbeIntervals, and by someone about once per
//     ProbeInterval. With 3 members: 0 to 2 intervals, 2/3 of one on
//     average.
//  2. The failed probe. A ping unanswered within ProbeTimeout is retried
//     through up to 3 other members (indirect probes) and over TCP; the
//     prober gives up when the ProbeInterval is over and marks the peer
//     suspect. Suspicion is gossiped (to GossipNodes=3 peers every
//     GossipInterval, and piggybacked on every probe), so the suspected
//     member learns of it and can refute it if it is in fact alive.
//  3. The suspicion timeout. The suspect is declared dead after
//     SuspicionMult * max(1, log10(n)) * ProbeInterval, but only once k =
//     SuspicionMult-2 other members have confirmed the suspicion by their
//     own failed probes; until then the timeout starts from
//     SuspicionMaxTimeoutMult times that and shrinks with each
//     confirmation. When fewer than k confirmations are possible (n-2 < k,
//     e.g. 3 members with the default 4) the minimum applies at once.
//     The death is then gossiped, within a GossipInterval or two.
//
// memberlist's LAN defaults (1 s interval, 500 ms probe timeout, mult 4)
// give up to 2 s of waiting + 1 s of probing + 4 s of suspicion: MetalLB's
// 5-6 s gap. The defaults here:
//
//   - ProbeInterval 100 ms, ProbeTimeout 30 ms. A LAN round trip is well
//     under 1 ms; 30 ms leaves room for a busy node's scheduler before the
//     indirect probes start. The timeout must stay well under half the
//     interval: a member asked to probe indirectly sends a nack after its
//     own ProbeTimeout, so the nack reaches the prober 2*ProbeTimeout
//     (plus round trips) after its ping, and a nack that misses the end of
//     the interval is counted by Lifeguard against the prober's own
//     health, which slows its probing (memberlist's 1 s / 500 ms defaults
//     always lose that race). Steps 1+2 take 100-300 ms with 3 members.
//     Cost: each member sends 10 pings a second (about 100 bytes each) and
//     answers as many, whatever the cluster size.
//   - SuspicionMult 4, SuspicionMaxTimeoutMult 3. The suspicion timeout is
//     400 ms for up to 9 members (log10(n) < 1), rising to 800 ms at 100.
//     This is the window in which a live but briefly stalled member (CPU
//     starvation, a CFS throttling period, a lost packet) refutes the
//     suspicion instead of losing its IPs; a member must be silent for
//     about 500 ms (a probe interval plus the suspicion window) before it
//     is declared dead, against 5 s with memberlist's defaults. Speakers
//     should therefore run without a CPU limit. From 4 members on, two
//     confirmations are needed for the 400 ms minimum: each other member
//     probes the suspect within n-1 intervals, so with few members the
//     last confirmation can come a little after 400 ms, and the death
//     waits for it; the maximum (1.2 s) applies only when the suspicion
//     rests on one member's word, the case Lifeguard guards against.
//   - GossipInterval 50 ms, so that suspicion and death reach every member
//     within a few tens of milliseconds. Gossip is sent only while there is
//     news, so an idle cluster pays nothing for it.
//
// On top of memberlist, Members pings a member reported dead once more
// before dropping it (see verify.go), which adds at most ProbeTimeout.
//
// Total with 3 members: 0.5 s at best (interval + suspicion), about 0.6 s
// typically and under 0.8 s at worst (two intervals of waiting, one of
// probing, the suspicion, the check and a gossip hop). Measured on the lab
// LAN (veths, a node's link cut) on a 2-core machine at load average ~10:
// median 588 ms, worst of 20 761 ms (BenchmarkLabLinkCut). Lifeguard's
// awareness (a member that misses its own acks slows its probing, up to 8
// times) and the suspicion confirmations are left on: they are what keeps
// a sick member from declaring healthy ones dead.
type Tuning struct {
	// ProbeInterval is how often a member probes one of its peers.
	// Default 100 ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct ping waits for its ack before
	// indirect probes are sent. It must be less than half of
	// ProbeInterval. Default 30 ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout (see above). Default 4.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the timeout while confirmations are
	// missing, as a multiple of the minimum. Default 3.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often pending news is gossiped. Default 50 ms.
	GossipInterval time.Duration
	// PushPullInterval is how often a member exchanges its full state with
	// a random peer over TCP (anti-entropy, which repairs what gossip
	// missed). Default 10 s.
	PushPullInterval time.Duration
}

// Defaults for Tuning; see there for why.
const (
	DefaultProbeInterval           = 100 * time.Millisecond
	DefaultProbeTimeout            = 30 * time.Millisecond
	DefaultSuspicionMult           = 4
	DefaultSuspicionMaxTimeoutMult = 3
	DefaultGossipInterval          = 50 * time.Millisecond
	DefaultPushPullInterval        = 10 * time.Second
)

// withDefaults returns t with every zero field set to its default.
func (t Tuning) withDefaults() Tuning {
	if t.ProbeInterval == 0 {
		t.ProbeInterval = DefaultProbeInterval
	}
	if t.ProbeTimeout == 0 {
		t.ProbeTimeout = DefaultProbeTimeout
	}
	if t.SuspicionMult == 0 {
		t.SuspicionMult = DefaultSuspicionMult
	}
	if t.SuspicionMaxTimeoutMult == 0 {
		t.SuspicionMaxTimeoutMult = DefaultSuspicionMaxTimeoutMult
	}
	if t.GossipInterval == 0 {
		t.GossipInterval = DefaultGossipInterval
	}
	if t.PushPullInterval == 0 {
		t.PushPullInterval = DefaultPushPullInterval
	}
	return t
}

// validate reports the first setting memberlist would misbehave with.
func (t Tuning) validate() error {
	switch {
	case t.ProbeInterval < 0, t.ProbeTimeout < 0, t.GossipInterval < 0, t.PushPullInterval < 0:
		return fmt.Errorf("tuning: negative interval")
	case 2*t.ProbeTimeout >= t.ProbeInterval:
		// Otherwise indirect probes' nacks come too late (see Tuning).
		return fmt.Errorf("tuning: probe timeout %s must be less than half the probe interval %s", t.ProbeTimeout, t.ProbeInterval)
	case t.SuspicionMult < 1:
		return fmt.Errorf("tuning: suspicion multiplier %d, want >= 1", t.SuspicionMult)
	case t.SuspicionMaxTimeoutMult < 1:
		return fmt.Errorf("tuning: suspicion max timeout multiplier %d, want >= 1", t.SuspicionMaxTimeoutMult)
	}
	return nil
}

// apply writes t into a memberlist config.
func (t Tuning) apply(c *memberlist.Config) {
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval = t.GossipInterval
	c.PushPullInterval = t.PushPullInterval
}
