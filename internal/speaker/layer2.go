package speaker

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/records"
)

// responder is what the Layer 2 announcer needs of an l2.Responder, one
// per interface.
type responder interface {
	SetAddrs(addrs []netip.Addr) error
	SetProxied(addrs map[netip.Addr]net.HardwareAddr) error
	Announce(addrs []netip.Addr)
	Quiet()
}

// layer2Options are what newLayer2 needs.
type layer2Options struct {
	Node    string
	Logger  *slog.Logger
	Metrics *metrics
	// Recorder records the Announced events on Services.
	Recorder eventRecorder
	// Client writes the ServiceAnnouncements.
	Client apiAccess
	// Services are the speaker's Service records: events and
	// ServiceAnnouncements name a Service by its UID.
	Services *records.Store[svcRecord]
	// Ifaces are this node's interfaces, and Responders answer on them,
	// by interface name, until setIfaces replaces them. The caller runs
	// and closes the responders.
	Ifaces     []announce.Iface
	Responders map[string]responder
	// Run starts a function in the background until the speaker stops
	// (the ServiceAnnouncement writer, the conflict watch).
	Run func(func(context.Context))
	// Kick asks for a sync: the conflict watch calls it, from its own
	// goroutine, when an address's state changes.
	Kick func()
	// Probe probes addresses for conflicts on an interface; nil is
	// probeL2, the LAN's.
	Probe probeFunc
}

// layer2 is the Layer 2 announcer: for the addresses this node owns (one
// owner per address, elected by every speaker alike), its responders
// answer ARP and NDP; the owner of a Service's first address writes the
// Service's ServiceAnnouncement. Used by the sync loop only.
type layer2 struct {
	node       string
	log        *slog.Logger
	metrics    *metrics
	rec        eventRecorder
	services   *records.Store[svcRecord]
	ifaces     []announce.Iface
	responders map[string]responder
	run        func(func(context.Context))
	status     *statusWriter
	started    bool // status writer running
	// watch probes this node's addresses for conflicts with other hosts
	// (conflict.go) in a goroutine started at the first announce
	// (watching); conds writes the AddressConflict conditions.
	watch    *conflictWatch
	watching bool
	conds    *condWriter
	// conflicted are the addresses this node owns but leaves out, as
	// another host answers for them, at the last turn.
	conflicted map[netip.Addr]conflict

	// ds are the last turn's decisions, for report.
	ds map[netip.Addr]*announce.Decision
	// owned are the addresses this node answered for at the last turn.
	owned map[netip.Addr]bool
	// claimedBy is, for each owned address, the announcer its
	// ServiceAnnouncement named when this node last announced it (see
	// reclaim).
	claimedBy map[netip.Addr]string
	// proxying are the addresses this node answered for in their owner's
	// name at the last turn (proxied), with the owner.
	proxying map[netip.Addr]string
	// arriving and leaving are this node's halves of the planned
	// handovers under way (handover.go).
	arriving map[netip.Addr]arrival
	leaving  map[netip.Addr]lingering
	// now is the clock of the handovers: time.Now but in tests.
	now func() time.Time
}

// newLayer2 sets the Layer 2 announcer up; it starts nothing.
func newLayer2(o layer2Options) *layer2 {
	probe, kick := o.Probe, o.Kick
	if probe == nil {
		probe = probeL2
	}
	if kick == nil {
		kick = func() {}
	}
	return &layer2{
		watch: newConflictWatch(o.Logger, o.Metrics, probe, kick),
		conds: newCondWriter(o.Client, o.Logger),
		node:  o.Node, log: o.Logger, metrics: o.Metrics, rec: o.Recorder, services: o.Services,
		ifaces: o.Ifaces, responders: o.Responders, run: o.Run,
		status:    newStatusWriter(o.Client, o.Logger),
		owned:     map[netip.Addr]bool{},
		claimedBy: map[netip.Addr]string{},
		arriving:  map[netip.Addr]arrival{},
		leaving:   map[netip.Addr]lingering{},
		now:       time.Now,
	}
}

// announce elects the owner of every Layer 2 address (announce.Round's
// Layer2, with election.StickyOwner) and answers for this node's: the
// failover path.
func (l *layer2) announce(_ context.Context, t *turn) {
	ds := t.round.Layer2(election.StickyOwner)
	l.ds = ds
	mine := announce.Mine(ds, l.node, l.ifaces)
	switch {
	case !t.answer:
		mine = nil
	case t.confirmedOnly:
		for name, ips := range mine {
			mine[name] = slices.DeleteFunc(ips, func(ip netip.Addr) bool { return t.view.Current[ip] != l.node })
		}
	}
	now := l.now()
	mine, wake := l.heldBack(t, ds, mine, now)
	t.wake = earliest(t.wake, wake)
	mine = l.probed(t, ds, mine)
	var proxied map[string]map[netip.Addr]net.HardwareAddr
	if t.answer {
		var wake time.Time
		proxied, wake = l.proxied(ds, now)
		t.wake = earliest(t.wake, wake)
	} else {
		l.proxying = nil
		clear(l.leaving)
	}
	owned := map[netip.Addr]bool{}
	for name, r := range l.responders {
		if err := r.SetAddrs(mine[name]); err != nil {
			l.log.Error("set addresses", "interface", name, "error", err)
		}
		if err := r.SetProxied(proxied[name]); err != nil {
			l.log.Error("set addresses answered in another node's name", "interface", name, "error", err)
		}
		for _, ip := range mine[name] {
			owned[ip] = true
		}
	}
	for ip := range owned {
		if l.owned[ip] {
			continue
		}
		var on []string
		for _, i := range l.ifaces {
			if slices.Contains(mine[i.Name], ip) {
				on = append(on, i.Name+" ("+i.MAC+")")
			}
		}
		l.metrics.takeovers.Inc()
		l.log.Info("announcing", "ip", ip, "services", ds[ip].Services, "interfaces", on)
		for _, key := range ds[ip].Services {
			if svc := serviceObject(l.services, key); svc != nil {
				l.rec.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce",
					"%s announced by %s on %s", ip, l.node, strings.Join(on, ", "))
			}
		}
	}
	for ip := range l.owned {
		if !owned[ip] {
			l.log.Info("no longer announcing", "ip", ip)
		}
	}
	l.reclaim(t.view, owned)
	l.owned = owned
	l.metrics.observeLayer2(ds, owned, len(l.proxying))
}

// proxied are, per interface, the addresses this node answers for in the
// name of another node (announce.Proxied: a node whose speaker restarts,
// or the new owner of a planned handover, also for a while after it,
// linger), with the MAC to name, and when the first lingering one ends
// (zero if none). It logs the changes.
func (l *layer2) proxied(ds map[netip.Addr]*announce.Decision, now time.Time) (map[string]map[netip.Addr]net.HardwareAddr, time.Time) {
	out := map[string]map[netip.Addr]net.HardwareAddr{}
	current := map[netip.Addr]string{}
	for name, ips := range announce.Proxied(ds, l.node, l.ifaces) {
		out[name] = map[netip.Addr]net.HardwareAddr{}
		for ip, mac := range ips {
			hw, err := net.ParseMAC(mac)
			if err != nil {
				l.log.Error("the owner published a bad MAC", "ip", ip, "owner", ds[ip].Owner, "mac", mac)
				continue
			}
			out[name][ip] = hw
			current[ip] = ds[ip].Owner
		}
	}
	wake := l.linger(ds, out, now)
	for ip, g := range l.leaving {
		if _, ok := current[ip]; !ok {
			current[ip] = g.owner
		}
	}
	for ip, owner := range current {
		if _, had := l.proxying[ip]; had {
			continue
		}
		if ds[ip].From == l.node {
			l.log.Info("handing over: answering in the new owner's name", "ip", ip, "owner", owner)
		} else {
			l.log.Info("answering in another node's name while its speaker restarts", "ip", ip, "owner", owner)
		}
	}
	for ip, owner := range l.proxying {
		if _, still := current[ip]; !still {
			l.log.Info("no longer answering in another node's name", "ip", ip, "owner", owner)
		}
	}
	l.proxying = current
	return out, wake
}

// reclaim announces again each address this node goes on owning whose
// ServiceAnnouncement names another node. That node announced it for a
// while (a speaker that started cut off from the others, or a view that
// differed for a moment), so clients may be sending to its MAC; a fresh
// burst brings them back at once rather than at their next ARP refresh.
// Each such report is answered once: the writer soon reports this node.
func (l *layer2) reclaim(v announce.View, owned map[netip.Addr]bool) {
	var again []netip.Addr
	for ip := range owned {
		cur := v.Current[ip]
		prev, had := l.claimedBy[ip]
		l.claimedBy[ip] = cur
		if !l.owned[ip] || !had || cur == prev || cur == "" || cur == l.node {
			continue // newly owned (announced anyway), or nothing new
		}
		l.log.Info("announcing again: another node reported announcing it", "ip", ip, "reported", cur)
		again = append(again, ip)
	}
	for ip := range l.claimedBy {
		if !owned[ip] {
			delete(l.claimedBy, ip)
		}
	}
	if len(again) > 0 {
		for _, r := range l.responders {
			r.Announce(again)
		}
	}
}

// report hands the ServiceAnnouncement writer (started on first use) the
// announcements in the cache and, when this speaker may answer, the ones
// it should write.
func (l *layer2) report(t *turn) {
	if !l.started {
		l.run(l.status.run)
		l.run(l.conds.run)
		l.started = true
	}
	l.status.observe(t.announcements)
	if t.answer && (t.degraded || !t.confirmedOnly) {
		l.status.set(l.reports(t))
		l.conds.set(l.conditions(t))
	}
}

// probed hands the conflict watch the addresses this node is elected to
// answer for, mine (by interface), and returns those it may answer for
// now: not those another host answers for, nor those waiting for their
// first probe. An address needs a first probe when this node does not
// answer for it yet and no node announced it before (see conflict.go for
// why a failover does not wait). It records the conflicts in
// l.conflicted and says so in an event on each Service of a new one.
func (l *layer2) probed(t *turn, ds map[netip.Addr]*announce.Decision, mine map[string][]netip.Addr) map[string][]netip.Addr {
	if !l.watching {
		l.run(l.watch.run)
		l.watching = true
	}
	want := map[netip.Addr]wanted{}
	for name, ips := range mine {
		for _, ip := range ips {
			w := want[ip]
			w.ifaces = append(w.ifaces, name)
			w.first = !l.owned[ip] && t.view.Current[ip] == ""
			want[ip] = w
		}
	}
	st := l.watch.update(want, l.ironlbMACs(t))
	out := make(map[string][]netip.Addr, len(mine))
	for name, ips := range mine {
		out[name] = slices.DeleteFunc(slices.Clone(ips), func(ip netip.Addr) bool { return !st[ip].state.answers() })
	}
	conflicted := map[netip.Addr]conflict{}
	for ip, s := range st {
		if s.state != stConflicted {
			continue
		}
		conflicted[ip] = s.conflict
		if old, had := l.conflicted[ip]; had && old.mac == s.conflict.mac {
			continue
		}
		for _, key := range ds[ip].Services {
			if svc := serviceObject(l.services, key); svc != nil {
				l.rec.Eventf(svc, nil, corev1.EventTypeWarning, v1alpha1.ReasonAddressConflict, "Probe", "%s", s.conflict.message(ip))
			}
		}
	}
	l.conflicted = conflicted
	return out
}

// ironlbMACs are the MACs of ironlb nodes, whose answers to a probe are
// no conflict: this node's interfaces, those the members publish, and
// those the ServiceAnnouncements name (a node that went away may answer
// for a while yet).
func (l *layer2) ironlbMACs(t *turn) []string {
	var out []string
	for _, i := range l.ifaces {
		out = append(out, i.MAC)
	}
	for _, ifaces := range t.view.Ifaces {
		for _, i := range ifaces {
			out = append(out, i.MAC)
		}
	}
	for _, a := range t.announcements {
		for _, e := range a.Status.Announcers {
			if e.MAC != "" {
				out = append(out, e.MAC)
			}
		}
	}
	return out
}

// conditions are the AddressConflict conditions this node wants on
// Services: True on each Service using an address in conflict here, and
// none on each whose ServiceAnnouncement reports a conflict on an address
// this node now answers for (the conflict is over; the report may be
// this speaker's from before a restart, or another owner's).
func (l *layer2) conditions(t *turn) map[string]condWant {
	want := map[string]condWant{}
	for ip, c := range l.conflicted {
		for _, key := range l.ds[ip].Services {
			if svc := serviceObject(l.services, key); svc != nil {
				want[key] = condWant{svc: svc, msg: c.message(ip), since: c.since}
			}
		}
	}
	for _, a := range t.announcements {
		key := a.Namespace + "/" + a.Name
		for _, e := range a.Status.Announcers {
			ip, err := netip.ParseAddr(e.IP)
			if err != nil || !l.owned[ip] || !strings.HasPrefix(e.Reason, v1alpha1.ReasonAddressConflict+":") {
				continue
			}
			if _, ok := want[key]; !ok {
				if svc := serviceObject(l.services, key); svc != nil {
					want[key] = condWant{svc: svc}
				}
			}
		}
	}
	return want
}

// handover announces nothing more: the new owners announce, and an
// announcement from here (a periodic one falling in the handover) would
// pull clients back to this node just before it goes.
func (l *layer2) handover() int {
	for _, r := range l.responders {
		r.Quiet()
	}
	return len(l.owned)
}

// release stops answering for every address (see announcer.release).
func (l *layer2) release() {
	for name, r := range l.responders {
		if err := r.SetAddrs(nil); err != nil {
			l.log.Error("set addresses", "interface", name, "error", err)
		}
		if err := r.SetProxied(nil); err != nil {
			l.log.Error("set addresses answered in another node's name", "interface", name, "error", err)
		}
	}
}

// reports builds the ServiceAnnouncements this node writes: those of the
// Services whose first announced address it owns (one writer per Service,
// the same choice on every speaker); for Services with no owner at all,
// the janitor writes why. The others' interfaces come from their
// membership metadata. keep is nil unless this node is the janitor; then
// it lists the Services whose announcements must stay, and the others are
// deleted.
func (l *layer2) reports(t *turn) (out map[string]*report, keep map[string]bool) {
	ds := l.ds
	out = map[string]*report{}
	for _, e := range t.view.Services {
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
			if c, ok := l.conflicted[ip]; ok && d.Owner == l.node {
				st.Announcers = append(st.Announcers, v1alpha1.Announcer{IP: ip.String(), Reason: v1alpha1.ReasonAddressConflict + ": " + c.message(ip)})
				continue
			}
			ifaces := d.Ifaces
			if ifaces == nil {
				for _, name := range d.Announcements {
					ifaces = append(ifaces, announce.Iface{Name: name})
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
			writer = t.janitor
		}
		if writer == l.node {
			out[e.Key] = &report{svc: serviceObject(l.services, e.Key), status: st}
		}
	}
	// Announcements of Services that are gone or not announced in Layer 2
	// are deleted by one node.
	if t.janitor == l.node {
		keep = map[string]bool{}
		for _, e := range t.view.Services {
			if slices.ContainsFunc(e.IPs, func(ip netip.Addr) bool { return ds[ip] != nil }) {
				keep[e.Key] = true
			}
		}
	}
	return out, keep
}

// setIfaces replaces the interfaces this node answers on and their
// responders, by interface name, when an interface comes or goes (see
// Speaker.refreshIfaces). The next announce gives a new responder its
// addresses, which it then announces; a responder no longer listed is
// the caller's to close, and what it answered for is answered on the
// remaining interfaces, or by another node once the others see this
// node's new interfaces.
func (l *layer2) setIfaces(ifaces []announce.Iface, responders map[string]responder) {
	l.ifaces, l.responders = ifaces, responders
}
