package labnet

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// delayQueue is the NFQUEUE number Delay uses. Queues belong to a
	// network namespace, so every host can use the same one; a second
	// Delay on one host finds it taken.
	delayQueue = 1
	// delayChain is the mangle chain of Delay's rules, so that removing
	// them touches nothing else.
	delayChain = "IRONLB-DELAY"
	// delayQueueLen is the kernel's limit of packets waiting for a
	// verdict: at 1,000 packets/s and 90 ms, about a hundred wait.
	delayQueueLen = 8192
	// delayRcvBuf is the queue socket's receive buffer, room for
	// thousands of queued-packet messages should the reader fall behind.
	delayRcvBuf = 8 << 20
	// delayCleanupTimeout bounds the iptables runs that remove the rules,
	// which must happen even once the caller's ctx is done.
	delayCleanupTimeout = 30 * time.Second
)

// Stats is what a Delay did, returned by its stop function.
type Stats struct {
	// Queued counts the packets the delay received.
	Queued int
	// Dropped counts those it dropped, for lossPercent.
	Dropped int
	// Overflow counts packets lost before the delay saw them: the
	// kernel's queue was full, or the socket's receive buffer (the
	// kernel's own counters; at least the number of ENOBUFS errors seen).
	Overflow int
}

// Delay delays, and optionally drops, every IP packet the host sends on its
// LAN interface, as `tc qdisc add dev eth0 root netem delay D JITTER loss
// L%` would on a kernel with sch_netem, which the lab's is not. Each packet
// is held for d plus a uniformly random offset in [-jitter, +jitter]
// (clamped at zero), independently, so, as with netem, packets sent closer
// together than the jitter can be reordered. lossPercent (0 to 100) of the
// packets are dropped at random instead. Only egress is affected, as with
// netem on a root qdisc: delay the other direction with another host's
// Delay. IPv4 and IPv6 are both delayed, including NDP (it is ICMPv6); ARP
// is not IP and passes at once.
//
// The packets are held in user space, in this process: iptables and
// ip6tables rules in a chain of Delay's own in the mangle table's
// POSTROUTING hand each packet leaving IfName to an NFQUEUE, which Delay
// reads and answers with a verdict when the packet's time has come. It needs
// the iptables package (and, under iptables-nft, a kernel with nft_compat
// and xt_NFQUEUE). Each queued packet costs two system calls and two
// goroutine wake-ups here: cheap at the rates of a test (BenchmarkDelay:
// 10 to 30 µs of CPU per packet on a 2-core VM, 1 to 3% of a core at
// 1,000 packets/s), not at line rate.
//
// stop removes the rules (so nothing more is queued), then lets every held
// packet go at once, closes the queue and reports what the delay did. It is
// idempotent and safe for concurrent use; every call returns the first
// call's result. ctx being done, or the lab's Close, calls it too. Only one
// Delay can run on a host at a time.
func (h *Host) Delay(ctx context.Context, d, jitter time.Duration, lossPercent int) (stop func() (Stats, error), err error) {
	if d < 0 || jitter < 0 || lossPercent < 0 || lossPercent > 100 {
		return nil, fmt.Errorf("%s: delay %v, jitter %v, loss %d%%: want durations >= 0 and loss 0 to 100", h.Name, d, jitter, lossPercent)
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s: delay: %s is needed (apt-get install iptables): %w", h.Name, bin, err)
		}
	}
	q, err := openNFQueue(h, delayQueue, nfqConfig{MaxLen: delayQueueLen, RcvBuf: delayRcvBuf})
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("delay: another Delay runs on this host: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("delay: %w", err)
	}
	dl := &delayer{
		h: h, q: q, d: d, jitter: jitter, loss: lossPercent,
		in:       make(chan heldPacket, 1024),
		quit:     make(chan struct{}),
		readDone: make(chan struct{}),
		holdDone: make(chan struct{}),
	}
	go dl.read()
	go dl.hold(func(id uint32) error { return q.verdict(id, nfAccept) })
	once := sync.OnceValues(dl.stop)
	if err := dl.addRules(ctx); err != nil {
		_, serr := once()
		return nil, errors.Join(err, serr)
	}
	if err := h.lab.addCloser(dl, func() error { _, err := once(); return err }); err != nil {
		_, serr := once()
		return nil, errors.Join(fmt.Errorf("%s: delay: %w", h.Name, err), serr)
	}
	unwatch := context.AfterFunc(ctx, func() { once() })
	return func() (Stats, error) {
		unwatch()
		return once()
	}, nil
}

// delayer is one running Delay. It owns two goroutines: read takes packets
// from the queue, drops some and passes the rest to hold, which lets each go
// when its time has come.
type delayer struct {
	h         *Host
	q         *nfQueue
	d, jitter time.Duration
	loss      int

	in       chan heldPacket // from read to hold
	quit     chan struct{}   // closed to end hold
	readDone chan struct{}
	holdDone chan struct{}

	// Owned by read until readDone is closed.
	queued, dropped, enobufs int
	lastID                   uint32
	readErr                  error

	// Owned by hold until holdDone is closed.
	holdErr error

	// undo holds the iptables commands that remove the rules, in the
	// order they were added; set by addRules, used by stop, which runs
	// after it.
	undo [][]string
}

// heldPacket is a packet waiting in hold for its time.
type heldPacket struct {
	id  uint32
	due time.Time
}

// read receives queued packets until stopReading, and decides each one's
// fate at once: dropped now, or accepted later by hold.
func (dl *delayer) read() {
	defer close(dl.readDone)
	var msgs []nfqMsg
	for {
		var err error
		msgs, err = dl.q.receive(msgs[:0])
		switch {
		case errors.Is(err, unix.ENOBUFS):
			dl.enobufs++
			continue
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, os.ErrClosed):
			return
		case err != nil:
			// A malformed datagram loses at most its own packets;
			// they are let go at stop.
			dl.readErr = firstErr(dl.readErr, fmt.Errorf("receive: %w", err))
			if !errors.Is(err, errNFQMalformed) {
				return
			}
		}
		for _, m := range msgs {
			switch m.kind {
			case nfqPacket:
				dl.queued++
				dl.lastID = m.id
				if dl.loss > 0 && rand.IntN(100) < dl.loss {
					dl.dropped++
					if err := dl.q.verdict(m.id, nfDrop); err != nil {
						dl.readErr = firstErr(dl.readErr, fmt.Errorf("drop packet %d: %w", m.id, err))
					}
					continue
				}
				dl.in <- heldPacket{id: m.id, due: time.Now().Add(dl.wait())}
			case nfqAck:
				// Verdicts ask for no acknowledgement, so this
				// is the kernel refusing one. ENOENT: the packet
				// is gone already; removing any netfilter hook in
				// the namespace (an nft table's base chain, say)
				// drops every packet queued there.
				if m.errno != 0 && !errors.Is(m.errno, unix.ENOENT) {
					dl.readErr = firstErr(dl.readErr, fmt.Errorf("verdict refused: %w", m.errno))
				}
			}
		}
	}
}

// wait is how long to hold one packet: d plus a uniform offset in
// [-jitter, +jitter], never negative, like netem's default distribution.
func (dl *delayer) wait() time.Duration {
	w := dl.d
	if dl.jitter > 0 {
		w += time.Duration(rand.Int64N(2*int64(dl.jitter)+1)) - dl.jitter
	}
	return max(w, 0)
}

// hold accepts each packet from read when its time comes, until quit. It is
// one goroutine with a heap and a single timer rather than a time.AfterFunc
// per packet, so that once it returns no verdict can follow. At 1,000
// packets/s the two cost about the same (BenchmarkDelayHold: 15 to 20 µs
// of CPU per packet on a 2-core VM, AfterFunc a few µs less, about the
// noise), most of it waking goroutines.
func (dl *delayer) hold(accept func(id uint32) error) {
	defer close(dl.holdDone)
	var held heldHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case p := <-dl.in:
			heap.Push(&held, p)
		case <-timer.C:
		case <-dl.quit:
			return
		}
		now := time.Now()
		for len(held) > 0 && !held[0].due.After(now) {
			p := heap.Pop(&held).(heldPacket)
			if err := accept(p.id); err != nil {
				dl.holdErr = firstErr(dl.holdErr, fmt.Errorf("accept packet %d: %w", p.id, err))
			}
		}
		if len(held) > 0 {
			timer.Reset(held[0].due.Sub(now))
		}
	}
}

// stop ends the delay; see Delay.
func (dl *delayer) stop() (Stats, error) {
	dl.h.lab.removeCloser(dl)
	ctx, cancel := context.WithTimeout(context.Background(), delayCleanupTimeout)
	defer cancel()
	errs := []error{dl.removeRules(ctx)}

	dl.q.stopReading()
	<-dl.readDone
	close(dl.quit)
	<-dl.holdDone
	// Nothing is queued any more, so every packet still waiting, held by
	// hold or not yet read, has an ID after one read saw last, or before:
	// one batch verdict reaching well past it lets them all go. IDs are
	// sequence numbers that the kernel compares with wraparound.
	if err := dl.q.verdictBatch(dl.lastID+1<<30, nfAccept); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, err) // ENOENT: none was left
	}

	st := Stats{Queued: dl.queued, Dropped: dl.dropped, Overflow: dl.enobufs}
	// Read before Close: the counters go with the queue.
	ks, err := dl.q.kernelStats()
	if err == nil {
		st.Overflow = max(st.Overflow, ks.QueueDropped+ks.UserDropped)
	}
	errs = append(errs, err, dl.readErr, dl.holdErr, dl.q.Close())
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("%s: stop delay: %w", dl.h.Name, err)
	}
	return st, nil
}

// addRules sends every packet leaving IfName to the queue, and records in
// dl.undo how to take back each step that succeeded. --queue-bypass lets
// packets pass, undelayed, while no socket is bound to the queue, so rules
// that outlive their Delay (a failed removal) do not cut the host off.
func (dl *delayer) addRules(ctx context.Context) error {
	queue := strconv.Itoa(delayQueue)
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, step := range []struct{ do, undo []string }{
			{[]string{"-N", delayChain}, []string{"-X", delayChain}},
			{
				[]string{"-A", delayChain, "-o", dl.h.IfName, "-j", "NFQUEUE", "--queue-num", queue, "--queue-bypass"},
				[]string{"-F", delayChain},
			},
			{[]string{"-A", "POSTROUTING", "-j", delayChain}, []string{"-D", "POSTROUTING", "-j", delayChain}},
		} {
			if _, err := dl.h.Run(ctx, bin, append([]string{"-w", "-t", "mangle"}, step.do...)...); err != nil {
				return fmt.Errorf("delay: %w", err)
			}
			dl.undo = append(dl.undo, append([]string{bin, "-w", "-t", "mangle"}, step.undo...))
		}
	}
	return nil
}

// removeRules takes back what addRules did, in reverse order: first the
// jump from POSTROUTING (after which nothing is queued in that family),
// then the chain. It tries every step whatever failed before.
func (dl *delayer) removeRules(ctx context.Context) error {
	var errs []error
	for _, cmd := range slices.Backward(dl.undo) {
		if _, err := dl.h.Run(ctx, cmd[0], cmd[1:]...); err != nil {
			errs = append(errs, err)
		}
	}
	dl.undo = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove delay rules: %w", err)
	}
	return nil
}

// heldHeap orders held packets by due time, for container/heap.
type heldHeap []heldPacket

func (h heldHeap) Len() int           { return len(h) }
func (h heldHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h heldHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)        { *h = append(*h, x.(heldPacket)) }
func (h *heldHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// firstErr keeps the first error.
func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}
