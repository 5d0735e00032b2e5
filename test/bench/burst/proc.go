package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux fixes it
// at 100 for user space on every architecture Kubernetes runs on.
const userHZ = 100

// procOptions say how to start a measured subprocess.
type procOptions struct {
	Name string   // for messages: "nologic", "ironlb"
	Path string   // executable
	Args []string // arguments after the executable
	// Log is the file the process's stderr is copied to.
	Log string
	// ReadyMarker is a substring of the stderr line that says the process is
	// ready to allocate.
	ReadyMarker string
	// PprofAddr is where the process serves net/http/pprof; "" for nowhere.
	PprofAddr string
}

// proc is a running subprocess whose stderr is copied to a log file and
// scanned for its ready line. It is stopped by PID, with SIGTERM and then
// SIGKILL; Stop is safe to call more than once and from a defer.
type proc struct {
	opts    procOptions
	cmd     *exec.Cmd
	started time.Time // just before exec

	ready   chan struct{} // closed when the ready line has been seen
	exited  chan struct{} // closed when the process has exited and been reaped
	waitErr error         // set before exited is closed

	mu        sync.Mutex
	readyAt   time.Time
	readyLine string
	warnings  int      // log lines at level WARN or ERROR
	firstBad  []string // the first few of them
	tail      []string // the last lines, for error messages
}

// startProc execs the process. The child gets its own process group, so a
// Ctrl-C on the terminal reaches only the benchmark, which then stops the
// child itself, and it is killed should the benchmark die without doing so.
func startProc(opts procOptions) (*proc, error) {
	logf, err := os.Create(opts.Log)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", opts.Name, err)
	}
	p := &proc{opts: opts, ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(opts.Path, opts.Args...)
	p.cmd.Stdout = logf
	p.cmd.Stderr = &lineWriter{file: logf, line: p.scan}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	go func() {
		err := p.cmd.Wait() // also waits until stderr is copied
		logf.Close()
		p.waitErr = err
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) scan(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readyAt.IsZero() && strings.Contains(line, p.opts.ReadyMarker) {
		p.readyAt, p.readyLine = time.Now(), line
		close(p.ready)
	}
	if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
		p.warnings++
		if len(p.firstBad) < 5 {
			p.firstBad = append(p.firstBad, line)
		}
	}
	p.tail = append(p.tail, line)
	if len(p.tail) > 20 {
		p.tail = p.tail[1:]
	}
}

// waitReady waits for the ready line, the process's exit or the timeout.
func (p *proc) waitReady(done <-chan struct{}, timeout time.Duration) error {
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		return fmt.Errorf("%s exited before it was ready (%v); last log lines:\n%s", p.opts.Name, p.waitErr, p.logTail())
	case <-time.After(timeout):
		return fmt.Errorf("%s not ready after %v; last log lines:\n%s", p.opts.Name, timeout, p.logTail())
	case <-done:
		return errors.New("interrupted")
	}
}

// readyAfter is the time from exec to the ready line, and that line.
func (p *proc) readyAfter() (time.Duration, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyAt.Sub(p.started), p.readyLine
}

// logProblems is how many WARN and ERROR lines the process logged, and the
// first few of them.
func (p *proc) logProblems() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.warnings, append([]string(nil), p.firstBad...)
}

func (p *proc) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// cpu is the user plus system CPU time the process has used so far.
func (p *proc) cpu() (time.Duration, error) {
	d, err := cpuOf(strconv.Itoa(p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s cpu: %w", p.opts.Name, err)
	}
	return d, nil
}

// cpuOf reads the user plus system CPU time of a process ("self" or a PID)
// from /proc/PID/stat (10 ms resolution).
func cpuOf(pid string) (time.Duration, error) {
	_, f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procStat reads /proc/PID/stat: the command name and the fields after it,
// numbered from 0 for field 3 (state), so ppid is f[1], utime f[11] and
// stime f[12]. The name in parentheses may hold spaces.
func procStat(pid string) (comm string, f []string, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", nil, err
	}
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return "", nil, fmt.Errorf("unexpected /proc/%s/stat %q", pid, b)
	}
	f = strings.Fields(string(b[j+1:]))
	if len(f) < 13 {
		return "", nil, fmt.Errorf("unexpected /proc/%s/stat %q", pid, b)
	}
	return string(b[i+1 : j]), f, nil
}

// childrenCPU is the CPU time used so far by each child process of this one
// named in names, by name: the control plane envtest started.
func childrenCPU(names ...string) map[string]time.Duration {
	out := map[string]time.Duration{}
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, f, err := procStat(e.Name())
		if err != nil || f[1] != self || !slices.Contains(names, comm) {
			continue
		}
		if d, err := cpuOf(e.Name()); err == nil {
			out[comm] += d
		}
	}
	return out
}

// peakRSS is the process's peak resident set size in bytes (VmHWM).
func (p *proc) peakRSS() (int64, error) {
	return p.statusKB("VmHWM:")
}

// quiesce waits until the process has used less than 20 ms of CPU in the
// last second (at most max), so a measurement includes the work that
// trails a burst: queued events, deferred status writes.
func (p *proc) quiesce(done <-chan struct{}, max time.Duration) error {
	deadline := time.Now().Add(max)
	last, err := p.cpu()
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("interrupted")
		case <-p.exited:
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.opts.Name, p.waitErr, p.logTail())
		case <-time.After(time.Second):
		}
		now, err := p.cpu()
		if err != nil {
			return err
		}
		if now-last < 20*time.Millisecond {
			return nil
		}
		last = now
	}
	return nil
}

// stop sends SIGTERM to the process, waits up to grace for it to exit, then
// kills it. It returns the process's exit error, if it exited by itself
// with one.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(grace):
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", p.opts.Name, grace)
}

// lineWriter copies a process's output to a file and hands each complete
// line to line. exec.Cmd calls Write from one goroutine.
type lineWriter struct {
	file *os.File
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.file.Write(b)
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}
