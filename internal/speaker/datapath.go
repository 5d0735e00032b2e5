package speaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

// A node announces only what it can forward. The speakers elect among
// nodes that are Ready and whose speaker is alive, but what forwards a
// Service's traffic on the node is kube-proxy: when it is gone or stuck,
// the node still answers ARP (or keeps its BGP routes) for addresses whose
// traffic nobody may be forwarding, and its Node stays Ready.
//
// The decision: each speaker polls its own node's kube-proxy health
// endpoint (kube-proxy serves /healthz on 0.0.0.0:10256 by default, and
// the speaker runs in the host's network namespace), and tells the others
// in its gossip metadata when the data path is down (meta.go), as it does
// for its reach of the API server (apicut.go). All of them apply the same
// rule to what they hear (announce.View.DataPathDown): such a node
// announces nothing, in either mode, and its addresses move as a dead
// node's do. Cloud load balancers decide alike: they check the same
// endpoint before sending a node traffic for an externalTrafficPolicy:
// Cluster Service (KEP-3458).
//
//   - The data path is down after dataPathDownAfter failed polls in a row
//     (an error, a refused connection, no answer within
//     dataPathProbeTimeout, or any status but 200: kube-proxy answers 503
//     when its rules are stale), and up again at the first success, while
//     a single slow answer moves nothing. A kube-proxy that hangs is
//     found 450-600 ms after it stops (the next poll within an interval,
//     then three timeouts), and the others take over within the failover
//     bound of 1 s. With 200 ms polls the decision alone took 600-800 ms,
//     and the client's ARP entry moved 0.82-1.04 s after the stop
//     (test/realnodes, check data path).
//   - The node going down stops answering before it tells the others
//     (publishDataPath): they start only once it has stopped, so no
//     address has two answering nodes; the gap is the gossip's delay.
//   - Addresses come back by the usual sticky rule (election.StickyOwner):
//     a node whose kube-proxy recovers takes nothing back.
//   - When no node that could announce has its data path up (a cluster
//     with no kube-proxy, whose replacement serves no such endpoint), the
//     rule is ignored (announce.DataPathsIgnored) rather than turn every
//     address dark, and each speaker says once that the probe should be
//     turned off.
//
// A kube-proxy that restarts (its DaemonSet rolled out) is down for the
// seconds it takes, and its node's addresses move meanwhile, although the
// rules it left in the kernel go on forwarding: from outside, a restart
// cannot be told from a kube-proxy that died.
const (
	// DefaultKubeProxyHealthURL is kube-proxy's health endpoint at its
	// default healthzBindAddress (0.0.0.0:10256), as the speaker reaches
	// it from the host's network namespace.
	DefaultKubeProxyHealthURL = "http://127.0.0.1:10256/healthz"
	dataPathProbeEvery        = 150 * time.Millisecond
	dataPathProbeTimeout      = 150 * time.Millisecond
	dataPathDownAfter         = 3
)

// dataPathState is whether a node's data path is down and since when.
// The zero value is a speaker that does not probe: up.
type dataPathState struct {
	down  bool
	since time.Time
}

// dataPathProbe polls one kube-proxy health endpoint. run's goroutine
// owns fails; the state is guarded by mu, for the sync loop to read.
type dataPathProbe struct {
	url     string
	hc      *http.Client
	log     *slog.Logger
	changed func() // called when the state changes
	fails   int    // failed polls in a row
	// first is closed once the first poll has decided the state: a
	// starting speaker joins the others with a verdict (waitFirst), not
	// with the "up" it assumes before asking. Were it to join as up while
	// every other node is down (a cluster without kube-proxy, the probe
	// left on), the rule would no longer be ignored (DataPathsIgnored)
	// and every address would go dark until its first polls failed.
	first     chan struct{}
	firstDone bool

	mu sync.Mutex
	st dataPathState
}

// newDataPathProbe returns a probe of the health endpoint at rawURL
// (DefaultKubeProxyHealthURL if empty), up from now, which calls changed
// from its goroutine when the state changes; nil for "off".
func newDataPathProbe(rawURL string, log *slog.Logger, changed func()) (*dataPathProbe, error) {
	switch rawURL {
	case "off":
		return nil, nil
	case "":
		rawURL = DefaultKubeProxyHealthURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kube-proxy health URL %q: want http://HOST:PORT/PATH, or off", rawURL)
	}
	return &dataPathProbe{
		url: rawURL,
		hc: &http.Client{Transport: &http.Transport{
			// The endpoint is on this host: never through a proxy.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: dataPathProbeTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     10 * time.Second,
		}},
		log:     log,
		changed: changed,
		st:      dataPathState{since: time.Now()},
		first:   make(chan struct{}),
	}, nil
}

// waitFirst waits until the first poll has decided the state, at most
// timeout or until ctx ends. A nil probe does not wait.
func (p *dataPathProbe) waitFirst(ctx context.Context, timeout time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.first:
	case <-ctx.Done():
	case <-time.After(timeout):
	}
}

// run polls at once, then every dataPathProbeEvery until ctx ends.
func (p *dataPathProbe) run(ctx context.Context) {
	t := time.NewTicker(dataPathProbeEvery)
	defer t.Stop()
	for {
		p.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check polls once (decide) and, the first time, tells waitFirst.
func (p *dataPathProbe) check(ctx context.Context) {
	p.decide(ctx)
	if !p.firstDone && ctx.Err() == nil {
		p.firstDone = true
		close(p.first)
	}
}

// decide polls once and moves the state: down after dataPathDownAfter
// failures in a row, or at the first poll if it fails (a starting speaker
// has no state to keep), up at the first success.
func (p *dataPathProbe) decide(ctx context.Context) {
	err := p.poll(ctx)
	if ctx.Err() != nil {
		return
	}
	st := p.state()
	if err == nil {
		p.fails = 0
		if st.down {
			p.log.Info("kube-proxy on this node answers healthy again: telling the other speakers", "url", p.url, "downFor", time.Since(st.since).Round(time.Millisecond))
			p.set(dataPathState{since: time.Now()})
		}
		return
	}
	p.fails++
	if st.down || (p.fails < dataPathDownAfter && p.firstDone) {
		p.log.Debug("kube-proxy health check failed", "url", p.url, "inARow", p.fails, "error", err)
		return
	}
	p.log.Warn("kube-proxy on this node is not healthy: this node announces nothing, and the other speakers take its addresses", "url", p.url, "failedPolls", p.fails, "error", err)
	p.set(dataPathState{down: true, since: time.Now()})
}

// poll asks the health endpoint once: nil if it answered 200 within
// dataPathProbeTimeout.
func (p *dataPathProbe) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dataPathProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end (it is short), so that the connection is reused.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return err
}

// state is the probe's state; the zero state (up) for a nil probe.
func (p *dataPathProbe) state() dataPathState {
	if p == nil {
		return dataPathState{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *dataPathProbe) set(st dataPathState) {
	p.mu.Lock()
	p.st = st
	p.mu.Unlock()
	p.changed()
}

// dataPathSync is what the sync loop keeps of the data paths; it is the
// sync loop's alone.
type dataPathSync struct {
	probe *dataPathProbe // nil: off
	// published is this node's state as published in the membership
	// metadata and applied to its own view.
	published dataPathState
	// down are the nodes refused for their data path at the last sync,
	// warned whether DataPathsIgnored has been logged.
	down   map[string]bool
	warned bool
}

// publishDataPath publishes this node's data path state (probe) in its
// membership metadata if it changed, and reports whether it did. When the
// data path went down, the node syncs first, so that it stops announcing
// before the others hear of it and start.
func (s *Speaker) publishDataPath(ctx context.Context) bool {
	st := s.dataPath.probe.state()
	if st == s.dataPath.published {
		return false
	}
	s.dataPath.published = st
	if st.down {
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sync", "error", err)
		}
	}
	s.publishMeta()
	return true
}

// dataPaths returns the nodes of states whose data path is down, and
// those whose speaker says it is up (a zero state says nothing: a speaker
// that does not probe, or an older one).
func dataPaths(states map[string]dataPathState) (down, up map[string]bool) {
	for name, st := range states {
		switch {
		case st.down:
			if down == nil {
				down = map[string]bool{}
			}
			down[name] = true
		case !st.since.IsZero():
			if up == nil {
				up = map[string]bool{}
			}
			up[name] = true
		}
	}
	return down, up
}

// noteDataPaths logs when the nodes refused for their data path change,
// and once when the rule is ignored for every node.
func (s *Speaker) noteDataPaths(v announce.View) {
	if announce.DataPathsIgnored(v) {
		if !s.dataPath.warned {
			s.log.Warn("no node that may announce has a healthy kube-proxy: ignoring kube-proxy's health. If the cluster runs no kube-proxy (e.g. a replacement such as Cilium's), set --kube-proxy-health-url=off on the speakers; otherwise point it at kube-proxy's /healthz",
				"nodes", slices.Sorted(maps.Keys(v.DataPathDown)))
			s.dataPath.warned = true
		}
		return
	}
	if maps.Equal(v.DataPathDown, s.dataPath.down) {
		return
	}
	s.dataPath.down = v.DataPathDown
	if len(v.DataPathDown) == 0 {
		s.log.Info("every node's kube-proxy is healthy")
		return
	}
	s.log.Warn("nodes whose kube-proxy is not healthy: they announce nothing", "nodes", slices.Sorted(maps.Keys(v.DataPathDown)))
}
