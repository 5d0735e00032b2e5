package l2

import "sync/atomic"

// Stats counts what a Responder has seen and sent since it was created, per
// protocol, for metrics. Counters only grow.
type Stats struct {
	ARP Counters // RFC 826
	NDP Counters // RFC 4861
}

// Counters are one protocol's counts.
type Counters struct {
	// Requests are the well-formed ARP requests or Neighbor
	// Solicitations received, for any target.
	Requests uint64
	// Replies are the answers sent: one per request for an owned address.
	Replies uint64
	// Announcements are the gratuitous ARP packets or unsolicited Neighbor
	// Advertisements sent.
	Announcements uint64
	// Invalid are the frames dropped as malformed or failing the
	// protocol's validation (RFC 4861 section 7.1.1).
	Invalid uint64
	// Errors are failed socket reads and writes.
	Errors uint64
}

// Stats returns the counts so far. Each counter is read atomically, the set
// of them not: a snapshot taken while frames arrive may be a frame apart.
func (r *Responder) Stats() Stats {
	return Stats{ARP: r.stats.arp.load(), NDP: r.stats.ndp.load()}
}

// counters are Counters as the goroutines update them.
type counters struct {
	requests, replies, announcements, invalid, errors atomic.Uint64
}

func (c *counters) count(v verdict) {
	switch v {
	case invalid:
		c.invalid.Add(1)
	case unowned, answered:
		c.requests.Add(1)
	}
}

func (c *counters) load() Counters {
	return Counters{
		Requests:      c.requests.Load(),
		Replies:       c.replies.Load(),
		Announcements: c.announcements.Load(),
		Invalid:       c.invalid.Load(),
		Errors:        c.errors.Load(),
	}
}
