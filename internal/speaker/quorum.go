package speaker

import (
	"context"
	"fmt"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

// startupGrace bounds how long a starting speaker stays silent when it can
// reach no other speaker. Until it has heard from the others it would take
// itself for the only candidate and claim every address: it would pull
// all traffic to itself and, worse, report itself as the announcer of
// every address, which the others then honour (election.StickyOwner), so
// the addresses would move to it for good. So it answers nothing until it
// has joined at least one other speaker (a join exchanges the whole
// membership), or every Ready node's speaker is a member, or this long has
// passed since its membership started: then it is the first speaker up
// (a fresh install) or the others are down, and answering is better than
// not. It is long enough for the joins of a loaded node to finish.
const startupGrace = 10 * time.Second

// settled reports whether a speaker whose membership has run for since,
// and has joined another speaker if joined, knows enough of the others to
// take part in elections. A join is a full state exchange; merely hearing
// that some member is alive is not: that member may be the first of
// several the gossip brings back after a cut, and electing then would
// claim the addresses of those still unheard of. v.Alive must be nil only
// when the speaker runs without membership, not while its membership is
// still starting (the caller waits for that).
func settled(v announce.View, joined bool, since time.Duration) bool {
	if v.Alive == nil || joined || since >= startupGrace {
		return true
	}
	for name, n := range v.Nodes {
		if n.Ready && !v.Alive[name] {
			return false
		}
	}
	return true
}

// quorum reports whether this speaker, self, may answer at all: whether it
// sees a strict majority of the speakers it knows, so that a speaker cut
// off from the others' gossip (a firewall on the memberlist port, a
// partition that leaves it on the clients' segment) does not go on
// answering for addresses the majority has already moved: two MACs for one
// address is what MetalLB does in that case, and clients then flip between
// nodes.
//
// known are the nodes seen as members since this speaker started that are
// still Ready, and self. With fewer than three there is no majority to
// ask: a two-node cluster keeps answering on both sides of a cut
// (availability over uniqueness), as without the rule. Without membership
// (v.Alive nil) node readiness decides and there is nothing to count.
func quorum(v announce.View, self string, seen map[string]bool) (bool, string) {
	if v.Alive == nil {
		return true, ""
	}
	known := knownSpeakers(v, self, seen)
	alive := 0
	for name := range known {
		if v.Alive[name] {
			alive++
		}
	}
	if len(known) < 3 || 2*alive > len(known) {
		return true, ""
	}
	return false, fmt.Sprintf("this speaker reaches %d of the %d speakers it knows, not a majority: it answers for nothing until it reaches more, so that no address is answered by two nodes", alive, len(known))
}

// knownSpeakers are the speakers a majority is counted of: those in seen
// whose node is Ready, and self.
func knownSpeakers(v announce.View, self string, seen map[string]bool) map[string]bool {
	out := map[string]bool{self: true}
	for name := range seen {
		if n, ok := v.Nodes[name]; ok && n.Ready {
			out[name] = true
		}
	}
	return out
}

// standing is what this speaker knows of its place among the others,
// kept from one sync to the next by the sync loop.
type standing struct {
	// seen are the members seen alive since the start (quorum).
	seen map[string]bool
	// started is when the membership was first seen running; settled
	// turns true once this speaker has joined the others (see settled);
	// majority says whether it reached a majority at the last sync (see
	// quorum), to log the changes; what the others are told is
	// Speaker.quorate.
	started  time.Time
	settled  bool
	majority bool
}

// stand updates the speaker's standing from v and reports whether it may
// answer: it has settled among the others and reaches their majority. On
// settling, it reads v.Current from the API server itself: the cache may
// be older than a takeover made while this speaker was away (its lists
// are served from the API server's watch cache), and announcing here on
// a stale record would pull addresses back from the node that took them
// over.
func (s *Speaker) stand(ctx context.Context, v *announce.View) (bool, error) {
	st := &s.standing
	for name := range v.Alive {
		st.seen[name] = true
	}
	st.seen[s.opts.NodeName] = true
	if !st.settled {
		st.settled = s.isSettled(*v)
		if st.settled {
			if err := s.readCurrent(ctx, v); err != nil {
				st.settled = false
				return false, err
			}
		}
	}
	ok, why := quorum(*v, s.opts.NodeName, st.seen)
	if ok != st.majority {
		if ok {
			s.log.Info("reaching a majority of the speakers again")
		} else {
			s.log.Warn("cut off from the other speakers", "why", why, "alive", v.Alive)
		}
		st.majority = ok
	}
	// When it may not, the Layer 2 announcer answers and reports nothing:
	// this speaker's view is not one the others share.
	return st.settled && ok, nil
}

// isSettled reports whether this speaker has joined the others (see
// settled). While its membership is configured but not yet running, it
// has not: it knows no member, not even itself, and must not mistake that
// for running without membership.
func (s *Speaker) isSettled(v announce.View) bool {
	st := &s.standing
	if s.opts.MemberlistBind != "off" && !s.membersDown.Load() {
		if s.members == nil || v.Alive == nil {
			return false // not started yet (membership)
		}
		if st.started.IsZero() {
			st.started = time.Now()
		}
	}
	return settled(v, s.members != nil && s.members.Joined(), time.Since(st.started))
}
