package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/labnet"
)

// fibPoll is how often waitFIB looks at the route besides the netlink
// notifications, in case one is lost (the socket's buffer overflowing).
const fibPoll = 5 * time.Millisecond

// fibResult is what waitFIB saw.
type fibResult struct {
	// At is when the route first had exactly the wanted next hops.
	At time.Time
	// Changes counts the route changes seen on the way; Dark whether the
	// route was gone altogether at one of them (a moment with no route
	// to the Service at all).
	Changes int
	Dark    bool
}

// fibWatch follows the router's kernel routes: a netlink subscription to
// route changes in the router's namespace. Create it before the change it
// is to time, so that none is missed.
type fibWatch struct {
	h       *labnet.Host
	updates chan netlink.RouteUpdate
	done    chan struct{}
	errs    chan error
}

// watchFIB subscribes to h's route changes. Close ends the subscription.
func watchFIB(h *labnet.Host) (*fibWatch, error) {
	ns, err := netns.GetFromPath(h.NSPath())
	if err != nil {
		return nil, fmt.Errorf("%s: namespace: %w", h.Name, err)
	}
	defer ns.Close()
	w := &fibWatch{h: h, updates: make(chan netlink.RouteUpdate, 256), done: make(chan struct{}), errs: make(chan error, 1)}
	err = netlink.RouteSubscribeWithOptions(w.updates, w.done, netlink.RouteSubscribeOptions{
		Namespace:         &ns,
		ReceiveBufferSize: 1 << 20,
		ErrorCallback: func(err error) {
			select {
			case w.errs <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe to route changes: %w", h.Name, err)
	}
	return w, nil
}

// Close ends the subscription.
func (w *fibWatch) Close() { close(w.done) }

// wait returns once the kernel routes dst via exactly hops (sorted), or
// fails after timeout. The time is taken as the notification arrives,
// before the route is read back to check it.
func (w *fibWatch) wait(ctx context.Context, dst netip.Prefix, hops []netip.Addr, timeout time.Duration) (fibResult, error) {
	var res fibResult
	tick := time.NewTicker(fibPoll)
	defer tick.Stop()
	deadline := time.After(timeout)
	var last []netip.Addr
	for {
		var at time.Time
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline:
			return res, fmt.Errorf("the router still routes %s via %v after %v", dst, last, timeout)
		case err := <-w.errs:
			return res, fmt.Errorf("route changes: %w", err)
		case u, ok := <-w.updates:
			if !ok {
				return res, errors.New("route changes: the subscription ended")
			}
			at = time.Now()
			if p, ok := netipPrefix(u.Dst); ok && p == dst {
				res.Changes++
				if u.Type == unix.RTM_DELROUTE {
					res.Dark = true
				}
			}
		case at = <-tick.C:
		}
		got, err := w.h.RouteNextHops(dst)
		if err != nil {
			return res, err
		}
		if len(got) == 0 {
			res.Dark = true
		}
		last = got
		if slices.Equal(got, hops) {
			res.At = at
			return res, nil
		}
	}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// bfdControlPort is BFD's single-hop control port (RFC 5881 section 4).
const bfdControlPort = 3784

// bfdCapture records the BFD control packets between the router and one
// node: a packet socket on the router's LAN interface, opened in its
// namespace, reading the IPv4 packets both ways. The node's packets say when
// the router last heard from it; the router's own say when it declared
// the session down, since a BFD system sends a packet with its new state
// at once (RFC 5880 section 6.8.7: FRR's bfdd on detection, BIRD too).
type bfdCapture struct {
	conn         *packet.Conn
	node, router netip.Addr
	wg           sync.WaitGroup

	mu      sync.Mutex
	arrived []time.Time // the node's last maxArrivals packets
	// routerUp is the state of the router's last packet; downAt when its
	// packets last went from Up to Down (or AdminDown).
	routerUp bool
	downAt   time.Time
	stopped  bool
	err      error
}

// maxArrivals bounds what bfdCapture keeps: a few seconds of packets.
const maxArrivals = 64

// captureBFD starts recording the BFD control packets between h and node.
// Stop ends it.
func captureBFD(h *labnet.Host, node netip.Addr) (*bfdCapture, error) {
	c := &bfdCapture{node: node, router: h.IPv4}
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		// ETH_P_ALL: a socket bound to one protocol sees no outgoing
		// packets, and the router's own are wanted too.
		c.conn, err = packet.Listen(ifi, packet.Datagram, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture BFD with %s: %w", node, err)
	}
	c.wg.Go(c.read)
	return c, nil
}

func (c *bfdCapture) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := c.conn.ReadFrom(buf)
		at := time.Now()
		c.mu.Lock()
		if err != nil {
			if !c.stopped {
				c.err = err
			}
			c.mu.Unlock()
			return
		}
		switch p, ok := parseBFD(buf[:n]); {
		case !ok:
		case p.src == c.node && p.dst == c.router:
			if len(c.arrived) == maxArrivals {
				c.arrived = slices.Delete(c.arrived, 0, 1)
			}
			c.arrived = append(c.arrived, at)
		case p.src == c.router && p.dst == c.node:
			up := p.state == bfdUp
			if c.routerUp && !up {
				c.downAt = at
			}
			c.routerUp = up
		}
		c.mu.Unlock()
	}
}

// BFD session states (RFC 5880 section 4.1), as a control packet's Sta
// field carries them.
const bfdUp = 3

// bfdPacket is what parseBFD reads from a BFD control packet.
type bfdPacket struct {
	src, dst netip.Addr
	state    byte
}

// parseBFD reads an IPv4 packet that is a UDP datagram to BFD's control
// port: its addresses and the sender's session state.
func parseBFD(p []byte) (bfdPacket, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return bfdPacket{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8+2 || binary.BigEndian.Uint16(p[ihl+2:]) != bfdControlPort {
		return bfdPacket{}, false
	}
	return bfdPacket{
		src:   netip.AddrFrom4([4]byte(p[12:16])),
		dst:   netip.AddrFrom4([4]byte(p[16:20])),
		state: p[ihl+8+1] >> 6,
	}, true
}

// Stop ends the capture and returns the arrival times of the node's last
// packets, oldest first, and when the router last declared the session
// down (zero if it has not since the capture began).
func (c *bfdCapture) Stop() (arrived []time.Time, down time.Time, err error) {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	err = c.conn.Close()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.arrived, c.downAt, errors.Join(err, c.err)
}

// medianGap is the median interval between arrivals, 0 for fewer than
// two.
func medianGap(arrived []time.Time) time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(arrived); i++ {
		gaps = append(gaps, arrived[i].Sub(arrived[i-1]))
	}
	if len(gaps) == 0 {
		return 0
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

// stallMin is the shortest stall stallWatch notes: a third of the
// detection time at 100 ms x 3, enough to matter to BFD.
const stallMin = 100 * time.Millisecond

// stall is a moment this process was not scheduled: At is when it ran
// again, Gap how long it had not.
type stall struct {
	At  time.Time
	Gap time.Duration
}

// stallWatch notes when the machine stalls: a goroutine that sleeps 10 ms
// at a time and notes each wake-up that comes stallMin or more late. A
// shared machine that stalls every process for a third of a second (a
// busy host, another tenant's build) makes BFD at 100 ms x 3 fail on
// both ends at once, which is not the speakers' doing; the flaps report
// says when that happened.
type stallWatch struct {
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu     sync.Mutex
	stalls []stall
}

// watchStalls starts a stallWatch. Stop ends it.
func watchStalls() *stallWatch {
	w := &stallWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		const tick = 10 * time.Millisecond
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(tick):
			}
			now := time.Now()
			if late := now.Sub(last) - tick; late >= stallMin {
				w.mu.Lock()
				w.stalls = append(w.stalls, stall{At: now, Gap: late})
				w.mu.Unlock()
			}
			last = now
		}
	}()
	return w
}

// since returns the stalls noted since t.
func (w *stallWatch) since(t time.Time) []stall {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []stall
	for _, s := range w.stalls {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// Stop ends the watch and returns every stall it noted. It may be called
// more than once.
func (w *stallWatch) Stop() []stall {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return w.since(time.Time{})
}
