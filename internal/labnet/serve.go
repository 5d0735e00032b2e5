package labnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Server is a small backend the lab runs in-process, bound inside a host's
// namespace: the stand-in for a service's pods in the ipvs-strictarp mode.
// Close it, or let the lab's Close do so.
type Server struct {
	// Host is the host the server runs on.
	Host *Host
	// Addr is the address the server is bound to, with the real port if 0
	// was asked for.
	Addr netip.AddrPort

	close func() error
	once  sync.Once
	err   error
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.err = s.close()
		s.Host.lab.removeCloser(s)
	})
	return s.err
}

// ServeHTTP serves HTTP on addr:port inside the host's namespace and answers
// every request with the host's name and a newline, so a client can tell
// which node it reached. An invalid (zero) addr means every address; port 0
// picks a free port (see Server.Addr). The server stops when ctx is done or
// on Close.
func (h *Host) ServeHTTP(ctx context.Context, addr netip.Addr, port int) (*Server, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", bindAddr(addr, port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("serve HTTP: %w", err)
	}
	name := h.Name
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, name+"\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	stop := func() error {
		err := srv.Close()
		<-done
		return err
	}
	return h.startServer(ctx, ln.Addr(), stop, done)
}

// ServeUDPEcho runs a UDP echo service on addr:port inside the host's
// namespace, the target of failover probes (see ProbeUDP). Each datagram is
// answered, to its sender, with the host's name, a space, and the datagram.
// addr and port are as for ServeHTTP. Bind to the service IP itself so the
// answer comes from it.
func (h *Host) ServeUDPEcho(ctx context.Context, addr netip.Addr, port int) (*Server, error) {
	var conn *net.UDPConn
	err := h.Do(func() error {
		pc, err := net.ListenPacket("udp", bindAddr(addr, port))
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("serve UDP echo: %w", err)
	}
	prefix := []byte(h.Name + " ")
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // e.g. ICMP errors reported on the socket
			}
			conn.WriteToUDPAddrPort(append(prefix[:len(prefix):len(prefix)], buf[:n]...), from)
		}
	}()
	stop := func() error {
		err := conn.Close()
		<-done
		return err
	}
	return h.startServer(ctx, conn.LocalAddr(), stop, done)
}

// startServer registers a running server with the lab and ties it to ctx.
func (h *Host) startServer(ctx context.Context, local net.Addr, stop func() error, done <-chan struct{}) (*Server, error) {
	ap, err := netip.ParseAddrPort(local.String())
	if err != nil {
		stop()
		return nil, fmt.Errorf("%s: server address %s: %w", h.Name, local, err)
	}
	s := &Server{Host: h, Addr: ap, close: stop}
	if err := h.lab.addCloser(s, s.Close); err != nil {
		stop()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-done:
		}
	}()
	return s, nil
}

func bindAddr(addr netip.Addr, port int) string {
	if !addr.IsValid() {
		return fmt.Sprintf(":%d", port)
	}
	return netip.AddrPortFrom(addr, uint16(port)).String()
}

// DialContext connects from inside the host's namespace, as net.Dialer does.
// address must be an IP literal with a port: resolving a name would send DNS
// queries from outside the lab.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("%s: dial %s: only IP literals are allowed in the lab: %w", h.Name, address, err)
	}
	var conn net.Conn
	err := h.Do(func() (err error) {
		// With a literal there is a single address, so the dialer creates
		// the socket on this goroutine, inside the namespace.
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return conn, nil
}

// HTTPClient returns an HTTP client whose connections start inside the
// host's namespace, for requests such as a user on the LAN would make. It
// uses no proxy, allows only IP literals in URLs, and opens a new connection
// per request, so every request is routed and resolved afresh and no idle
// socket outlives the test.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       h.DialContext,
			DisableKeepAlives: true,
		},
	}
}
