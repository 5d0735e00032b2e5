package speaker

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/kube"
)

// healthHandler serves the kubelet's probes: /healthz answers ok while the
// process serves at all, /readyz once the speaker answers for what it owns
// (readyErr). Subpaths (/healthz/ping, /readyz/synced) answer the same,
// as controller-runtime's probe server, which the speaker used before,
// did.
func (s *Speaker) healthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch p := r.URL.Path; {
		case p == "/healthz" || strings.HasPrefix(p, "/healthz/"):
		case p == "/readyz" || strings.HasPrefix(p, "/readyz/"):
			err = s.readyErr()
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
}

// pprofHandler serves net/http/pprof under /debug/pprof/.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveHTTP serves h over plain HTTP at addr until ctx ends; "" or "0"
// serves nothing. A listen address that cannot be had, or a server that
// fails, is an error, which stops the speaker (Run), so that the kubelet
// shows it.
func serveHTTP(ctx context.Context, addr string, h http.Handler) error {
	if addr == "" || addr == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	err = kube.Serve(ctx, ln, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, 5*time.Second)
	if ctx.Err() != nil {
		// A probe or a profile still running at the stop is not a
		// failure of the speaker.
		return nil
	}
	return err
}
