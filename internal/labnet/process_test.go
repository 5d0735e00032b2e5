package labnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcess(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1, StopGrace: 300 * time.Millisecond})
	ctx := t.Context()
	node := l.Node(1)

	out, err := node.Run(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "198.51.100.11/24") {
		t.Errorf("Run did not see node-1's address:\n%s", out)
	}
	if _, err := node.Run(ctx, "false"); err == nil {
		t.Error("Run of a failing command returned no error")
	}

	p, err := node.Start(ctx, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	// The process runs in node-1's namespace, as sleep: ip netns exec
	// enters the namespace and replaces itself, keeping the PID.
	want, err := statNS(node.NSPath())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		got, _ := statNS(fmt.Sprintf("/proc/%d/ns/net", p.PID()))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID()))
		return got == want && filepath.Base(exe) == "sleep"
	})
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("stopping sleep took %v; SIGTERM should end it at once", d)
	}
	var exitErr *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Wait after Stop = %v, want killed by SIGTERM", err)
	}

	// A process that ignores SIGTERM is killed after the grace period,
	// and its output is in its log.
	p, err = node.Start(ctx, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { b, _ := p.Log(); return strings.Contains(string(b), "ready") })
	start = time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("stopping a process that ignores SIGTERM took %v, want the 300ms grace", d)
	}
	if err := p.Wait(); !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait = %v, want killed by SIGKILL", err)
	}

	// Kill, and the end of a context, stop processes too.
	p, err = node.Start(ctx, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	p, err = node.Start(cctx, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(2 * time.Second):
		t.Error("process outlived its context")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
