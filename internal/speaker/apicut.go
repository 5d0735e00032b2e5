package speaker

import (
	"context"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
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
//     same holds when it comes back: each lowers the flag once its caches
//     have caught up, and a speaker whose caches lag by more than
//     apiCutOffAfter is treated as cut off until they catch up;
//   - a speaker lowers its flag only once its caches hold what the API
//     server holds (cacheCaughtUp): its view of who announces what must
//     be current before it is a candidate again, or it would take back
//     addresses the others took while it was away.
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

// A speaker's reach of the API server travels in its membership
// metadata as one item, "!api-lost@T" or "!api-ok@T", T being when it
// last changed (Unix milliseconds, by the speaker's clock: the nodes'
// clocks agree to well within a second where NTP runs, as Kubernetes
// needs anyway). Every speaker then counts apiCutOffAfter from the same
// moment, whenever it heard of it. The items have no "=", so speakers
// that do not know them skip them (decodeIfaces). A speaker that
// publishes none (an older version) counts as reaching the API server
// since ever.
const (
	metaAPILost = "!api-lost@"
	metaAPIOK   = "!api-ok@"
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
			ok, why := s.cacheCaughtUp(ctx)
			if !ok {
				s.log.Info("the API server answers again; waiting for the caches to catch up", "why", why)
				continue
			}
			lastOK = time.Now()
			s.log.Info("the API server answers again and the caches have caught up")
			s.setAPIState(apiState{lost: false, since: time.Now()})
		case !lost && time.Since(lastOK) >= apiLostAfter:
			s.log.Warn("the API server has not answered for a while: telling the other speakers", "for", time.Since(lastOK).Round(time.Second), "error", err)
			s.setAPIState(apiState{lost: true, since: time.Now()})
		}
	}
}

// cacheCaughtUp reports whether the cache holds every ServiceAnnouncement
// and Node as recent as the API server has them now (a quorum read),
// comparing resourceVersions, which etcd orders; if not, why.
func (s *Speaker) cacheCaughtUp(ctx context.Context) (bool, string) {
	r, c := s.mgr.GetAPIReader(), s.mgr.GetCache()
	var anns, cached v1alpha1.ServiceAnnouncementList
	if err := r.List(ctx, &anns); err != nil {
		return false, err.Error()
	}
	if err := c.List(ctx, &cached, client.UnsafeDisableDeepCopy); err != nil {
		return false, err.Error()
	}
	have := map[string]string{}
	for _, a := range cached.Items {
		have[a.Namespace+"/"+a.Name] = a.ResourceVersion
	}
	for _, a := range anns.Items {
		if !newer(have[a.Namespace+"/"+a.Name], a.ResourceVersion) {
			return false, "ServiceAnnouncement " + a.Namespace + "/" + a.Name
		}
	}
	var nodes, cachedNodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return false, err.Error()
	}
	if err := c.List(ctx, &cachedNodes, client.UnsafeDisableDeepCopy); err != nil {
		return false, err.Error()
	}
	haveNodes := map[string]string{}
	for _, n := range cachedNodes.Items {
		haveNodes[n.Name] = n.ResourceVersion
	}
	for _, n := range nodes.Items {
		if !newer(haveNodes[n.Name], n.ResourceVersion) {
			return false, "Node " + n.Name
		}
	}
	return true, ""
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

// encodeMeta is this speaker's membership metadata: its reach of the API
// server, then its interfaces (encodeIfaces).
func encodeMeta(ifaces []announce.Iface, st apiState, max int) string {
	item := metaAPIOK
	if st.lost {
		item = metaAPILost
	}
	item += strconv.FormatInt(st.since.UnixMilli(), 10)
	rest := encodeIfaces(ifaces, max-len(item)-1)
	if rest == "" {
		return item
	}
	return item + "," + rest
}

// decodeAPIState reads a member's reach of the API server from its
// metadata: reaching it since ever if the metadata does not say.
func decodeAPIState(meta string) apiState {
	for item := range strings.SplitSeq(meta, ",") {
		for prefix, lost := range map[string]bool{metaAPILost: true, metaAPIOK: false} {
			if ms, ok := strings.CutPrefix(item, prefix); ok {
				if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
					return apiState{lost: lost, since: time.UnixMilli(n)}
				}
			}
		}
	}
	return apiState{}
}
