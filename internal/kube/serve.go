package kube

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on l until ctx ends, then shuts it down, waiting up
// to grace for the requests in progress. It returns nil after a shutdown
// at ctx's end, and Serve's error if the server fails by itself, at once:
// a daemon that runs its servers beside its work learns of it and stops.
func Serve(ctx context.Context, l net.Listener, srv *http.Server, grace time.Duration) error {
	// The goroutine that shuts the server down ends with Serve: when ctx
	// ends, or when srv.Serve fails by itself.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() {
		<-sctx.Done()
		tctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		stopped <- srv.Shutdown(tctx)
	}()
	serr := srv.Serve(l)
	stop()
	err := <-stopped
	if !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
