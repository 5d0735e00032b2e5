package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/controller"
)

// sync reads the cluster and the membership, elects the owner of every
// Layer 2 address, answers for this node's, and queues the
// ServiceAnnouncements this node writes.
func (s *Speaker) sync(ctx context.Context) error {
	v, svcs, err := s.view(ctx)
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
			if svc := svcs[key]; svc != nil {
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
		s.status.set(s.reports(v, ds, svcs))
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
	in, err := controller.ReadInput(ctx, c, types.NamespacedName{Namespace: s.opts.Namespace, Name: s.opts.ConfigMapName})
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
		v.Nodes[n.Name] = Node{Name: n.Name, Ready: nodeReady(n), Labels: n.Labels}
		if n.Name == s.opts.NodeName {
			s.nodeIP = internalIP(n)
		}
	}
	return v, nil
}

// view reads what the election needs from the caches and the membership.
// It also returns the LoadBalancer Services by key.
func (s *Speaker) view(ctx context.Context) (View, map[string]*corev1.Service, error) {
	c := s.mgr.GetCache()
	v, err := s.configView(ctx)
	if err != nil {
		return View{}, nil, err
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

	list, err := s.cached(ctx, &corev1.Service{})
	if err != nil {
		return View{}, nil, err
	}
	svcs := map[string]*corev1.Service{}
	var endpoints map[string]map[string]bool // read once, if a Service needs it
	for _, o := range list {
		svc, ok := o.(*corev1.Service)
		if !ok || !s.serves(svc) {
			continue
		}
		ips := ingressIPs(svc)
		if len(ips) == 0 {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		svcs[key] = svc
		e := Service{Key: key, IPs: ips, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
		if e.Local {
			if endpoints == nil {
				if endpoints, err = s.endpointNodes(ctx); err != nil {
					return View{}, nil, err
				}
			}
			e.EndpointNodes = endpoints[key]
			if e.EndpointNodes == nil {
				e.EndpointNodes = map[string]bool{}
			}
		}
		v.Services = append(v.Services, e)
	}

	var anns v1alpha1.ServiceAnnouncementList
	if err := c.List(ctx, &anns, client.UnsafeDisableDeepCopy); err != nil {
		return View{}, nil, err
	}
	s.status.observe(anns.Items)
	v.Current = currentOf(anns.Items)
	return v, svcs, nil
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

// serves reports whether svc is a LoadBalancer Service of ours.
func (s *Speaker) serves(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == s.opts.LoadBalancerClass)
}

// endpointNodes returns, by Service key, the nodes holding a ready
// endpoint of the Service. It reads every EndpointSlice once: asking the
// cache for each Service's slices by label would scan its namespace's
// slices once per Service.
func (s *Speaker) endpointNodes(ctx context.Context) (map[string]map[string]bool, error) {
	list, err := s.cached(ctx, &discoveryv1.EndpointSlice{})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for _, o := range list {
		sl, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		svc, ok := sl.Labels[discoveryv1.LabelServiceName]
		if !ok {
			continue
		}
		key := sl.Namespace + "/" + svc
		for node := range readyNodes(sl) {
			if out[key] == nil {
				out[key] = map[string]bool{}
			}
			out[key][node] = true
		}
	}
	return out, nil
}

// readyNodes are the nodes holding a ready endpoint in sl.
func readyNodes(sl *discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, ep := range sl.Endpoints {
		if ep.NodeName != nil && endpointReady(ep) {
			out[*ep.NodeName] = true
		}
	}
	return out
}

// endpointReady reports whether ep is ready: a nil Ready condition is
// (EndpointSlice API: "nil should be interpreted as true").
func endpointReady(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// cached returns the cache's objects of obj's kind, as stored: not to be
// changed. With tens of thousands of Services, a List even with
// UnsafeDisableDeepCopy copies every object into the list it returns (a
// Service is some 700 bytes of struct), megabytes of garbage per sync.
func (s *Speaker) cached(ctx context.Context, obj client.Object) ([]any, error) {
	inf, err := s.mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("read %T: %w", obj, err)
	}
	si, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("read %T: the cache's informer is a %T", obj, inf)
	}
	return si.GetStore().List(), nil
}

// ingressIPs are the addresses in svc's status, sorted.
func ingressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// reports builds the ServiceAnnouncements this node writes: those of the
// Services whose first announced address it owns (one writer per Service,
// the same choice on every speaker); for Services with no owner at all,
// the first alive node (the janitor) writes why. The others' interfaces
// come from their membership metadata. keep is nil unless this node is the
// janitor; then it lists the Services whose announcements must stay, and
// the others are deleted.
func (s *Speaker) reports(v View, ds map[netip.Addr]*Decision, svcs map[string]*corev1.Service) (out map[string]*report, keep map[string]bool) {
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
			out[e.Key] = &report{svc: svcs[e.Key], status: st}
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
