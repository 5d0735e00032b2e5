package speaker

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	Recorder events.EventRecorder
	// Client writes the ServiceAnnouncements.
	Client client.Client
	// Services are the speaker's Service records: events and
	// ServiceAnnouncements name a Service by its UID.
	Services *records.Store[svcRecord]
	// Ifaces are this node's interfaces, and Responders answer on them,
	// by interface name, until setIfaces replaces them. The caller runs
	// and closes the responders.
	Ifaces     []announce.Iface
	Responders map[string]responder
	// Run starts a function in the background until the speaker stops
	// (the ServiceAnnouncement writer).
	Run func(func(context.Context))
}

// layer2 is the Layer 2 announcer: for the addresses this node owns (one
// owner per address, elected by every speaker alike), its responders
// answer ARP and NDP; the owner of a Service's first address writes the
// Service's ServiceAnnouncement. Used by the sync loop only.
type layer2 struct {
	node       string
	log        *slog.Logger
	metrics    *metrics
	rec        events.EventRecorder
	services   *records.Store[svcRecord]
	ifaces     []announce.Iface
	responders map[string]responder
	run        func(func(context.Context))
	status     *statusWriter
	started    bool // status writer running

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
}

// newLayer2 sets the Layer 2 announcer up; it starts nothing.
func newLayer2(o layer2Options) *layer2 {
	return &layer2{
		node: o.Node, log: o.Logger, metrics: o.Metrics, rec: o.Recorder, services: o.Services,
		ifaces: o.Ifaces, responders: o.Responders, run: o.Run,
		status:    newStatusWriter(o.Client, o.Logger),
		owned:     map[netip.Addr]bool{},
		claimedBy: map[netip.Addr]string{},
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
	var proxied map[string]map[netip.Addr]net.HardwareAddr
	if t.answer {
		proxied = l.proxied(ds)
	} else {
		l.proxying = nil
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
// name of a node whose speaker restarts (announce.Proxied), with the MAC
// to name. It logs the changes.
func (l *layer2) proxied(ds map[netip.Addr]*announce.Decision) map[string]map[netip.Addr]net.HardwareAddr {
	out := map[string]map[netip.Addr]net.HardwareAddr{}
	now := map[netip.Addr]string{}
	for name, ips := range announce.Proxied(ds, l.node, l.ifaces) {
		out[name] = map[netip.Addr]net.HardwareAddr{}
		for ip, mac := range ips {
			hw, err := net.ParseMAC(mac)
			if err != nil {
				l.log.Error("the owner published a bad MAC", "ip", ip, "owner", ds[ip].Owner, "mac", mac)
				continue
			}
			out[name][ip] = hw
			now[ip] = ds[ip].Owner
		}
	}
	for ip, owner := range now {
		if _, had := l.proxying[ip]; !had {
			l.log.Info("answering in another node's name while its speaker restarts", "ip", ip, "owner", owner)
		}
	}
	for ip, owner := range l.proxying {
		if _, still := now[ip]; !still {
			l.log.Info("no longer answering in another node's name", "ip", ip, "owner", owner)
		}
	}
	l.proxying = now
	return out
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
		l.started = true
	}
	l.status.observe(t.announcements)
	if t.answer && (t.degraded || !t.confirmedOnly) {
		l.status.set(l.reports(t))
	}
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
