package l2

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/packet"
)

// burst is the announcements still due for one newly owned address.
type burst struct {
	addr netip.Addr
	left int
	due  time.Time
}

// announce sends the announcements: a burst for each address SetAddrs
// added, and one for every owned address each reannounce interval. An
// address that leaves the set mid-burst gets no more. It returns when ctx
// is done.
func (r *Responder) announce(ctx context.Context) {
	var bursts []burst
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var tick <-chan time.Time
	if r.reannounce > 0 {
		t := time.NewTicker(r.reannounce)
		defer t.Stop()
		tick = t.C
	}
	s := &sender{r: r, buf: make([]byte, outBufLen), to: &packet.Addr{HardwareAddr: make(net.HardwareAddr, macLen)}}
	for {
		if len(bursts) > 0 {
			next := slices.MinFunc(bursts, func(a, b burst) int { return a.due.Compare(b.due) }).due
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			fresh := r.takePending()
			if r.count <= 0 || len(fresh) == 0 {
				break
			}
			// An address removed and added again mid-burst starts over.
			restart := make(map[netip.Addr]bool, len(fresh))
			for _, a := range fresh {
				restart[a] = true
			}
			bursts = slices.DeleteFunc(bursts, func(b burst) bool { return restart[b.addr] })
			now := time.Now()
			for _, a := range fresh {
				bursts = append(bursts, burst{addr: a, left: r.count, due: now})
			}
		case <-timer.C:
		case <-tick:
			for _, a := range r.set.Load().list {
				s.send(a)
			}
		}
		now := time.Now()
		set := r.set.Load()
		bursts = slices.DeleteFunc(bursts, func(b burst) bool { return !set.owns(b.addr) })
		for i := range bursts {
			if b := &bursts[i]; !b.due.After(now) {
				s.send(b.addr)
				b.left--
				b.due = now.Add(r.interval)
			}
		}
		bursts = slices.DeleteFunc(bursts, func(b burst) bool { return b.left <= 0 })
	}
}

// sender writes announcements; it belongs to the announce goroutine.
type sender struct {
	r   *Responder
	buf []byte
	to  *packet.Addr
}

// send announces addr once: an ARP Announcement for IPv4, an unsolicited
// Neighbor Advertisement for IPv6.
func (s *sender) send(addr netip.Addr) {
	r := s.r
	if r.quiet.Load() {
		return
	}
	conn, c, n := r.arp, &r.stats.arp, 0
	if addr.Is4() {
		n = announceARP(&r.me, addr, s.buf)
	} else {
		conn, c = r.ndp, &r.stats.ndp
		n = announceNA(&r.me, addr, s.buf)
	}
	copy(s.to.HardwareAddr, s.buf[0:macLen])
	if _, err := conn.WriteTo(s.buf[:n], s.to); err != nil {
		c.errors.Add(1)
		r.log.Warn("sending announcement", "addr", addr, "error", err)
		return
	}
	c.announcements.Add(1)
}

// Quiet stops every announcement, pending bursts and periodic ones alike,
// for good; requests are still answered. A speaker handing its addresses
// over calls it first: the new owners are announcing them, and an
// announcement from the old owner, say a periodic one falling in the
// handover, would pull the clients back to a node about to go away.
func (r *Responder) Quiet() { r.quiet.Store(true) }

// Announce starts a new burst of announcements, as if newly owned, for
// each address of addrs the Responder owns (others, proxied ones too, are
// ignored). A speaker calls it when it learns that another node announced
// one of its addresses for a while: clients may have followed that node's
// MAC, and without a new burst they would keep it until their cache
// expires.
func (r *Responder) Announce(addrs []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set, n := r.set.Load(), 0
	for _, a := range addrs {
		if a = a.Unmap(); set.owns(a) {
			r.pending[a] = struct{}{}
			n++
		}
	}
	if n > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}
