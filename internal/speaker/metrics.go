package speaker

import (
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/l2"
)

// metrics are the speaker's Prometheus series.
type metrics struct {
	announced   prometheus.Gauge
	proxied     prometheus.Gauge
	unannounced prometheus.Gauge
	members     prometheus.Gauge
	health      prometheus.Gauge
	takeovers   prometheus.Counter
	rebalanced  prometheus.Counter
	conflicts   *prometheus.CounterVec
	conflicted  prometheus.Gauge
	sessionUp   *prometheus.GaugeVec
	prefixes    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_announced_addresses",
			Help: "Service addresses this node answers ARP/NDP for.",
		}),
		proxied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_proxied_addresses",
			Help: "Service addresses this node answers ARP/NDP for in the name of a node whose speaker is restarting, naming that node's MAC.",
		}),
		unannounced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_unannounced_addresses",
			Help: "Layer 2 Service addresses no node may announce (no eligible node alive).",
		}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_members",
			Help: "Speakers this node sees alive (-1: no membership, node readiness decides).",
		}),
		health: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_membership_health",
			Help: "memberlist's health score of this node: 0 is healthy, up to 8 when its probes go unanswered.",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironlb_speaker_takeovers_total",
			Help: "Times this node started announcing an address.",
		}),
		rebalanced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironlb_speaker_rebalance_moves_total",
			Help: "Addresses this node handed to another node to even out the Layer 2 addresses per node (planned handovers, no traffic lost).",
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironlb_speaker_address_conflicts_total",
			Help: "Times this node found another host answering for a Service address it owns (ARP Probe or duplicate address detection), and stopped announcing it.",
		}, []string{"family"}),
		conflicted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironlb_speaker_conflicted_addresses",
			Help: "Service addresses this node owns but does not announce, because another host answers for them.",
		}),
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_bgp_session_up",
			Help: "1 when the BGP session with the peer is Established, else 0.",
		}, []string{"peer"}),
		prefixes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ironlb_bgp_prefixes_sent",
			Help: "Prefixes this node announces to the peer.",
		}, []string{"peer"}),
	}
	m.announced = register(reg, m.announced)
	m.proxied = register(reg, m.proxied)
	m.sessionUp = register(reg, m.sessionUp)
	m.prefixes = register(reg, m.prefixes)
	m.unannounced = register(reg, m.unannounced)
	m.members = register(reg, m.members)
	m.health = register(reg, m.health)
	m.takeovers = register(reg, m.takeovers)
	m.rebalanced = register(reg, m.rebalanced)
	m.conflicts = register(reg, m.conflicts)
	m.conflicted = register(reg, m.conflicted)
	return m
}

// l2Collector exports the Layer 2 responders' packet counts (l2.Stats),
// read at each scrape: ironlb_speaker_l2_packets_total by interface,
// family (ipv4: ARP, ipv6: NDP) and kind. When an address is assigned but
// unreachable, these say whether requests for it reach this node at all
// (requests), and whether it answers (replies).
type l2Collector struct {
	stats func() map[string]l2.Stats
	desc  *prometheus.Desc
}

func newL2Collector(stats func() map[string]l2.Stats) *l2Collector {
	return &l2Collector{stats: stats, desc: prometheus.NewDesc("ironlb_speaker_l2_packets_total",
		"ARP (family ipv4) and NDP (ipv6) packets on each interface the speaker answers on: "+
			"requests received (for any address), replies sent (for the addresses this node announces), "+
			"announcements sent (gratuitous ARP, unsolicited neighbour advertisements), "+
			"invalid frames dropped, and socket errors.",
		[]string{"interface", "family", "kind"}, nil)}
}

func (c *l2Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *l2Collector) Collect(ch chan<- prometheus.Metric) {
	for iface, st := range c.stats() {
		for _, f := range []struct {
			family string
			c      l2.Counters
		}{{"ipv4", st.ARP}, {"ipv6", st.NDP}} {
			for _, k := range []struct {
				kind string
				n    uint64
			}{{"requests", f.c.Requests}, {"replies", f.c.Replies}, {"announcements", f.c.Announcements}, {"invalid", f.c.Invalid}, {"errors", f.c.Errors}} {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(k.n), iface, f.family, k.kind)
			}
		}
	}
}

// register registers c, or returns the collector already registered under
// its name (tests run several speakers in one process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
	}
	return c
}

// observeLayer2 records a Layer 2 turn: the addresses this node owns, those
// it answers for in another node's name, and those no node may announce.
func (m *metrics) observeLayer2(ds map[netip.Addr]*announce.Decision, owned map[netip.Addr]bool, proxied int) {
	m.announced.Set(float64(len(owned)))
	m.proxied.Set(float64(proxied))
	n := 0
	for _, d := range ds {
		if d.Owner == "" {
			n++
		}
	}
	m.unannounced.Set(float64(n))
}

// observeMembers records the membership as v saw it.
func (m *metrics) observeMembers(v announce.View, members *election.Members) {
	if v.Alive == nil {
		m.members.Set(-1)
	} else {
		m.members.Set(float64(len(v.Alive)))
	}
	if members != nil {
		m.health.Set(float64(members.Health()))
	}
}

func (m *metrics) observeBGP(peers []bgp.PeerStatus) {
	m.sessionUp.Reset()
	m.prefixes.Reset()
	for _, p := range peers {
		up := 0.0
		if p.State == bgp.StateEstablished {
			up = 1
		}
		m.sessionUp.WithLabelValues(p.Name).Set(up)
		m.prefixes.WithLabelValues(p.Name).Set(float64(p.PrefixesSent))
	}
}
