package election

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Tuning holds the failure detector's timers: memberlist's and the
// heartbeats' (heartbeat.go). A zero field takes the default below; the
// defaults are tuned for speakers on one LAN (sub-millisecond round
// trips), for an unplanned failover whose client-side gap stays within
// 300 ms at p99 (issue 17; design/PERFORMANCE.md asks 1 s): the detector
// gets about 250 ms of it, the speaker's reaction (a sync and a
// gratuitous ARP, under a millisecond in the lab's logs) and the client's
// next probe the rest.
//
// Two detectors run side by side. The heartbeats are the fast one and
// decide the failover; memberlist is the slow one, which every member
// eventually agrees with, and the one that covers what the heartbeats do
// not watch (a member that never sent one: an older speaker).
//
// The heartbeats. Every member sends each other member a heartbeat every
// HeartbeatInterval (25 ms) and nothing answers it: a receiver notes when
// it last heard each member. A member silent for HeartbeatTimeout
// (200 ms) that also did not answer a direct ping (sent at every tick
// from half the timeout on, each waiting ProbeTimeout), and that no other
// member still hears (each heartbeat lists the members its sender has
// not heard lately), is counted out of Alive, unless this member is the
// one cut off or was itself stalled (see heartbeat.go). With the last
// heartbeat up to an interval before the crash and the judgement at the
// next tick, detection takes 175 to 225 ms. Only silence counts, not
// lateness: a heartbeat 90 ms late (the fault suite's 50 ms ± 40 ms of
// delay) costs nothing, and 5% loss needs about five heartbeats lost in a
// row (5% to the fifth: 3e-7) to look like a death, which the unanswered
// ping must then confirm. A process confined to 10% of a CPU sends its
// heartbeats in bursts 100 ms apart, and now and then 200-310 ms apart,
// 350-550 ms on a loaded machine (measured in the Starvation row): a
// member late again and again is given three times its longest recent
// gap instead of the 200 ms. And a member that answers no ping but whose
// gossip port accepts a TCP connection (its node's kernel accepts for a
// process that is frozen or starved, not for a dead one) is given
// holdMax, 2 s, of silence: a stall, a long stop-the-world or a stalled
// VM, moves nothing, and a frozen speaker's node still forwards its
// addresses' traffic meanwhile. A dead speaker's port refuses, a dead or
// cut-off node's does not answer, so a failure still takes 200 ms.
// Speakers should still run without a CPU limit, or with a generous one:
// one starved for 2 s is counted out.
//
// memberlist (SWIM with Lifeguard's extensions) declares a crashed member
// dead in three steps:
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
//     Memberlist's probing is not made faster to match the heartbeats:
//     its probe times out after ProbeTimeout, so a faster SWIM would
//     suspect a member whose answers are merely late more often, and its
//     suspicion would have to be shorter than the 400 ms in which such a
//     member refutes it.
//   - SuspicionMult 4, SuspicionMaxTimeoutMult 3. The suspicion timeout is
//     400 ms for up to 9 members (log10(n) < 1), rising to 800 ms at 100.
//     This is the window in which a live but briefly stalled member
//     refutes the suspicion. From 4 members on, two confirmations are
//     needed for the 400 ms minimum: each other member probes the suspect
//     within n-1 intervals, so with few members the last confirmation can
//     come a little after 400 ms, and the death waits for it; the maximum
//     (1.2 s) applies only when the suspicion rests on one member's word,
//     the case Lifeguard guards against.
//   - GossipInterval 50 ms, so that suspicion and death reach every member
//     within a few tens of milliseconds. Gossip is sent only while there is
//     news, so an idle cluster pays nothing for it.
//
// A death memberlist reports is checked before it is believed (see
// verify.go): a member that answers a direct ping, or whose heartbeat was
// heard within HeartbeatTimeout (a starved member: its longer timeout),
// is kept. memberlist's path alone takes
// 0.5 s at best (interval + suspicion), about 0.6 s typically and under
// 0.8 s at worst; with the heartbeats it matters only where they are off.
//
// Measured on a 2-core machine under load: crash detection on loopback
// (TestDetectionTimes) median 200 ms, worst 224 ms of 6; the client-side
// unplanned failover gap on the lab LAN (test/bench/failover, owner's
// speaker killed and link cut, UDP probe every 10 ms, 20 runs) p50 0.21 s,
// p99 and worst 0.225-0.239 s, against p50 0.62 s / p99 0.84 s with memberlist
// alone. The speaker's reaction is not where the time goes: it logs the
// new owner's announcement within a millisecond of the member counted out.
//
// Cost, per member and second at rest, sent and as much received:
// 2/ProbeInterval memberlist packets (its pings and the acks to the
// others' pings) plus (n-1)/HeartbeatInterval heartbeats (about 70 bytes
// on the wire, 30 more with a key): 20 + 40(n-1) packets for up to
// HeartbeatPeers+1 members. BenchmarkLabTraffic measured, per member and
// second, 99 packets and 7.2 kB with 3 members, 181 and 12.8 kB with 5
// (the formula: 100, 180). A larger cluster watches a ring (ring.go):
// 20 + 40*HeartbeatPeers packets (180 with the default 4) whatever its
// size, plus memberlist's gossip while there is news and its push-pull,
// which grow with it (README, "Many nodes").
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
	// HeartbeatInterval is how often a member sends every other member a
	// heartbeat (heartbeat.go). Default 25 ms; negative turns heartbeats
	// off, leaving detection to memberlist alone.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a member must be silent (and not
	// answer a ping) before it is counted out of Alive. It must be more
	// than twice ProbeTimeout plus HeartbeatInterval. Default 200 ms.
	HeartbeatTimeout time.Duration
	// HeartbeatPeers bounds how many members each member sends heartbeats
	// to: in a cluster of more members than HeartbeatPeers+1, each sends
	// them to the HeartbeatPeers members after it in name order and a
	// member is counted out when most of those suspect it (ring.go).
	// Default 4, at least 2.
	HeartbeatPeers int
}

// Defaults for Tuning; see there for why.
const (
	DefaultProbeInterval           = 100 * time.Millisecond
	DefaultProbeTimeout            = 30 * time.Millisecond
	DefaultSuspicionMult           = 4
	DefaultSuspicionMaxTimeoutMult = 3
	DefaultGossipInterval          = 50 * time.Millisecond
	DefaultPushPullInterval        = 10 * time.Second
	DefaultHeartbeatInterval       = 25 * time.Millisecond
	DefaultHeartbeatTimeout        = 200 * time.Millisecond
	DefaultHeartbeatPeers          = 4
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
	if t.HeartbeatInterval == 0 {
		t.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if t.HeartbeatTimeout == 0 {
		t.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if t.HeartbeatPeers == 0 {
		t.HeartbeatPeers = DefaultHeartbeatPeers
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
	case t.HeartbeatPeers < 2:
		// One watcher's word alone must never count a member out.
		return fmt.Errorf("tuning: heartbeat peers %d, want >= 2", t.HeartbeatPeers)
	case t.SuspicionMaxTimeoutMult < 1:
		return fmt.Errorf("tuning: suspicion max timeout multiplier %d, want >= 1", t.SuspicionMaxTimeoutMult)
	case t.HeartbeatInterval > 0 && t.HeartbeatTimeout <= 2*(t.ProbeTimeout+t.HeartbeatInterval):
		// The confirmation ping must go out after half the timeout and
		// fail before its end (heartbeat.go).
		return fmt.Errorf("tuning: heartbeat timeout %s must be more than twice the probe timeout %s plus the heartbeat interval %s", t.HeartbeatTimeout, t.ProbeTimeout, t.HeartbeatInterval)
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
