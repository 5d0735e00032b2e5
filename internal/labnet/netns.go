package labnet

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// netnsDir is where iproute2 bind-mounts named network namespaces.
const netnsDir = "/run/netns"

// addNetns creates the named namespace with iproute2, which also sets up
// /run/netns the way `ip netns exec` expects (a shared mount point).
// Creating a namespace is the one thing the lab does from the root
// namespace; it touches no interface or route there.
func addNetns(name string) error {
	return ipCmd("netns", "add", name)
}

// delNetns deletes the named namespace; a namespace that is already gone is
// not an error. The kernel frees the namespace, and the interfaces in it
// (a veth's peer goes too), once no process or open socket holds it.
func delNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := ipCmd("netns", "delete", name)
	if _, serr := os.Stat(path); err != nil && errors.Is(serr, fs.ErrNotExist) {
		return nil // deleted meanwhile, by a concurrent Sweep
	}
	return err
}

// ipCmd runs iproute2's ip with args.
func ipCmd(args ...string) error {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %v: %w: %s", args, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// nsID identifies a network namespace by the device and inode of its nsfs
// file, which is the same through /run/netns/NAME and /proc/PID/ns/net.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// pidsInNamespaces returns the processes (other than this one) whose network
// namespace is one of ids, by walking /proc.
func pidsInNamespaces(ids map[nsID]bool) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, err := statNS(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil {
			continue // exited meanwhile, or a kernel thread
		}
		if ids[id] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
