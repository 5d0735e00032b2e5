package speaker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// sync is one turn of the speaker: it reads the view of the cluster and
// the membership, works out whether this speaker may answer (quorum.go),
// groups the view's addresses (announce.NewRound), hands the turn to
// each announcer, which applies its mode's decisions, and then lets each
// report.
func (s *Speaker) sync(ctx context.Context) error {
	s.wakeAt = time.Time{}
	v, anns, err := s.view(ctx)
	if err != nil {
		return err
	}
	answer, err := s.stand(ctx, &v)
	if err != nil {
		return err
	}
	s.publishQuorate(answer)
	answer, degraded, confirmedOnly := s.degrade(&v, answer)
	v.Alive = s.candidates(v.Alive)
	t := &turn{
		view: v, round: announce.NewRound(v), answer: answer, janitor: janitor(v),
		nodeIP: s.nodeIP, announcements: anns, degraded: degraded, confirmedOnly: confirmedOnly,
	}
	for _, a := range s.announcers {
		a.announce(ctx, t)
	}
	t.wake = earliest(t.wake, s.rebalance(t, s.l2.ds, time.Now()))
	s.wakeAt = earliest(s.wakeAt, t.wake)
	s.metrics.observeMembers(v, s.members)
	for _, a := range s.announcers {
		a.report(t)
	}
	s.synced.Store(true)
	return nil
}

// configCache is the Config the speaker last built and the version of
// its input (kube.InputVersion). A sync reads the config objects from
// the cache every time, but builds a Config only when one of them
// changed: Services and EndpointSlices change far more often.
type configCache struct {
	version string
	built   bool
	// cfg is the last Config built, or before the first build the last
	// good versions saved in the cluster (loadLastGood), so that an
	// object invalid as the speaker starts keeps its last good version.
	cfg *config.Config
}

// get returns the Config of in, building it only when in's version
// differs from the last one's. The problems are the controller's to
// report.
func (c *configCache) get(in config.Input) *config.Config {
	if v := kube.InputVersion(in); !c.built || v != c.version {
		c.cfg, _ = config.Build(in, c.cfg)
		c.version, c.built = v, true
	}
	return c.cfg
}

// loadLastGood reads the last good config versions the controller saved
// in the cluster (config.SaveLastGood) for the first build. It tries for
// a few seconds only: the speaker must not sit out for it (it waited for
// the API server already), and without them it still has every object
// that is valid now.
func (s *Speaker) loadLastGood(ctx context.Context) {
	for try := 0; ; try++ {
		data, _, err := kube.ReadLastGood(ctx, s.kc, s.opts.Namespace)
		if err == nil {
			cfg, errs := config.LastGood(data)
			for _, err := range errs {
				s.log.Warn("left out a saved config version", "error", err)
			}
			s.config.cfg = cfg
			return
		}
		if try == 4 || ctx.Err() != nil {
			s.log.Warn("cannot read the last good config versions: an object invalid now is left out", "error", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// configView reads the configuration and the nodes: all a view needs to
// open the BGP sessions.
func (s *Speaker) configView(ctx context.Context) (announce.View, error) {
	c := s.cache
	in, err := kube.ReadInput(ctx, cacheReader{c}, types.NamespacedName{Namespace: s.opts.Namespace, Name: s.opts.ConfigMapName})
	if err != nil {
		return announce.View{}, err
	}
	v := announce.View{Config: s.config.get(in), Nodes: map[string]announce.Node{}, Current: map[netip.Addr]string{}, Ifaces: map[string][]announce.Iface{}}

	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes, true); err != nil {
		return announce.View{}, err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		v.Nodes[n.Name] = announce.Node{Name: n.Name, Ready: kube.NodeReady(n), Excluded: kube.Excluded(n.Labels), Draining: kube.Draining(n), Labels: n.Labels}
		if n.Name == s.opts.NodeName {
			s.nodeIP = kube.InternalIP(n)
		}
	}
	// With no node Ready, every node counts as Ready (announce.NoneReady):
	// here too, so that the quorum and the janitor count as the rule does.
	if announce.NoneReady(v.Nodes) {
		for name, n := range v.Nodes {
			n.Ready = true
			v.Nodes[name] = n
		}
	}
	return v, nil
}

// view reads what a turn needs from the caches, the records and the
// membership, and the ServiceAnnouncements in the cache.
func (s *Speaker) view(ctx context.Context) (announce.View, []v1alpha1.ServiceAnnouncement, error) {
	c := s.cache
	v, err := s.configView(ctx)
	if err != nil {
		return announce.View{}, nil, err
	}

	if m := s.members; m != nil {
		if alive := m.Alive(); alive != nil {
			v.Alive = map[string]bool{}
			api := map[string]apiState{s.opts.NodeName: s.apiPublished}
			joined := map[string]time.Time{s.opts.NodeName: s.joined}
			// This node's own data path counts whether or not its
			// membership has it alive yet: it stops as the others start.
			dataPath := map[string]dataPathState{s.opts.NodeName: s.dataPath.published}
			moves := map[netip.Addr]announce.Move{}
			if mv := s.balance.move; mv.IP.IsValid() {
				moves[mv.IP] = mv
			}
			for _, name := range alive {
				v.Alive[name] = true
				if meta, ok := m.Meta(name); ok && name != s.opts.NodeName {
					v.Ifaces[name] = decodeIfaces(meta)
					mm := decodeMeta(meta)
					api[name], joined[name], dataPath[name] = mm.api, mm.joined, mm.dataPath
					if mv := mm.move; mv.IP.IsValid() {
						mv.From = name
						moves[mv.IP] = mv
					}
				}
			}
			// Members restarting in place keep their addresses (and
			// their join time) while they are away (restart.go).
			for _, name := range m.Restarting() {
				if v.Restarting == nil {
					v.Restarting = map[string]bool{}
				}
				v.Restarting[name] = true
				if meta, ok := m.Meta(name); ok {
					v.Ifaces[name] = decodeIfaces(meta)
					mm := decodeMeta(meta)
					joined[name] = mm.joined
					if name != s.opts.NodeName {
						dataPath[name] = mm.dataPath
					}
				}
			}
			v.DataPathDown, v.DataPathUp = dataPaths(dataPath)
			if len(moves) > 0 {
				v.Moves = moves
			}
			now := time.Now()
			var next time.Time
			v.New, next = newMembers(joined, now)
			s.wakeAt = earliest(next, s.cutOffAPI(v.Alive, api, now))
		}
	}
	v.Ifaces[s.opts.NodeName] = s.answering.ifaces()
	s.noteDataPaths(v)

	var endpoints map[string]map[string]bool // read once, if a Service needs it
	v.Services = make([]announce.Service, 0, s.services.Len())
	s.services.Range(func(nn types.NamespacedName, r svcRecord) bool {
		e := announce.Service{Key: nn.Namespace + "/" + nn.Name, IPs: r.ips, Local: r.local}
		if e.Local {
			if endpoints == nil {
				endpoints = s.endpointNodes()
			}
			e.EndpointNodes = endpoints[e.Key]
			if e.EndpointNodes == nil {
				e.EndpointNodes = map[string]bool{}
			}
		}
		v.Services = append(v.Services, e)
		return true
	})

	var anns v1alpha1.ServiceAnnouncementList
	if err := c.List(ctx, &anns, true); err != nil {
		return announce.View{}, nil, err
	}
	items := s.overlaid(anns.Items)
	v.Current = currentOf(items)
	return v, items, nil
}

// readCurrent fills v.Current from the ServiceAnnouncements as the API
// server has them now (a quorum read, not the cache).
func (s *Speaker) readCurrent(ctx context.Context, v *announce.View) error {
	var anns v1alpha1.ServiceAnnouncementList
	if err := s.kc.List(ctx, &anns); err != nil {
		return fmt.Errorf("read ServiceAnnouncements: %w", err)
	}
	v.Current = currentOf(anns.Items)
	return nil
}

// currentOf maps each address the announcements name to the node they say
// announces it.
func currentOf(anns []v1alpha1.ServiceAnnouncement) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, a := range anns {
		for _, e := range a.Status.Announcers {
			if ip, err := netip.ParseAddr(e.IP); err == nil && e.Node != "" {
				out[ip] = e.Node
			}
		}
	}
	return out
}

// endpointNodes returns, by Service key, the nodes holding a ready
// endpoint of the Service. It reads every EndpointSlice record once:
// looking each Service's slices up would scan them once per Service.
func (s *Speaker) endpointNodes() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	s.slices.Range(func(nn types.NamespacedName, r sliceRecord) bool {
		key := nn.Namespace + "/" + r.service
		if out[key] == nil {
			out[key] = map[string]bool{}
		}
		for node := range r.eachNode() {
			out[key][node] = true
		}
		return true
	})
	return out
}

// janitor is the node that writes what no owner writes and deletes what
// nobody needs (ServiceAnnouncements, BGPSessionStates of nodes that are
// gone): the first Ready node that is an alive member, or without
// membership the first Ready node. Every speaker computes the same.
func janitor(v announce.View) string {
	var names []string
	for name, n := range v.Nodes {
		if n.Ready && (v.Alive == nil || v.Alive[name]) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return slices.Min(names)
}

// cutOffAPI works out the nodes cut off from the API server (apicut.go,
// s.apiCut) from what each alive member says of its reach of it, and
// logs when that set changes.
// It returns when that may next change with no other change.
func (s *Speaker) cutOffAPI(alive map[string]bool, api map[string]apiState, now time.Time) time.Time {
	states := map[string]apiState{}
	for name := range alive {
		states[name] = api[name] // zero: reaching it since ever
	}
	cut, next := cutOff(states, now)
	if !maps.Equal(cut, s.apiCut) {
		s.log.Warn("nodes cut off from the API server while others reach it: they announce nothing", "nodes", slices.Sorted(maps.Keys(cut)))
		s.apiCut = cut
	}
	return next
}

// earliest is the earlier of two moments, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// candidates returns alive without the nodes cut off from the API server
// (cutOffAPI): the members an election counts. The quorum counts them
// still: they are alive, and leaving them out would have the others take
// themselves for a minority.
func (s *Speaker) candidates(alive map[string]bool) map[string]bool {
	if len(s.apiCut) == 0 || alive == nil {
		return alive
	}
	out := maps.Clone(alive)
	for name := range s.apiCut {
		delete(out, name)
	}
	return out
}
