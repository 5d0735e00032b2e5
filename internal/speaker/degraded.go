package speaker

import (
	"context"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/kube"
)

// Degraded mode: what the speakers do when gossip is lost everywhere.
//
// A speaker that reaches no majority of the speakers it knows answers for
// nothing (quorum.go): the majority, elsewhere, has taken its addresses.
// But when the gossip port is blocked on every node (one firewall change)
// there is no majority anywhere, and every address would go dark until
// gossip returns. Answering from every node instead, as MetalLB does, is
// two MACs per address. So the speakers fall back on the API server,
// which they still reach, as the arbiter:
//
//   - Each speaker says in its registry Lease (registry.go) whether it
//     answers as one of a majority (quorateAnnotation), rewritten as soon
//     as that changes. While it does not, it reads the registry every
//     degradedPoll.
//   - A speaker is degraded when it is not one of a majority, reaches the
//     API server, and its last read of the registry (at most
//     degradedStale old) shows a majority of the speakers it knows with a
//     fresh Lease and none saying it answers as one of a majority: no
//     majority exists anywhere, yet most speakers run.
//   - A degraded speaker elects as usual, with the nodes whose speaker
//     holds a fresh Lease as the members, but answers only for the
//     addresses whose ServiceAnnouncement names it. The announcements
//     stay as they were when gossip went, so every address keeps its one
//     node. An address moves only by a write of its announcement: when
//     its node's Lease is gone (deleted by a speaker stopping cleanly
//     while degraded, or expired after registryDuration), or the node is
//     no candidate any more, the elected node writes it (an update, which
//     the API server refuses if another write came first) and answers
//     once its cache shows the write. Failover is then the registry's
//     pace: about degradedPoll for a speaker that stops cleanly, up to
//     registryDuration for one that dies.
//   - Leaving: a speaker that reaches a majority again says so in its
//     Lease at once; the degraded ones read it within degradedPoll and
//     stop answering (they are not one of that majority). For
//     degradedHold after it last did not answer as one of a majority
//     (degraded, cut off alone, or not yet settled), a speaker answers
//     only what the announcements name it for and writes none, so that
//     it takes nothing a degraded speaker still answers for; then the
//     usual election (sticky: the owners stay) resumes. The same hold
//     keeps a node whose gossip was cut alone from taking its addresses
//     back when gossip returns: it regains a majority on hearing one
//     member, before it hears that another one owns them now.
//
// A node that is cut off from gossip alone never degrades: the others'
// Leases say they are a majority. A speaker that cannot reach the API
// server never degrades either (apicut.go): it could not learn that a
// majority came back.
const (
	quorateAnnotation = kube.SpeakerQuorateAnnotation
	degradedPoll      = time.Second
	degradedStale     = 3 * degradedPoll
	degradedHold      = 3 * time.Second
)

// degradedState is what a speaker knows of degraded mode.
type degradedState struct {
	// Set by pollRegistry, read by the sync loop.
	mu   sync.Mutex
	read time.Time       // when the registry was last read
	reg  map[string]bool // that read: registry()

	// The sync loop's own.
	active bool // degraded at the last sync
	// out is when this speaker last did not answer as one of a majority
	// (degraded, cut off, or not settled yet).
	out time.Time
}

// setQuorate records in a speaker Lease's metadata whether its speaker
// answers as one of a majority.
func setQuorate(m *metav1.ObjectMeta, quorate bool) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[quorateAnnotation] = strconv.FormatBool(quorate)
}

// publishQuorate records whether this speaker answers as one of a
// majority, and has its Lease rewritten at once when that changed.
func (s *Speaker) publishQuorate(q bool) {
	if s.quorate.Swap(q) != q {
		select {
		case s.leaseKick <- struct{}{}:
		default:
		}
	}
}

// pollRegistry reads the registry every degradedPoll while this speaker
// does not answer as one of a majority, and has the sync loop look at it.
func (s *Speaker) pollRegistry(ctx context.Context) {
	t := time.NewTicker(degradedPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.quorate.Load() {
			continue
		}
		leases, err := s.listLeases(ctx)
		if err != nil {
			continue // the read grows stale: not degraded
		}
		now := time.Now()
		s.degraded.mu.Lock()
		s.degraded.read, s.degraded.reg = now, registry(leases, now)
		s.degraded.mu.Unlock()
		s.kickSync()
	}
}

// isDegraded reports whether a speaker that is not one of a majority is
// degraded (see the top of this file): it reaches the API server, reg was
// read at most degradedStale before now, a majority of known (the
// speakers it knows, itself included) hold a fresh Lease in reg, and no
// Lease in reg says its speaker answers as one of a majority.
func isDegraded(known map[string]bool, reg map[string]bool, read, now time.Time, apiLost bool) bool {
	if apiLost || read.IsZero() || now.Sub(read) > degradedStale {
		return false
	}
	fresh := 0
	for name, quorate := range reg {
		if quorate {
			return false
		}
		if known[name] {
			fresh++
		}
	}
	return 2*fresh > len(known)
}

// degrade is the sync loop's step after stand: for a speaker that may not
// answer (answer false), it works out whether it is degraded and, if so,
// makes v's members the nodes with a fresh Lease. It returns whether this
// speaker answers, whether it is degraded, and whether it answers only for
// what the announcements name it for (degraded, or within degradedHold of
// last not answering as one of a majority).
func (s *Speaker) degrade(v *announce.View, answer bool) (answers, degraded, confirmedOnly bool) {
	now := time.Now()
	d := &s.degraded
	if !answer && v.Alive != nil {
		d.mu.Lock()
		reg, read := d.reg, d.read
		d.mu.Unlock()
		if isDegraded(knownSpeakers(*v, s.opts.NodeName, s.standing.seen), reg, read, now, s.apiPublished.lost) {
			degraded = true
			v.Alive = map[string]bool{s.opts.NodeName: true}
			for name := range reg {
				v.Alive[name] = true
			}
			v.New = nil
		}
	}
	if degraded != d.active {
		if degraded {
			s.log.Warn("degraded mode: no speaker reaches a majority of the others, but most still reach the API server; answering only for the addresses whose ServiceAnnouncement names this node, and moving one only by writing its announcement", "members", v.Alive)
		} else {
			s.log.Info("degraded mode over", "majority", answer)
		}
		d.active = degraded
	}
	if degraded || !answer {
		d.out = now
	}
	if degraded {
		return true, true, true
	}
	return answer, false, answer && !d.out.IsZero() && now.Sub(d.out) < degradedHold
}
