package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// sync reads the cluster and the membership, elects the owner of every
// Layer 2 address, answers for this node's, and queues the
// ServiceAnnouncements this node writes.
func (s *Speaker) sync(ctx context.Context) error {
	v, err := s.view(ctx)
	if err != nil {
		return err
	}
	for name := range v.Alive {
		s.seen[name] = true
	}
	s.seen[s.opts.NodeName] = true
	if !s.settled {
		s.settled = s.isSettled(v)
		if s.settled {
			// Who announces what, read from the API server itself: the
			// cache may be older than a takeover made while this speaker
			// was away (its lists are served from the API server's watch
			// cache), and announcing here on a stale record would pull
			// addresses back from the node that took them over.
			if err := s.readCurrent(ctx, &v); err != nil {
				s.settled = false
				return err
			}
		}
	}
	ds := Decide(v)
	mine := Mine(ds, s.opts.NodeName, s.ifaces)
	ok, why := quorum(v, s.opts.NodeName, s.seen)
	if ok != s.quorate {
		if ok {
			s.log.Info("reaching a majority of the speakers again")
		} else {
			s.log.Warn("cut off from the other speakers", "why", why, "alive", v.Alive)
		}
		s.quorate = ok
	}
	if !s.settled || !ok {
		// Answer nothing and report nothing: this speaker's view is not
		// one the others share.
		mine = nil
	}

	// Answer first: this is the failover path. Reports come after.
	owned := map[netip.Addr]bool{}
	for name, r := range s.responders {
		if err := r.SetAddrs(mine[name]); err != nil {
			s.log.Error("set addresses", "interface", name, "error", err)
		}
		for _, ip := range mine[name] {
			owned[ip] = true
		}
	}
	for ip := range owned {
		if s.owned[ip] {
			continue
		}
		var on []string
		for _, i := range s.ifaces {
			if slices.Contains(mine[i.Name], ip) {
				on = append(on, i.Name+" ("+i.MAC+")")
			}
		}
		s.metrics.takeovers.Inc()
		s.log.Info("announcing", "ip", ip, "services", ds[ip].Services, "interfaces", on)
		for _, key := range ds[ip].Services {
			if svc := s.serviceObject(key); svc != nil {
				s.rec.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce",
					"%s announced by %s on %s", ip, s.opts.NodeName, strings.Join(on, ", "))
			}
		}
	}
	for ip := range s.owned {
		if !owned[ip] {
			s.log.Info("no longer announcing", "ip", ip)
		}
	}
	s.reclaim(v, owned)
	s.owned = owned
	s.metrics.observe(v, ds, owned, s.members)
	s.bgp.sync(ctx, s.runBG, v, v.Nodes[s.opts.NodeName], s.nodeIP)
	if s.settled && ok {
		s.status.set(s.reports(v, ds))
	}
	s.synced.Store(true)
	return nil
}

// isSettled reports whether this speaker has joined the others (see
// settled). While its membership is configured but not yet running, it
// has not: it knows no member, not even itself, and must not mistake that
// for running without membership.
func (s *Speaker) isSettled(v View) bool {
	if s.members != nil && !s.membersDown.Load() {
		if v.Alive == nil {
			return false
		}
		if s.started.IsZero() {
			s.started = time.Now()
		}
	}
	return settled(v, s.members != nil && s.members.Joined(), time.Since(s.started))
}

// reclaim announces again each address this node goes on owning whose
// ServiceAnnouncement now names another node. That node announced it for
// a while (a speaker that started cut off from the others, or a view that
// differed for a moment), so clients may be sending to its MAC; a fresh
// burst brings them back at once rather than at their next ARP refresh.
// Each such report is answered once: the writer soon reports this node.
func (s *Speaker) reclaim(v View, owned map[netip.Addr]bool) {
	var again []netip.Addr
	for ip := range owned {
		cur := v.Current[ip]
		prev, had := s.claimedBy[ip]
		s.claimedBy[ip] = cur
		if !s.owned[ip] || !had || cur == prev || cur == "" || cur == s.opts.NodeName {
			continue // newly owned (announced anyway), or nothing new
		}
		s.log.Info("announcing again: another node reported announcing it", "ip", ip, "reported", cur)
		again = append(again, ip)
	}
	for ip := range s.claimedBy {
		if !owned[ip] {
			delete(s.claimedBy, ip)
		}
	}
	if len(again) > 0 {
		for _, r := range s.responders {
			r.Announce(again)
		}
	}
}

// configView reads the configuration and the nodes: all a view needs to
// open the BGP sessions.
func (s *Speaker) configView(ctx context.Context) (View, error) {
	c := s.mgr.GetCache()
	in, err := kube.ReadInput(ctx, c, types.NamespacedName{Namespace: s.opts.Namespace, Name: s.opts.ConfigMapName})
	if err != nil {
		return View{}, err
	}
	cfg, _ := config.Build(in, s.prevConfig) // the controller reports the problems
	s.prevConfig = cfg
	v := View{Config: cfg, Nodes: map[string]Node{}, Current: map[netip.Addr]string{}, Ifaces: map[string][]Iface{}}

	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return View{}, err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		v.Nodes[n.Name] = Node{Name: n.Name, Ready: kube.NodeReady(n), Labels: n.Labels}
		if n.Name == s.opts.NodeName {
			s.nodeIP = kube.InternalIP(n)
		}
	}
	return v, nil
}

// view reads what the election needs from the caches, the records and
// the membership.
func (s *Speaker) view(ctx context.Context) (View, error) {
	c := s.mgr.GetCache()
	v, err := s.configView(ctx)
	if err != nil {
		return View{}, err
	}

	if m := s.members; m != nil {
		if alive := m.Alive(); alive != nil {
			v.Alive = map[string]bool{}
			for _, name := range alive {
				v.Alive[name] = true
				if meta, ok := m.Meta(name); ok && name != s.opts.NodeName {
					v.Ifaces[name] = decodeIfaces(meta)
				}
			}
		}
	}
	v.Ifaces[s.opts.NodeName] = s.ifaces

	var endpoints map[string]map[string]bool // read once, if a Service needs it
	s.services.Range(func(nn types.NamespacedName, r svcRecord) bool {
		e := Service{Key: nn.Namespace + "/" + nn.Name, IPs: r.ips, Local: r.local}
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
	if err := c.List(ctx, &anns, client.UnsafeDisableDeepCopy); err != nil {
		return View{}, err
	}
	s.status.observe(anns.Items)
	v.Current = currentOf(anns.Items)
	return v, nil
}

// readCurrent fills v.Current from the ServiceAnnouncements as the API
// server has them now (a quorum read, not the cache).
func (s *Speaker) readCurrent(ctx context.Context, v *View) error {
	var anns v1alpha1.ServiceAnnouncementList
	if err := s.mgr.GetAPIReader().List(ctx, &anns); err != nil {
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
		for _, node := range r.nodes {
			out[key][node] = true
		}
		return true
	})
	return out
}

// reports builds the ServiceAnnouncements this node writes: those of the
// Services whose first announced address it owns (one writer per Service,
// the same choice on every speaker); for Services with no owner at all,
// the first alive node (the janitor) writes why. The others' interfaces
// come from their membership metadata. keep is nil unless this node is the
// janitor; then it lists the Services whose announcements must stay, and
// the others are deleted.
func (s *Speaker) reports(v View, ds map[netip.Addr]*Decision) (out map[string]*report, keep map[string]bool) {
	janitor := janitor(v)
	out = map[string]*report{}
	for _, e := range v.Services {
		var st v1alpha1.ServiceAnnouncementStatus
		writer := ""
		for _, ip := range e.IPs {
			d := ds[ip]
			if d == nil {
				continue // not a Layer 2 address
			}
			st.Mode = v1alpha1.ModeLayer2
			if d.Owner == "" {
				st.Announcers = append(st.Announcers, v1alpha1.Announcer{IP: ip.String(), Reason: d.Reason})
				continue
			}
			if writer == "" {
				writer = d.Owner
			}
			ifaces := d.Ifaces
			if ifaces == nil {
				for _, name := range d.Announcements {
					ifaces = append(ifaces, Iface{Name: name})
				}
			}
			if len(ifaces) == 0 {
				st.Announcers = append(st.Announcers, v1alpha1.Announcer{IP: ip.String(), Node: d.Owner})
			}
			for _, i := range ifaces {
				st.Announcers = append(st.Announcers, v1alpha1.Announcer{IP: ip.String(), Node: d.Owner, Interface: i.Name, MAC: i.MAC})
			}
		}
		if st.Mode == "" {
			continue // no Layer 2 address: nothing to report
		}
		if writer == "" {
			writer = janitor
		}
		if writer == s.opts.NodeName {
			out[e.Key] = &report{svc: s.serviceObject(e.Key), status: st}
		}
	}
	// Announcements of Services that are gone or no longer announced in
	// Layer 2 are deleted by one node.
	if janitor == s.opts.NodeName {
		keep = map[string]bool{}
		for _, e := range v.Services {
			if slices.ContainsFunc(e.IPs, func(ip netip.Addr) bool { return ds[ip] != nil }) {
				keep[e.Key] = true
			}
		}
	}
	return out, keep
}

// janitor is the node that writes what no owner writes and deletes what
// nobody needs (ServiceAnnouncements, BGPSessionStates of nodes that are
// gone): the first Ready node that is an alive member, or without
// membership the first Ready node. Every speaker computes the same.
func janitor(v View) string {
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
