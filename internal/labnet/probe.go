package labnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultProbeInterval is how often ProbeUDP sends when asked for 0.
const DefaultProbeInterval = 10 * time.Millisecond

// ProbeReply is one answer a Prober received.
type ProbeReply struct {
	// Seq numbers the probe, from 1.
	Seq int
	// Node is the name of the host that answered.
	Node string
	// Sent and Received are when the probe left and the answer arrived.
	Sent, Received time.Time
}

// ProbeResult is what a user on the LAN saw during a probe.
type ProbeResult struct {
	// Sent is the number of probes sent; Received the number of them that
	// were answered (by anyone, counted once).
	Sent, Received int
	// LongestGap is the longest time without an answer: between the first
	// probe and the first answer, between two answers, or between the last
	// answer and the end of the probe. It measures a failover's outage as
	// the client experiences it, to within one interval.
	LongestGap time.Duration
	// ByNode counts answers by the name of the node that sent them.
	ByNode map[string]int
	// Replies lists every answer in arrival order.
	Replies []ProbeReply
}

// Prober sends a UDP datagram to a target at a fixed interval from a host
// and records the answers of ServeUDPEcho servers. Start one with ProbeUDP
// and end it with Stop.
type Prober struct {
	host   *Host
	conn   *net.UDPConn
	cancel context.CancelFunc
	sender chan struct{} // closed when the sender is done
	reader chan struct{} // closed when the reader is done
	every  time.Duration

	once   sync.Once
	result ProbeResult

	mu      sync.Mutex
	start   time.Time
	end     time.Time
	sent    []time.Time // sent[i] is when probe i+1 left
	replies []ProbeReply
}

// ProbeUDP starts probing target from the host every interval (0 means
// DefaultProbeInterval), each datagram carrying its sequence number. It runs
// until Stop, or until ctx is done (Stop must still be called to get the
// result); the lab stops it on Close.
func (h *Host) ProbeUDP(ctx context.Context, target netip.AddrPort, every time.Duration) (*Prober, error) {
	if every <= 0 {
		every = DefaultProbeInterval
	}
	var conn *net.UDPConn
	err := h.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", target, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{
		host: h, conn: conn, cancel: cancel, every: every,
		sender: make(chan struct{}), reader: make(chan struct{}),
	}
	if err := h.lab.addCloser(p, func() error { p.Stop(); return nil }); err != nil {
		cancel()
		conn.Close()
		return nil, err
	}
	go p.read()
	go p.send(ctx, target)
	return p, nil
}

func (p *Prober) send(ctx context.Context, target netip.AddrPort) {
	defer close(p.sender)
	t := time.NewTicker(p.every)
	defer t.Stop()
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	for seq := 1; ; seq++ {
		p.mu.Lock()
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		// Errors (no route while a link is down) are what a user would
		// see as loss; the probe counts as sent either way.
		p.conn.WriteToUDPAddrPort([]byte(strconv.Itoa(seq)), target)
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.end = time.Now()
			p.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

func (p *Prober) read() {
	defer close(p.reader)
	buf := make([]byte, 2048)
	for {
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		node, seqText, ok := strings.Cut(string(buf[:n]), " ")
		seq, err := strconv.Atoi(seqText)
		if !ok || err != nil || seq < 1 {
			continue
		}
		p.mu.Lock()
		if seq <= len(p.sent) {
			p.replies = append(p.replies, ProbeReply{Seq: seq, Node: node, Sent: p.sent[seq-1], Received: now})
		}
		p.mu.Unlock()
	}
}

// Stop ends the probe and returns what it saw. It stops sending, waits for
// answers still in flight (a few intervals), and closes the socket. Calling
// it again returns the same result.
func (p *Prober) Stop() ProbeResult {
	p.once.Do(func() {
		p.cancel()
		<-p.sender
		time.Sleep(max(2*p.every, 20*time.Millisecond))
		p.conn.Close()
		<-p.reader
		p.host.lab.removeCloser(p)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.result = summarize(p.start, p.end, len(p.sent), p.replies)
	})
	return p.result
}

// summarize computes a ProbeResult from the probe's start and end and the
// replies in arrival order.
func summarize(start, end time.Time, sent int, replies []ProbeReply) ProbeResult {
	r := ProbeResult{Sent: sent, ByNode: map[string]int{}, Replies: replies}
	seen := map[int]bool{}
	last := start
	for _, rep := range replies {
		r.ByNode[rep.Node]++
		if !seen[rep.Seq] {
			seen[rep.Seq] = true
			r.Received++
		}
		r.LongestGap = max(r.LongestGap, rep.Received.Sub(last))
		last = rep.Received
	}
	if end.After(last) {
		r.LongestGap = max(r.LongestGap, end.Sub(last))
	}
	return r
}
