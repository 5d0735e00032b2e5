package labnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultStopGrace is how long Stop waits after SIGTERM before SIGKILL.
const defaultStopGrace = 5 * time.Second

// Process is a long-running program the lab started inside a host's
// namespace. The lab owns it: Close stops it if the test did not. Its
// methods are safe for concurrent use.
type Process struct {
	// Host is where the process runs.
	Host *Host
	// Args is the command as given to Start, program first.
	Args []string
	// LogPath is the file that receives the process's stdout and stderr
	// (unless StartCmd was given its own writers). It lives in the lab's
	// directory.
	LogPath string

	cmd   *exec.Cmd
	grace time.Duration
	done  chan struct{}
	err   error // result of Wait; read only after done is closed
}

// PID is the process ID. The lab signals the process only through its
// pidfd-backed os.Process, never by name, so a recycled PID is never hit.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process exits and returns its exit error (nil for
// status 0; an *exec.ExitError otherwise, including after Stop).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop asks the process to exit with SIGTERM, waits up to five seconds (or
// Options.StopGrace), then sends SIGKILL, and returns once it has been
// reaped. It returns an error only if the process could not be signalled;
// how the process ended is Wait's business.
func (p *Process) Stop() error {
	return p.stop(syscall.SIGTERM, p.grace)
}

// Kill sends SIGKILL and returns once the process has been reaped: a crash,
// as seen by the rest of the lab.
func (p *Process) Kill() error {
	return p.stop(syscall.SIGKILL, 0)
}

// Pause stops the process (SIGSTOP) without ending it: a process that
// hangs, or a machine that freezes, as the rest of the lab sees it.
// Resume lets it go on.
func (p *Process) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal process %d: %w", p.PID(), err)
	}
	return nil
}

func (p *Process) stop(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal process %d: %w", p.PID(), err)
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // a paused process gets the signal too
	if sig != syscall.SIGKILL {
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill process %d: %w", p.PID(), err)
		}
	}
	<-p.done
	return nil
}

// Log returns what the process has written to its log file so far.
func (p *Process) Log() ([]byte, error) {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	return b, nil
}

// LogSize is how far the process's log has come: an offset for
// LogSince (0 if the log cannot be read).
func (p *Process) LogSize() int64 {
	st, err := os.Stat(p.LogPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// LogSince returns what the process has logged since offset off.
func (p *Process) LogSince(off int64) (string, error) {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return "", err
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// Start runs a program inside the host's namespace (through `ip netns exec`,
// which also gives it the namespace's view of /sys) and returns at once.
// stdout and stderr go to a log file in the lab's directory. When ctx is
// done the process is stopped as by Stop; the lab stops it on Close anyway.
//
// The process gets its own process group and SIGKILL as its parent-death
// signal, so it dies with the test binary even if the binary is killed
// outright. When the process itself exits, whatever is left of its process
// group is killed too: programs that daemonize into the same group do not
// survive their parent.
func (h *Host) Start(ctx context.Context, name string, args ...string) (*Process, error) {
	return h.StartCmd(ctx, exec.Command(name, args...))
}

// StartCmd is Start for a prepared command, so callers can set Env, Dir or
// their own Stdout/Stderr. It rewrites cmd.Path and cmd.Args to go through
// `ip netns exec` and sets cmd.SysProcAttr; cmd must not have been started.
func (h *Host) StartCmd(ctx context.Context, cmd *exec.Cmd) (*Process, error) {
	if cmd.Err != nil {
		return nil, fmt.Errorf("start in %s: %w", h.Name, cmd.Err)
	}
	l := h.lab
	p := &Process{
		Host:  h,
		Args:  append([]string{cmd.Path}, cmd.Args[1:]...),
		grace: l.opts.stopGrace(),
		done:  make(chan struct{}),
	}
	var logFile *os.File
	if cmd.Stdout == nil || cmd.Stderr == nil {
		p.LogPath = filepath.Join(l.dir, fmt.Sprintf("%s-%s-%d.log", h.Name, filepath.Base(cmd.Path), l.seq.Add(1)))
		f, err := os.Create(p.LogPath)
		if err != nil {
			return nil, fmt.Errorf("start in %s: %w", h.Name, err)
		}
		logFile = f
		if cmd.Stdout == nil {
			cmd.Stdout = f
		}
		if cmd.Stderr == nil {
			cmd.Stderr = f
		}
	}
	h.wrap(cmd)
	p.cmd = cmd

	if err := l.spawn.start(cmd); err != nil {
		closeIfNotNil(logFile)
		return nil, fmt.Errorf("start %s in %s: %w", p.Args[0], h.Name, err)
	}
	// Registered only once started, so Close never sees a half-made
	// Process; one that lost the race with Close is killed right here.
	registered := l.addProcess(p)
	go func() {
		p.err = cmd.Wait()
		// Take the rest of the group with it. The group ID cannot be
		// recycled while any member lives, and if none does the kill
		// finds nothing.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		closeIfNotNil(logFile)
		l.removeProcess(p)
		close(p.done)
	}()
	if registered != nil {
		p.Kill()
		return nil, registered
	}
	go func() {
		select {
		case <-ctx.Done():
			p.Stop()
		case <-p.done:
		}
	}()
	return p, nil
}

// Run runs a short command inside the host's namespace and returns its
// combined stdout and stderr. ctx bounds it: when ctx is done the command
// is killed.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("run in %s: %w", h.Name, cmd.Err)
	}
	var out bytes.Buffer // Stdout == Stderr: exec writes from one goroutine at a time
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // do not hang on pipes a grandchild holds
	h.wrap(cmd)
	if err := h.lab.spawn.start(cmd); err != nil {
		return nil, fmt.Errorf("run %s in %s: %w", name, h.Name, err)
	}
	err := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		return out.Bytes(), fmt.Errorf("run %s in %s: %w: %s", name, h.Name, err, out.Bytes())
	}
	return out.Bytes(), nil
}

// wrap makes cmd run inside h's namespace, in its own process group, and
// die with its parent.
func (h *Host) wrap(cmd *exec.Cmd) {
	cmd.Args = append([]string{"ip", "netns", "exec", h.NS, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = h.lab.ipPath
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

func closeIfNotNil(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// CPUStat is what a CPU cgroup saw of its processes while they were in
// it.
type CPUStat struct {
	// Usage is the CPU time they used.
	Usage time.Duration
	// Throttled is the number of CFS periods (100 ms) in which they hit
	// the limit and were stopped until the period's end: proof that the
	// limit bit.
	Throttled int
}

// LimitCPU confines the process to percent of one CPU (a CPU cgroup of its
// own: cpu.max with cgroup v2, the CFS quota with v1's cpu controller) and
// returns the function that lifts the limit and reports what the cgroup
// saw. It fails where neither is mounted.
func (p *Process) LimitCPU(percent int) (restore func() (CPUStat, error), err error) {
	const period = 100000 // µs
	quota := period * percent / 100
	type layout struct{ root, limitFile, limit string }
	var l layout
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		l = layout{"/sys/fs/cgroup", "cpu.max", fmt.Sprintf("%d %d", quota, period)}
	case fileExists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
		l = layout{"/sys/fs/cgroup/cpu", "cpu.cfs_quota_us", fmt.Sprint(quota)}
	default:
		return nil, errors.New("no CPU cgroup controller mounted (cgroup v2, or v1's cpu)")
	}
	before, err := p.cpuTime()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.root, fmt.Sprintf("ironlb-lab-%d", p.PID()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	undo := func() (CPUStat, error) {
		var st CPUStat
		if b, err := os.ReadFile(filepath.Join(dir, "cpu.stat")); err == nil {
			for line := range strings.Lines(string(b)) {
				k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
				n, _ := strconv.Atoi(v)
				if k == "nr_throttled" {
					st.Throttled = n
				}
			}
		}
		if used, err := p.cpuTime(); err == nil {
			st.Usage = used - before
		}
		err := os.WriteFile(filepath.Join(l.root, "cgroup.procs"), []byte(fmt.Sprint(p.PID())), 0)
		select {
		case <-p.done:
			err = nil // gone: nothing to move back
		default:
		}
		return st, errors.Join(err, os.Remove(dir))
	}
	if err := os.WriteFile(filepath.Join(dir, l.limitFile), []byte(l.limit), 0); err != nil {
		return nil, errors.Join(err, os.Remove(dir))
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(p.PID())), 0); err != nil {
		return nil, errors.Join(err, os.Remove(dir))
	}
	return undo, nil
}

// cpuTime is the CPU time the process has used, user and system, read
// from /proc (cgroup v1's cpu.stat has no usage).
func (p *Process) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100
	// on Linux).
	_, rest, ok := bytes.Cut(b, []byte(") "))
	f := strings.Fields(string(rest))
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", p.PID())
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
