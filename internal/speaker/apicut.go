package speaker

import (
	"context"
	"strconv"
	"time"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// A node cut off from the API server but still on the LAN and in the
// gossip is the one fault gossip cannot see: its speaker is alive, so
// the others keep it a candidate, but its view of the cluster stops. When
// the API server marks the node NotReady (its kubelet is cut off too,
// after the node monitor's grace, 40 s by default), the others drop it
// and take its addresses; the cut-off speaker never hears of that and
// goes on answering beside them: two MACs for as long as the cut lasts.
// Stepping down when the API server is lost is no answer on its own:
// it would leave its addresses dark until the others see NotReady, and
// when the API server is down for everyone, everyone would step down.
//
// The decision: the speakers tell each other, in their gossip metadata,
// which of them has lost the API server, and all of them, the cut-off
// one included, apply the same rule to what they hear:
//
//   - a speaker whose requests to the API server (a /livez every
//     apiProbeEvery) have all failed for apiLostAfter says so (metaAPILost);
//   - a node whose speaker has said so for apiCutOffAfter, while some
//     other alive speaker has been saying the opposite for as long, is
//     cut off: no candidate for any address (announce: not alive). The
//     others take its addresses, and it stops answering for them at the
//     same moment (each counts apiCutOffAfter from when it heard the
//     flag; the cut-off one hears its own first, so it stops a gossip
//     message's time before they start: no two MACs, a gap of
//     milliseconds);
//   - when the API server is down for everyone, every speaker raises the
//     flag within apiProbeEvery+apiProbeTimeout of the others, well
//     inside apiCutOffAfter: nobody is cut off and nothing moves. The
//     same holds when it comes back: each lowers the flag at its first
//     answer;
//   - a speaker that lowers its flag first reads who announces what from
//     the API server and lays that over its cache until the cache has
//     caught up (overlaid; a broken watch backs off for up to 30 s): its
//     view of who announces what must be current once it is a candidate
//     again, or it would take back addresses the others took while it
//     was away.
//
// The node is cut off from every address about apiLostAfter +
// apiCutOffAfter after the cut (8 s), with no gap; the Node's NotReady
// comes much later and changes nothing more.
const (
	apiProbeEvery   = time.Second
	apiProbeTimeout = time.Second
	apiLostAfter    = 3 * time.Second
	apiCutOffAfter  = 5 * time.Second
)

// apiState is a speaker's reach of the API server and since when.
type apiState struct {
	lost  bool
	since time.Time
}

// watchAPI probes the API server until ctx ends, and sets s.apiLost (and
// kicks a sync) when it has been unreachable for apiLostAfter, and clears
// it once it is reachable and the caches have caught up.
func (s *Speaker) watchAPI(ctx context.Context) {
	t := time.NewTicker(apiProbeEvery)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
		_, err := s.rest.Get().AbsPath("/livez").DoRaw(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		lost := s.apiState().lost
		switch {
		case err == nil && !lost:
			lastOK = time.Now()
		case err == nil && lost:
			// The caches may take long to catch up (a watch that broke
			// backs off, up to 30 s): read who announces what from the
			// API server now, and lay it over the cache until it has.
			var anns v1alpha1.ServiceAnnouncementList
			if err := s.kc.List(ctx, &anns); err != nil {
				continue
			}
			s.setOverlay(anns.Items)
			lastOK = time.Now()
			s.log.Info("the API server answers again")
			s.setAPIState(apiState{lost: false, since: time.Now()})
		case !lost && time.Since(lastOK) >= apiLostAfter:
			s.log.Warn("the API server has not answered for a while: telling the other speakers", "for", time.Since(lastOK).Round(time.Second), "error", err)
			s.setAPIState(apiState{lost: true, since: time.Now()})
		}
	}
}

// overlayFor bounds how long the overlay lasts: an announcement deleted
// since it was read would otherwise keep it for ever.
const overlayFor = time.Minute

// setOverlay records anns, read from the API server, as what the sync
// loop lays over the cached ServiceAnnouncements until the cache holds
// each of them as recent (overlaid).
func (s *Speaker) setOverlay(anns []v1alpha1.ServiceAnnouncement) {
	s.apiMu.Lock()
	defer s.apiMu.Unlock()
	s.overlay = map[string]v1alpha1.ServiceAnnouncement{}
	for _, a := range anns {
		s.overlay[a.Namespace+"/"+a.Name] = a
	}
	s.overlayUntil = time.Now().Add(overlayFor)
}

// overlaid returns the cached announcements with the overlay's laid over
// them wherever the cache's are older, and drops the overlay once the
// cache holds every one of them as recent.
func (s *Speaker) overlaid(cached []v1alpha1.ServiceAnnouncement) []v1alpha1.ServiceAnnouncement {
	s.apiMu.Lock()
	defer s.apiMu.Unlock()
	if s.overlay == nil {
		return cached
	}
	if time.Now().After(s.overlayUntil) {
		s.overlay = nil
		return cached
	}
	out := make([]v1alpha1.ServiceAnnouncement, 0, len(cached))
	inCache := map[string]bool{}
	behind := false
	for _, a := range cached {
		key := a.Namespace + "/" + a.Name
		inCache[key] = true
		if o, ok := s.overlay[key]; ok && !newer(a.ResourceVersion, o.ResourceVersion) {
			out = append(out, o) // the cache's is older
			behind = true
			continue
		}
		out = append(out, a)
	}
	for key, o := range s.overlay {
		if !inCache[key] {
			out = append(out, o)
			behind = true
		}
	}
	if !behind {
		s.overlay = nil
	}
	return out
}

// newer reports whether resourceVersion have is at least want: both are
// etcd revisions, which the API server hands out in order.
func newer(have, want string) bool {
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	if err1 != nil || err2 != nil {
		return have == want
	}
	return h >= w
}

// apiState returns this speaker's reach of the API server as watchAPI
// last found it.
func (s *Speaker) apiState() apiState {
	s.apiMu.Lock()
	defer s.apiMu.Unlock()
	return s.api
}

// setAPIState records st and has the sync loop publish it.
func (s *Speaker) setAPIState(st apiState) {
	s.apiMu.Lock()
	s.api = st
	s.apiMu.Unlock()
	s.kickLinks()
}

// cutOff returns the nodes cut off from the API server at now, given
// each alive member's state (see the rules above), and the next moment
// at which that may change with no other change (zero if none: no
// speaker says it lost the API server).
func cutOff(states map[string]apiState, now time.Time) (cut map[string]bool, next time.Time) {
	anyLost, reached := false, false
	for _, st := range states {
		anyLost = anyLost || st.lost
		if !st.lost && now.Sub(st.since) >= apiCutOffAfter {
			reached = true
		}
	}
	if !anyLost {
		return nil, time.Time{}
	}
	for name, st := range states {
		due := st.since.Add(apiCutOffAfter)
		if due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		if st.lost && reached {
			if cut == nil {
				cut = map[string]bool{}
			}
			cut[name] = true
		}
	}
	return cut, next
}
