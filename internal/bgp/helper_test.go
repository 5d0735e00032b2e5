package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// A node's speaker must run inside the node's network namespace, and GoBGP
// dials from goroutines of its own, which Host.Do cannot put there (a
// namespace belongs to a thread). So each node runs the test binary itself
// as a helper process, started in the node's namespace by Host.Start, with
// helperEnv naming a Unix socket on which it serves a tiny HTTP API: PUT
// /peers and /routes (JSON []Peer, []Route) and GET /status. A Unix socket
// lives in the file system, so the test reaches it from any namespace.
const (
	helperEnv       = "IRONLB_BGP_HELPER_SOCKET"
	helperRouterEnv = "IRONLB_BGP_HELPER_ROUTER_ID"
	helperDebugEnv  = "IRONLB_BGP_HELPER_DEBUG"
	// helperRestartEnv sets Options.RestartTime (a time.Duration).
	helperRestartEnv = "IRONLB_BGP_HELPER_RESTART_TIME"
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		if err := runHelper(sock); err != nil {
			fmt.Fprintln(os.Stderr, "bgp helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper runs one Speaker until SIGTERM, or until POST /restart, which
// stops it to restart (Speaker.PrepareRestart).
func runHelper(sock string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var restart time.Duration
	if v := os.Getenv(helperRestartEnv); v != "" {
		var err error
		if restart, err = time.ParseDuration(v); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if os.Getenv(helperDebugEnv) != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sp, err := New(Options{RouterID: netip.MustParseAddr(os.Getenv(helperRouterEnv)), Logger: log, ConnectRetry: 2 * time.Second, RestartTime: restart})
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /peers", func(w http.ResponseWriter, r *http.Request) {
		var peers []Peer
		if err := json.NewDecoder(r.Body).Decode(&peers); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := sp.SetPeers(peers); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("PUT /routes", func(w http.ResponseWriter, r *http.Request) {
		var routes []Route
		if err := json.NewDecoder(r.Body).Decode(&routes); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := sp.SetRoutes(slices.Values(routes)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(sp.Status())
	})
	mux.HandleFunc("POST /restart", func(w http.ResponseWriter, r *http.Request) {
		sp.PrepareRestart()
		// Answer before stopping: the process exits as Run returns, and
		// an answer not yet sent reached the test as EOF.
		w.WriteHeader(http.StatusNoContent)
		w.(http.Flusher).Flush()
		cancel()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	return sp.Run(ctx)
}

// node is a Speaker running in a node's namespace.
type node struct {
	host *labnet.Host
	proc *labnet.Process
	sock string
	hc   *http.Client
}

// startSpeaker starts a helper speaker on host h, with router ID h's IPv4
// address, and waits until it answers.
func startSpeaker(t *testing.T, h *labnet.Host, sockDir string) *node {
	t.Helper()
	return startSpeakerEnv(t, h, sockDir)
}

// startSpeakerEnv is startSpeaker with env added to the helper's
// environment.
func startSpeakerEnv(t *testing.T, h *labnet.Host, sockDir string, env ...string) *node {
	t.Helper()
	sock := filepath.Join(sockDir, h.Name+".sock")
	os.Remove(sock)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+sock, helperRouterEnv+"="+h.IPv4.String())
	cmd.Env = append(cmd.Env, env...)
	if testing.Verbose() {
		cmd.Env = append(cmd.Env, helperDebugEnv+"=1")
	}
	p, err := h.StartCmd(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{host: h, proc: p, sock: sock, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}}
	t.Cleanup(func() { p.Stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := n.status(); err == nil {
			return n
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: speaker did not answer: %v", h.Name, err)
		}
		select {
		case <-p.Done():
			log, _ := p.Log()
			t.Fatalf("%s: speaker exited: %v\n%s", h.Name, p.Wait(), log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *node) put(what string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, "http://speaker/"+what, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: set %s: %w", n.host.Name, what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: set %s: %s", n.host.Name, what, bytes.TrimSpace(msg))
	}
	return nil
}

func (n *node) setPeers(t *testing.T, peers ...Peer) {
	t.Helper()
	if err := n.put("peers", peers); err != nil {
		t.Fatal(err)
	}
}

func (n *node) setRoutes(t *testing.T, routes ...Route) {
	t.Helper()
	if routes == nil {
		routes = []Route{}
	}
	if err := n.put("routes", routes); err != nil {
		t.Fatal(err)
	}
}

func (n *node) status() ([]PeerStatus, error) {
	resp, err := n.hc.Get("http://speaker/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st []PeerStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return st, nil
}

// peerStatus returns the status of the peer named name.
func (n *node) peerStatus(name string) (PeerStatus, error) {
	st, err := n.status()
	if err != nil {
		return PeerStatus{}, err
	}
	for _, s := range st {
		if s.Name == name {
			return s, nil
		}
	}
	return PeerStatus{}, fmt.Errorf("%s: no peer %s in %+v", n.host.Name, name, st)
}

// eventually calls check every 50 ms until it succeeds or d passes, and
// returns how long that took, failing the test with check's last error.
func eventually(t *testing.T, d time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < d {
		if err = check(); err == nil {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v: %v", what, d, err)
	return 0
}

// newBFDLab starts a lab with daemon on the router and every node its
// neighbour with BFD and hold time hold, and gives each node's speaker a
// session to the router with BFD at bfdFast and the route svcAll.
func newBFDLab(t *testing.T, daemon string, hold time.Duration) *bgpLab {
	t.Helper()
	bl := newBGPLab(t, daemon, func(l *labnet.Lab) labnet.RouterConfig {
		var ns []labnet.RouterNeighbor
		for _, h := range l.Nodes() {
			ns = append(ns, labnet.RouterNeighbor{Address: h.IPv4, ASN: nodeASN, BFD: true, HoldTime: hold})
		}
		return labnet.RouterConfig{ASN: routerASN, Neighbors: ns}
	})
	for _, n := range bl.nodes {
		n.setPeers(t, Peer{Name: "router", Address: bl.router.Host.IPv4, MyASN: nodeASN, PeerASN: routerASN,
			HoldTime: hold, KeepaliveTime: 3 * time.Second, BFD: bfdFast})
		n.setRoutes(t, Route{Prefix: svcAll})
	}
	return bl
}
