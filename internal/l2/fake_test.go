package l2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// nopConn is a net.PacketConn that does nothing: reads and writes fail.
// Fakes embed it and override what they need.
type nopConn struct{}

var errNop = errors.New("nopConn")

func (nopConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, errNop }
func (nopConn) WriteTo([]byte, net.Addr) (int, error)  { return 0, errNop }
func (nopConn) Close() error                           { return nil }
func (nopConn) LocalAddr() net.Addr                    { return nil }
func (nopConn) SetDeadline(time.Time) error            { return nil }
func (nopConn) SetReadDeadline(time.Time) error        { return nil }
func (nopConn) SetWriteDeadline(time.Time) error       { return nil }

func readErr(err error) (int, net.Addr, error) { return 0, nil, err }

// frameConn is a fake packet socket: frames pushed with deliver are read by
// ReadFrom, frames written are recorded with their (fake, under synctest)
// time. A read deadline in the past fails reads with
// os.ErrDeadlineExceeded, as on a real socket; Close fails them with
// net.ErrClosed. Create it inside the synctest bubble that uses it.
type frameConn struct {
	nopConn
	in      chan []byte
	expired chan struct{} // closed by a read deadline in the past
	closed  chan struct{}

	mu        sync.Mutex
	expiredOn bool
	closedOn  bool
	sent      []sentFrame
}

type sentFrame struct {
	at    time.Time
	frame []byte
	to    net.HardwareAddr
}

func newFrameConn() *frameConn {
	return &frameConn{in: make(chan []byte), expired: make(chan struct{}), closed: make(chan struct{})}
}

// deliver hands f to the next ReadFrom, waiting for it.
func (c *frameConn) deliver(f []byte) { c.in <- f }

func (c *frameConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		from := &packet.Addr{HardwareAddr: net.HardwareAddr{}}
		if len(f) >= 12 {
			from.HardwareAddr = slices.Clone(f[6:12])
		}
		return copy(b, f), from, nil
	case <-c.expired:
		return readErr(os.ErrDeadlineExceeded)
	case <-c.closed:
		return readErr(net.ErrClosed)
	}
}

func (c *frameConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*packet.Addr)
	if !ok {
		return 0, fmt.Errorf("WriteTo %T, want *packet.Addr", addr)
	}
	if len(b) < etherHdrLen || !bytes.Equal(a.HardwareAddr, b[0:6]) {
		return 0, fmt.Errorf("WriteTo %s a frame to %x", a.HardwareAddr, b[:min(len(b), 6)])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedOn {
		return 0, net.ErrClosed
	}
	c.sent = append(c.sent, sentFrame{at: time.Now(), frame: slices.Clone(b), to: slices.Clone(a.HardwareAddr)})
	return len(b), nil
}

func (c *frameConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.IsZero() && !t.After(time.Now()) && !c.expiredOn {
		c.expiredOn = true
		close(c.expired)
	}
	return nil
}

func (c *frameConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closedOn {
		return net.ErrClosed
	}
	c.closedOn = true
	close(c.closed)
	return nil
}

func (c *frameConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closedOn
}

// takeSent returns the frames written since the last call.
func (c *frameConn) takeSent() []sentFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

// groupConn is a frameConn that records link-layer group memberships, like
// *packet.Conn's JoinGroup and LeaveGroup.
type groupConn struct {
	*frameConn
	gmu    sync.Mutex
	groups map[string]int
	fail   error // returned by JoinGroup if set
}

func newGroupConn() *groupConn {
	return &groupConn{frameConn: newFrameConn(), groups: map[string]int{}}
}

func (c *groupConn) JoinGroup(a net.HardwareAddr) error {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.groups[a.String()]++
	return nil
}

func (c *groupConn) LeaveGroup(a net.HardwareAddr) error {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	if c.groups[a.String()] == 0 {
		return fmt.Errorf("leave %s: not a member", a)
	}
	if c.groups[a.String()]--; c.groups[a.String()] == 0 {
		delete(c.groups, a.String())
	}
	return nil
}

func (c *groupConn) members() []string {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	var out []string
	for g, n := range c.groups {
		for range n {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// flakyConn is a frameConn whose first reads fail with a transient error,
// like ENETDOWN while the link is down.
type flakyConn struct {
	*frameConn
	mu    sync.Mutex
	fails int
}

func (c *flakyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	fail := c.fails > 0
	if fail {
		c.fails--
	}
	c.mu.Unlock()
	if fail {
		return readErr(errors.New("network is down"))
	}
	return c.frameConn.ReadFrom(b)
}
