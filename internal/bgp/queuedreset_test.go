package bgp

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

func TestErrorTapResets(t *testing.T) {
	q := newResetQueue()
	var out strings.Builder
	log := slog.New(&errorTap{next: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}), errs: &lastErrors{}, resets: q})
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")
	log.Info("Send operation notification", slog.String("Topic", "Operation"), slog.String("Key", b.String()), slog.String("Op", "Neighbor reset"))
	log.Info("Send operation notification", slog.String("Topic", "Operation"), slog.String("Key", a.String()), slog.String("Op", "Neighbor reset"))
	log.Info("Send operation notification", slog.String("Topic", "Operation"), slog.String("Key", "198.51.100.2"), slog.String("Op", "Neighbor shutdown"))
	log.With(slog.String("Topic", "Peer"), slog.String("Key", "198.51.100.3")).Info("Send operation notification", slog.String("Op", "Neighbor reset"))
	select {
	case <-q.wake:
	default:
		t.Error("no wake-up")
	}
	if diff := cmp.Diff([]netip.Addr{a, b}, q.take(), cmpAddrs); diff != "" {
		t.Errorf("queued resets (-want +got):\n%s", diff)
	}
	if got := q.take(); len(got) != 0 {
		t.Errorf("taken twice: %v", got)
	}
	if out.Len() > 0 {
		t.Errorf("an info record reached a warn handler: %s", out.String())
	}
}

// TestGoBGPLogsHardReset pins the GoBGP log record that resetQueue relies
// on: a hard ResetPeer, as GoBGP's BFD makes, is seen; a soft one, as apply
// makes, is not. The peer is passive and GoBGP does not listen, so nothing
// goes on the network.
func TestGoBGPLogsHardReset(t *testing.T) {
	q := newResetQueue()
	srv := server.NewBgpServer(server.LoggerOption(slog.New(&errorTap{next: slog.DiscardHandler, errs: &lastErrors{}, resets: q}), nil))
	go srv.Serve()
	defer srv.Stop()
	ctx := t.Context()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: defaultASN, RouterId: "198.51.100.11", ListenPort: -1}}); err != nil {
		t.Fatal(err)
	}
	p := Peer{Name: "tor", Address: netip.MustParseAddr("198.51.100.1"), MyASN: nodeASN, PeerASN: routerASN}
	ap := apiPeer(p, Options{ConnectRetry: defaultConnectRetry})
	ap.Transport.PassiveMode = true
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
		t.Fatal(err)
	}
	srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: p.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT})
	if got := q.take(); len(got) != 0 {
		t.Errorf("a soft reset queued %v", got)
	}
	if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: p.Address.String(), Communication: "BFD is down"}); err != nil {
		t.Fatal(err)
	}
	// ResetPeer returns after GoBGP's server goroutine ran it, logging
	// included.
	if diff := cmp.Diff([]netip.Addr{p.Address}, q.take(), cmpAddrs); diff != "" {
		t.Errorf("queued resets after a hard reset (-want +got):\n%s", diff)
	}
}
