package realnodes

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/labkube"
)

// ProbeEvery is how often the client asks each address during an upgrade
// or a failover.
const ProbeEvery = 10 * time.Millisecond

// A probe is lost if it fails, if its TCP connection was made only after
// synResent (the kernel sends an unanswered SYN again after 1 s: a packet
// went to a node that dropped it, or to none), or if it has no answer
// within answerTimeout. The last is longer than the first because a
// loaded 2-core machine slows answers on connections that are made:
// under the fault suite beside it, answers took up to 994 ms (CI,
// 2026-12-07) and 13 that took longer were counted lost when one second
// bounded the whole request. A slow answer is not a lost one; a resent
// SYN is.
const (
	synResent     = time.Second
	answerTimeout = 3 * time.Second
)

// Prober GETs a URL from the LAN client every ProbeEvery, each request on
// its own goroutine, so that one slow request delays no other.
type Prober struct {
	URL string
	ip  netip.Addr
	hc  *http.Client
	// stopSending ends the sender and followARP; sender waits for them,
	// requests for the requests in flight.
	stopSending context.CancelFunc
	sender      sync.WaitGroup
	requests    sync.WaitGroup
	start       time.Time

	mu      sync.Mutex
	results []probe
	moves   []string        // the client's ARP entry for ip, as it changed
	moveAt  []time.Duration // when it changed from one node to another
}

// probe is one request: when it left, whether it was answered and when.
type probe struct {
	sent, done time.Time
	ok         bool
	err        string // why it was lost
}

// ProbeResult is what a Prober saw.
type ProbeResult struct {
	URL            string
	Sent, Answered int
	// LongestGap is the longest time without an answer, between two
	// answers' arrival (or the start or end of the probe).
	LongestGap time.Duration
	// GapStart is when the longest gap began, from the probe's start.
	GapStart time.Duration
	// LastLoss is when the last lost probe was sent, from the start; 0
	// if none was lost.
	LastLoss time.Duration
	// Errors counts the lost probes by error.
	Errors map[string]int
	// SlowestAnswer is the longest time a probe waited for its answer.
	SlowestAnswer time.Duration
	// Moves lists, with the time from the start, each node the client's
	// ARP entry for the address pointed to in turn.
	Moves []string
	// LostAtMove counts the lost probes that were in flight when the
	// client's ARP entry changed: TCP connections that a move cut in
	// two (see Upgrade).
	LostAtMove int
}

// Lost is how many probes were lost (see synResent).
func (r ProbeResult) Lost() int { return r.Sent - r.Answered }

func (r ProbeResult) String() string {
	s := fmt.Sprintf("%s: %d/%d answered, longest gap %v (from %v), slowest answer %v, ARP entry %v", r.URL, r.Answered, r.Sent,
		r.LongestGap.Round(time.Millisecond), r.GapStart.Round(time.Millisecond), r.SlowestAnswer.Round(time.Millisecond), r.Moves)
	if r.Lost() > 0 {
		s += fmt.Sprintf(", last loss at %v, errors %v, %d lost in flight at an address move", r.LastLoss.Round(time.Millisecond), r.Errors, r.LostAtMove)
	}
	return s
}

// StartProbe starts probing w's URL from the client.
func (e *Env) StartProbe(w Workload) *Prober {
	ctx, stop := context.WithCancel(context.Background())
	url := w.URL()
	p := &Prober{URL: url, ip: w.RequestedIP, hc: e.httpClient(answerTimeout), stopSending: stop, start: time.Now()}
	p.sender.Go(func() { p.followARP(ctx, e) })
	p.sender.Go(func() {
		t := time.NewTicker(ProbeEvery)
		defer t.Stop()
		for {
			p.requests.Go(func() { p.ask(url) })
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return p
}

// ask makes one request and records it.
func (p *Prober) ask(url string) {
	// When the TCP connection was made tells a SYN that went unanswered
	// from an answer that came late (see synResent).
	var connectStart, connected time.Time
	var mu sync.Mutex
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		ConnectStart: func(_, _ string) { mu.Lock(); connectStart = time.Now(); mu.Unlock() },
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				mu.Lock()
				connected = time.Now()
				mu.Unlock()
			}
		},
	})
	sent := time.Now()
	_, err := labkube.HelloName(ctx, p.hc, url)
	pr := probe{sent: sent, done: time.Now(), ok: err == nil}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err != nil && connected.IsZero():
		pr.err = shortError(err) + " before connecting"
	case err != nil:
		pr.err = shortError(err) + " after connecting"
	case connected.Sub(connectStart) >= synResent:
		pr.ok, pr.err = false, "SYN sent again"
	}
	p.mu.Lock()
	p.results = append(p.results, pr)
	p.mu.Unlock()
}

// shortError is the kind of a probe's error, for counting.
func shortError(err error) string {
	s := err.Error()
	for _, k := range []string{"timeout", "Client.Timeout", "connection refused", "no route to host", "connection reset", "EOF", "deadline exceeded"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return s
}

// Stop ends the probe, after letting requests in flight finish, and says
// what it saw.
func (p *Prober) Stop() ProbeResult {
	p.stopSending()
	p.sender.Wait()
	end := time.Now() // the last request left by then
	p.requests.Wait() // each within answerTimeout
	p.mu.Lock()
	defer p.mu.Unlock()
	r := ProbeResult{URL: p.URL, Errors: map[string]int{}}
	var answers []time.Time
	for _, pr := range p.results {
		r.Sent++
		if pr.ok {
			r.SlowestAnswer = max(r.SlowestAnswer, pr.done.Sub(pr.sent))
			r.Answered++
			answers = append(answers, pr.done)
			continue
		}
		r.Errors[pr.err]++
		sent := pr.sent.Sub(p.start)
		r.LastLoss = max(r.LastLoss, sent)
		for _, m := range p.moveAt {
			// In flight: sent before the move, unanswered at it. The
			// entry is read every 20 ms, so the move may be seen late.
			if m >= sent && m <= pr.done.Sub(p.start)+arpPoll {
				r.LostAtMove++
				break
			}
		}
	}
	r.Moves = p.moves
	answers = append(answers, end)
	sort.Slice(answers, func(i, j int) bool { return answers[i].Before(answers[j]) })
	last := p.start
	for _, a := range answers {
		if d := a.Sub(last); d > r.LongestGap {
			r.LongestGap, r.GapStart = d, last.Sub(p.start)
		}
		last = a
	}
	return r
}

// arpPoll is how often followARP reads the client's ARP entry.
const arpPoll = 20 * time.Millisecond

// followARP records, every arpPoll, which node the client's ARP entry for
// the address points to, when it changes.
func (p *Prober) followARP(ctx context.Context, e *Env) {
	last, lastNode := "?", ""
	for {
		mac, err := e.Lab.Client().Neighbor(p.ip)
		now := "none"
		switch {
		case err != nil:
			now = "error"
		case mac != nil:
			now = mac.String()
			for _, n := range e.C.Nodes {
				if bytes.Equal(n.Host.MAC, mac) {
					now = n.Name
				}
			}
		}
		if now != last {
			p.mu.Lock()
			p.moves = append(p.moves, fmt.Sprintf("%v:%s", since(p.start), now))
			if now != "none" && now != "error" {
				if lastNode != "" && now != lastNode {
					p.moveAt = append(p.moveAt, time.Since(p.start))
				}
				lastNode = now
			}
			p.mu.Unlock()
			last = now
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(arpPoll):
		}
	}
}
