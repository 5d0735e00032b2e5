package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// freeLocalAddr returns a loopback address with a port nobody listens on
// right now, for the controller's pprof server.
func freeLocalAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// heapProfiler fetches heap profiles from a process's net/http/pprof
// server while a burst runs: the profile at the highest RSS it saw
// (<prefix>-heap-peak.pb.gz, with the text form and runtime.MemStats in
// <prefix>-heap-peak.txt) and, on Stop, one after a forced GC
// (<prefix>-heap-end.pb.gz, .txt), which shows what stays live. A heap
// profile describes the heap at the last GC, so "at the peak" means at the
// GC cycle nearest the peak: close enough to see what holds the memory.
type heapProfiler struct {
	p      *proc
	addr   string // host:port of the pprof server
	prefix string // path prefix of the files written
	diag   io.Writer

	cancel context.CancelFunc
	wg     sync.WaitGroup
	peak   int64 // the RSS when the peak profile was taken; owned by run
}

// startHeapProfiler polls p's RSS every 250 ms and takes a profile each time
// it has grown by more than 2% over the last one taken. It stops on Stop.
func startHeapProfiler(p *proc, addr, prefix string, diag io.Writer) *heapProfiler {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heapProfiler{p: p, addr: addr, prefix: prefix, diag: diag, cancel: cancel}
	h.wg.Go(func() { h.run(ctx) })
	return h
}

func (h *heapProfiler) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rss, err := h.p.rss()
		if err != nil || rss <= h.peak+h.peak/50 {
			continue
		}
		if err := h.fetch(ctx, "peak", false); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(h.diag, "# heap profile: %v\n", err)
			}
			continue
		}
		h.peak = rss
	}
}

// Stop stops the polling and takes the end profile.
func (h *heapProfiler) Stop() {
	h.cancel()
	h.wg.Wait()
	if err := h.fetch(context.Background(), "end", true); err != nil {
		fmt.Fprintf(h.diag, "# heap profile: %v\n", err)
		return
	}
	fmt.Fprintf(h.diag, "# heap profiles: %s-heap-{peak,end}.{pb.gz,txt} (peak taken at RSS %.1f MiB)\n", h.prefix, mib(h.peak))
}

// fetch writes the binary and the text heap profile, named by which.
func (h *heapProfiler) fetch(ctx context.Context, which string, gc bool) error {
	q := ""
	if gc {
		q = "gc=1&"
	}
	for _, f := range []struct{ query, ext string }{{q, "pb.gz"}, {"debug=1", "txt"}} {
		if err := h.get(ctx, "/debug/pprof/heap?"+f.query, fmt.Sprintf("%s-heap-%s.%s", h.prefix, which, f.ext)); err != nil {
			return err
		}
	}
	return nil
}

func (h *heapProfiler) get(ctx context.Context, path, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	// Write to a temporary file and rename, so a fetch cut short leaves the
	// previous profile whole.
	tmp, err := os.CreateTemp(filepath.Dir(file), ".heap-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// rss is the process's current resident set size in bytes (VmRSS).
func (p *proc) rss() (int64, error) {
	return p.statusKB("VmRSS:")
}

// statusKB reads a "kB" field of /proc/PID/status, in bytes.
func (p *proc) statusKB(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", p.opts.Name, field, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %s: %w", p.opts.Name, field, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s in /proc status", p.opts.Name, field)
}
