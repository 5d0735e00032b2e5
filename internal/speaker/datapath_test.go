package speaker

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/announce"
)

func TestMetaDataPath(t *testing.T) {
	ifaces := []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}
	at := time.UnixMilli(1796544000123)
	for _, m := range []memberMeta{
		{api: apiState{since: at}, joined: at},
		{api: apiState{since: at}, joined: at, dataPath: dataPathState{since: at.Add(time.Second)}},
		{api: apiState{since: at}, joined: at, dataPath: dataPathState{down: true, since: at.Add(2 * time.Second)}},
		{api: apiState{lost: true, since: at}, dataPath: dataPathState{down: true, since: at}},
	} {
		enc := encodeMeta(ifaces, m, 500)
		got := decodeMeta(enc)
		if got.dataPath.down != m.dataPath.down || !got.dataPath.since.Equal(m.dataPath.since) ||
			got.api.lost != m.api.lost || !got.api.since.Equal(m.api.since) || !got.joined.Equal(m.joined) {
			t.Errorf("%q: %+v, want %+v", enc, got, m)
		}
		if got := decodeIfaces(enc); !slices.Equal(got, ifaces) {
			t.Errorf("%q: interfaces %v, want %v", enc, got, ifaces)
		}
	}
	// An older speaker, or one that does not probe, says nothing: up.
	if got := decodeMeta("!api-ok@1,eth0=02:00:00:00:00:01"); got.dataPath.down {
		t.Errorf("no data path item: %+v, want up", got.dataPath)
	}
	down, up := dataPaths(map[string]dataPathState{"a": {}, "b": {down: true, since: at}, "c": {since: at}})
	if !slices.Equal(slices.Sorted(maps.Keys(down)), []string{"b"}) || !slices.Equal(slices.Sorted(maps.Keys(up)), []string{"c"}) {
		t.Errorf("dataPaths = %v, %v; want [b], [c] (a said nothing)", down, up)
	}
}

func TestNewDataPathProbe(t *testing.T) {
	if p, err := newDataPathProbe("off", slog.New(slog.DiscardHandler), func() {}); p != nil || err != nil {
		t.Errorf("off: %v, %v; want no probe", p, err)
	}
	if p, err := newDataPathProbe("", slog.New(slog.DiscardHandler), func() {}); err != nil || p.url != DefaultKubeProxyHealthURL {
		t.Errorf("default: %v, %v", p, err)
	}
	for _, bad := range []string{"127.0.0.1:10256", "ftp://x/healthz", "http://"} {
		if _, err := newDataPathProbe(bad, slog.New(slog.DiscardHandler), func() {}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	var none *dataPathProbe
	if st := none.state(); st != (dataPathState{}) {
		t.Errorf("a nil probe's state: %+v, want up", st)
	}
}

// TestDataPathProbe drives the probe's state machine against a real HTTP
// server on loopback: 200, 503 (kube-proxy's stale rules), no answer in
// time, and a closed server (kube-proxy gone: connection refused).
func TestDataPathProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var hang atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(int(status.Load()))
		w.Write([]byte(`{"lastUpdated": "", "currentTime": ""}`))
	}))
	defer srv.Close()
	var changes atomic.Int32
	p, err := newDataPathProbe(srv.URL+"/healthz", slog.New(slog.DiscardHandler), func() { changes.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(what string, wantDown bool, wantChanges int32) {
		t.Helper()
		before := time.Now()
		p.check(ctx)
		if took := time.Since(before); took > dataPathProbeTimeout+200*time.Millisecond {
			t.Errorf("%s: a poll took %v", what, took)
		}
		st := p.state()
		if st.down != wantDown || changes.Load() != wantChanges {
			t.Fatalf("%s: down %v after %d changes, want down %v after %d", what, st.down, changes.Load(), wantDown, wantChanges)
		}
	}
	step("200", false, 0)
	status.Store(http.StatusServiceUnavailable)
	step("503 once", false, 0)
	step("503 twice", false, 0)
	status.Store(http.StatusOK)
	step("200 between: the count starts over", false, 0)
	status.Store(http.StatusServiceUnavailable)
	step("503 once more", false, 0)
	step("503 twice more", false, 0)
	step("503 three times in a row", true, 1)
	downSince := p.state().since
	step("503 again: still down, no change", true, 1)
	if !p.state().since.Equal(downSince) {
		t.Errorf("down since %v, then %v: want it kept", downSince, p.state().since)
	}
	status.Store(http.StatusOK)
	step("200: up at the first success", false, 2)

	hang.Store(true)
	step("no answer once", false, 2)
	step("no answer twice", false, 2)
	step("no answer three times", true, 3)
	hang.Store(false)
	step("answers again", false, 4)

	srv.Close()
	step("refused once", false, 4)
	step("refused twice", false, 4)
	step("refused three times", true, 5)
}

// TestDataPathProbeRun checks that run polls on its own, that a starting
// probe takes its first answer as the state (waitFirst returns then),
// that later it waits for dataPathDownAfter failures in a row, and that it
// stops with its context.
func TestDataPathProbeRun(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	changed := make(chan struct{}, 1)
	p, err := newDataPathProbe(srv.URL, slog.New(slog.DiscardHandler), func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { p.run(ctx); close(done) }()
	p.waitFirst(ctx, 5*time.Second)
	if took := time.Since(start); !p.state().down || took > dataPathProbeEvery {
		t.Fatalf("first verdict after %v: down %v; want down, at the first poll", took, p.state().down)
	}
	<-changed
	status.Store(http.StatusOK)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("not up after 5 s of 200s")
	}
	status.Store(http.StatusServiceUnavailable)
	start = time.Now()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("not down after 5 s of 503s")
	}
	// Three polls, one every dataPathProbeEvery.
	if took := time.Since(start); took < (dataPathDownAfter-1)*dataPathProbeEvery || took > 2*time.Second {
		t.Errorf("down after %v, want about %v", took, dataPathDownAfter*dataPathProbeEvery)
	}
	if !p.state().down {
		t.Error("changed, but not down")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("run did not stop with its context")
	}
}
