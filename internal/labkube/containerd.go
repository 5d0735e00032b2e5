package labkube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// criNamespace is the containerd namespace the CRI plugin, and so the
// kubelet, uses; images must be imported into it.
const criNamespace = "k8s.io"

// cniBinDir is where Debian's containernetworking-plugins installs the
// plugins.
const cniBinDir = "/usr/lib/cni"

// containerdConfig is a node's containerd configuration (format version 2,
// containerd 1.6): its own root, state and socket, the CRI plugin with the
// lab's sandbox image, runc with cgroupfs, and the node's CNI directories.
//
// restrict_oom_score_adj keeps runc from lowering a container's OOM score
// below containerd's own: processes here lack CAP_SYS_RESOURCE, and
// without it runc fails every sandbox ("can't get final child's PID from
// pipe"). Plugins that would use fixed paths of the machine (opt, the
// snapshotters of other filesystems) are disabled, and runc keeps its
// state in the node's directory. What containerd 1.6 keeps in fixed places
// of the machine (shim sockets in /run/containerd/s, pinned pod network
// namespaces in /run/netns, libcni's cache in /var/lib/cni) Node.stop
// removes for the node.
func containerdConfig(n *Node) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, n.path("containerd/root"), n.path("containerd/state"), n.Socket, PauseImage, n.path("containerd/runc"), cniBinDir, n.path("cni/net.d"))
}

// startContainerd writes the node's containerd configuration and starts
// containerd in the node's network namespace, then waits for its socket to
// answer.
func (n *Node) startContainerd(ctx context.Context) error {
	cfg := n.path("containerd/config.toml")
	if err := writeFile(cfg, containerdConfig(n)); err != nil {
		return err
	}
	p, err := n.start("containerd", n.bin.containerd, "--config", cfg, "--log-level", "info")
	if err != nil {
		return err
	}
	n.containerd = p
	return waitFor(ctx, "containerd answers", p, 30*time.Second, func(ctx context.Context) error {
		_, err := n.ctr(ctx, "version")
		return err
	})
}

// ctr runs containerd's ctr against the node's containerd, in the CRI
// namespace. ctr talks to the socket only, so it runs in the test's own
// namespaces.
func (n *Node) ctr(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args = append([]string{"--address", n.Socket, "--namespace", criNamespace}, args...)
	cmd := exec.CommandContext(ctx, n.bin.ctr, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args[4:], " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// ImportImage imports an OCI (or docker save) archive into the node's
// containerd, where the kubelet finds it: images are never pulled.
func (n *Node) ImportImage(ctx context.Context, archive string) error {
	if _, err := n.ctr(ctx, "images", "import", archive); err != nil {
		return fmt.Errorf("node %s: import %s: %w", n.Name, filepath.Base(archive), err)
	}
	return nil
}

// removeContainers kills and deletes every task and container left in the
// node's containerd (the kubelet is stopped by then), so that their shims
// exit and containerd unmounts their root filesystems, and returns their
// IDs.
func (n *Node) removeContainers(ctx context.Context) []string {
	out, err := n.ctr(ctx, "containers", "list", "--quiet")
	if err != nil {
		return nil
	}
	ids := strings.Fields(string(out))
	for _, id := range ids {
		n.ctr(ctx, "tasks", "kill", "--signal", "SIGKILL", id)
		n.ctr(ctx, "tasks", "delete", "--force", id)
		n.ctr(ctx, "containers", "delete", id)
	}
	return ids
}

// writeFile writes s to path, creating its directory.
func writeFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// waitFor calls check until it returns nil, the timeout passes, ctx is
// done, or p exits; the error then says why, with the end of p's log.
func waitFor(ctx context.Context, what string, p *proc, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited before %s (%v); end of %s:\n%s", what, p.Wait(), p.log, logTail(p))
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w (last: %v); end of %s:\n%s", what, ctx.Err(), err, p.log, logTail(p))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// shimSocketDir is where containerd 1.6 puts every shim's socket, a path
// it does not let us change.
const shimSocketDir = "/run/containerd/s"

// removeShimSockets removes the sockets of the shims of containers ids
// (containerd's runtime/v2/shim.SocketAddress: the SHA-256 of the
// containerd address, namespace and ID). A shim removes its own when it
// exits normally; one killed leaves it.
func (n *Node) removeShimSockets(ids []string) {
	for _, id := range ids {
		sum := sha256.Sum256([]byte(filepath.Join(n.Socket, criNamespace, id)))
		os.Remove(filepath.Join(shimSocketDir, hex.EncodeToString(sum[:])))
	}
}
