package labkube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// machineLockPath is the file whose lock a Cluster holds from Start to
// Close. Real nodes share machine-wide paths that no namespace separates
// (the kubelet's device-plugin socket in /var/lib/kubelet, containerd's
// /run/containerd): two labs with real nodes at once, such as two test
// packages that `go test ./...` runs side by side, had one kubelet fail
// to bind the other's socket. Labs without real nodes do not take it.
const machineLockPath = "/run/ironlb-labkube.lock"

// lockMachine waits, until ctx ends, for the machine-wide lock of labs
// with real nodes, and returns the file that holds it: closing it
// releases the lock (also when the process dies).
func lockMachine(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(machineLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", machineLockPath, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", machineLockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for another lab with real nodes to end: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
