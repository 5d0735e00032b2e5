package labkube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// PodNetwork holds every node's pod CIDR: node-N gets 10.244.N.0/24. The
// addresses exist only inside the lab's node namespaces and the pods'.
var PodNetwork = netip.MustParsePrefix("10.244.0.0/16")

// podCIDR is the pod CIDR of the i-th lab node (counting from 1).
func podCIDR(i int) netip.Prefix {
	a := PodNetwork.Addr().As4()
	a[2] = byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// cniNetwork is the CNI network's name on every node. It also names the
// entries libcni caches under /var/lib/cni (one per container ID).
const cniNetwork = "ironlb-lab"

// Node is a lab host made a real Kubernetes node: containerd, a kubelet
// and kube-proxy running in its network namespace, with pods on a bridge
// "cni0" inside it. The Cluster owns it and stops it on Close.
type Node struct {
	// Name is the host's name, which is also the Node object's.
	Name string
	// Host is the lab host the node runs on.
	Host *labnet.Host
	// PodCIDR is the node's pod network, routed to it from every other
	// real node.
	PodCIDR netip.Prefix
	// Socket is the node's containerd socket.
	Socket string

	cluster *Cluster
	dir     string // the node's state: containerd, kubelet, CNI; removed on stop
	bin     binaries
	cgroup  *cgroupRoot

	containerd, kubelet, kubeProxy *proc
	sandboxIDs                     []string // containers stop found left, for libcni's cache and shim sockets
	crashedNetns                   []string // pod network namespace files Crash found, for stop
}

// proc is a process the node started, with its log.
type proc struct {
	*labnet.Process
	log string
}

// Containerd is the node's containerd, nil before it started.
func (n *Node) Containerd() *labnet.Process { return n.containerd.process() }

// Kubelet is the node's kubelet, nil before it started.
func (n *Node) Kubelet() *labnet.Process { return n.kubelet.process() }

// KubeProxy is the node's kube-proxy, nil before it started (after the
// kubelet has registered the Node).
func (n *Node) KubeProxy() *labnet.Process { return n.kubeProxy.process() }

func (p *proc) process() *labnet.Process {
	if p == nil {
		return nil
	}
	return p.Process
}

// path is a path in the node's directory.
func (n *Node) path(rel string) string { return filepath.Join(n.dir, rel) }

// start starts a program in the node's network namespace with its log in
// the lab's directory. containerd gets a mount namespace of its own (see
// containerdWrapper) and the kubelet joins it; kube-proxy runs in the
// private one `ip netns exec` makes.
func (n *Node) start(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(n.cluster.Lab.Dir(), n.Name+"-"+name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	var cmd *exec.Cmd
	switch name {
	case "containerd":
		wrapper, err := n.containerdWrapper()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(wrapper[0], append(append(wrapper[1:], bin), args...)...)
	case "kubelet":
		mnt := fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.containerd.PID())
		cmd = exec.Command(n.bin.nsenter, append([]string{mnt, "--", bin}, args...)...)
	default:
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = labEnv()
	cmd.Stdout, cmd.Stderr = f, f
	// Not ctx: the process lives until the node stops, whatever ctx
	// bounded the start.
	p, err := n.Host.StartCmd(context.Background(), cmd)
	if err != nil {
		return nil, fmt.Errorf("node %s: start %s: %w", n.Name, name, err)
	}
	return &proc{Process: p, log: logPath}, nil
}

// kubeletSysctls are the kernel tunables the kubelet insists on at start
// (pkg/kubelet/cm's setupKernelTunables: it sets them, or with
// protectKernelDefaults refuses to run). None is namespaced, so setting
// them would change the whole machine; the node's mount namespace shows
// the kubelet files holding these values instead.
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// containerdWrapper is the command line that starts containerd (appended
// to it) in a mount namespace of the node's own: a copy of the test's
// (not of the private one `ip netns exec` makes, whose fresh /sys hides
// the cgroup hierarchies), with mounts propagating into it but not out.
// containerd, its shims and the kubelet share it, as they must (the
// kubelet mounts volumes that runc mounts into containers); their mounts
// (root filesystems, volumes, pod network namespaces) vanish with it when
// the last of them exits. In it, files with
// the values the kubelet wants are bound over kubeletSysctls.
func (n *Node) containerdWrapper() ([]string, error) {
	var script strings.Builder
	for _, k := range sortedKeys(kubeletSysctls) {
		f := n.path("sysctl/" + strings.ReplaceAll(k, "/", "."))
		if err := writeFile(f, kubeletSysctls[k]+"\n"); err != nil {
			return nil, err
		}
		fmt.Fprintf(&script, "mount --bind %s /proc/sys/%s && ", f, k)
	}
	script.WriteString(`exec "$@"`)
	return []string{
		n.bin.nsenter, fmt.Sprintf("--mount=/proc/%d/ns/mnt", os.Getpid()), "--",
		n.bin.unshare, "--mount", "--propagation", "slave", "--",
		"/bin/sh", "-c", script.String(), "containerd",
	}, nil
}

// logTail is the end of p's log, for error messages.
func logTail(p *proc) []byte {
	const max = 3 << 10
	b, _ := os.ReadFile(p.log)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return b
}

// startNode makes the i-th lab node real: cgroup root, CNI configuration
// and routes, containerd with the lab's images, and the kubelet.
// kube-proxy starts once the kubelet has registered the Node (see
// startKubeProxy). On error the caller stops the node.
func (n *Node) startNode(ctx context.Context, archives []string) error {
	var err error
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	if n.cgroup, err = createCgroupRoot("/ironlb-lab-" + n.cluster.Lab.Suffix() + "-" + n.Name); err != nil {
		return err
	}
	if err := n.setUpNetwork(ctx); err != nil {
		return err
	}
	if err := n.startContainerd(ctx); err != nil {
		return err
	}
	for _, a := range archives {
		if err := n.ImportImage(ctx, a); err != nil {
			return err
		}
	}
	return n.startKubelet()
}

// cniConfig is the node's CNI network: a bridge cni0 in the node's
// namespace, its gateway address the first of the pod CIDR, and
// host-local addresses kept in the node's directory.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, cniNetwork, n.PodCIDR.String(), n.path("cni/ipam"))
}

// ServiceNetwork is the lab API server's IPv4 service CIDR, where
// ClusterIPs (the kubernetes Service's 10.0.0.1 among them) come from.
var ServiceNetwork = netip.MustParsePrefix("10.0.0.0/16")

// setUpNetwork writes the CNI configuration, turns on forwarding and
// routes every other real node's pod CIDR to that node over the LAN, as
// does the cp host.
//
// It also routes ServiceNetwork onto the LAN interface: a real node's
// default route does that. Without a route the kernel refuses a
// connection from the node itself (a host-network pod: the speaker) to a
// ClusterIP before kube-proxy's rules could rewrite it; with it,
// kube-proxy's DNAT sends the packet to an endpoint, and nothing goes
// out to a ClusterIP (the lab has no route out).
func (n *Node) setUpNetwork(ctx context.Context) error {
	if err := writeFile(n.path("cni/net.d/10-ironlb-lab.conflist"), n.cniConfig()); err != nil {
		return err
	}
	if err := n.Host.SetSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if _, err := n.Host.Run(ctx, "ip", "route", "replace", ServiceNetwork.String(), "dev", n.Host.IfName); err != nil {
		return err
	}
	// The API server answers pods (the connections kube-proxy sends it
	// from the kubernetes Service keep the pod's address) through the node.
	if _, err := n.cluster.Lab.CP().Run(ctx, "ip", "route", "replace", n.PodCIDR.String(), "via", n.Host.IPv4.String()); err != nil {
		return err
	}
	for _, o := range n.cluster.Nodes {
		if o == n {
			continue
		}
		if _, err := n.Host.Run(ctx, "ip", "route", "replace", o.PodCIDR.String(), "via", o.Host.IPv4.String(), "dev", n.Host.IfName); err != nil {
			return err
		}
	}
	return nil
}

// stop stops the node's processes and removes everything it made: the
// containers left (kubelet first, so that it restarts none), their shims,
// every process in its cgroup root, pod network namespace files, the
// cgroups, the kubelet's log links, libcni's cache entries, shim sockets
// and the node's directory. Mounts go with the node's mount namespace once
// its last process is gone. It goes on after errors and returns them all.
func (n *Node) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, p := range []*proc{n.kubeProxy, n.kubelet} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	// Read before the namespace's last process exits.
	netnsFiles := append(n.podNetnsFiles(), n.crashedNetns...)
	if n.containerd != nil {
		select {
		case <-n.containerd.Done():
		default:
			n.sandboxIDs = n.removeContainers(ctx)
		}
		errs = append(errs, n.containerd.Stop())
	}
	for _, pid := range shimPIDs(n.Socket) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if n.cgroup != nil {
		n.cgroup.kill()
		deadline := time.Now().Add(10 * time.Second)
		for len(n.cgroup.pids()) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		var err error
		for range 50 { // a killed task leaves its cgroup a moment after it is gone from cgroup.procs
			if err = n.cgroup.remove(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		errs = append(errs, err)
	}
	for _, f := range netnsFiles {
		// Unmounted with the node's mount namespace; in ours it is an
		// empty file.
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	removeLinksInto("/var/log/containers", n.dir)
	removeCNICache(n.sandboxIDs)
	n.removeShimSockets(n.sandboxIDs)
	// Nothing under the directory is mounted in the test's namespace
	// unless something went wrong; never remove through a mount.
	if err := unmountUnder(n.dir); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, os.RemoveAll(n.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node %s: stop: %w", n.Name, err)
	}
	return nil
}

// podNetnsFiles lists the pod network namespaces pinned in the node's
// mount namespace (containerd 1.6 pins them as files in /run/netns, a path
// it does not let us change), as any of the node's live processes sees
// them. Stopping a sandbox through the CRI removes its file; these are
// what is left.
func (n *Node) podNetnsFiles() []string {
	pids := shimPIDs(n.Socket)
	for _, p := range []*proc{n.containerd, n.kubelet} {
		if p != nil {
			pids = append(pids, p.PID())
		}
	}
	seen := map[string]bool{}
	for _, pid := range pids {
		mounts, err := mountPoints(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			continue
		}
		for _, m := range mounts {
			if strings.HasPrefix(m, podNetnsDir+"/cni-") {
				seen[m] = true
			}
		}
	}
	return sortedKeys(seen)
}

// shimPIDs lists the containerd shims serving the containerd at socket:
// a shim outlives its containerd (it is its own process group) and holds a
// container's root filesystem mounted.
func shimPIDs(socket string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == socket {
			pids = append(pids, pid)
		}
	}
	return pids
}

// podNetnsDir is where containerd 1.6's CRI plugin pins pod network
// namespaces ("cni-<uuid>").
const podNetnsDir = "/run/netns"

// unmountUnder lazily unmounts every mount at or below dir in the test's
// mount namespace, deepest first. The node's own mounts live in its mount
// namespace; this is for anything that escaped it.
func unmountUnder(dir string) error {
	var errs []error
	for range 5 { // a mount may be stacked on another at one point
		mounts, err := mountPoints("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var under []string
		for _, m := range mounts {
			if m == dir || strings.HasPrefix(m, dir+"/") {
				under = append(under, m)
			}
		}
		if len(under) == 0 {
			return nil
		}
		slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) })
		errs = errs[:0]
		for _, m := range under {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("mounts remain under %s", dir))
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points in a mountinfo file.
func mountPoints(mountinfo string) ([]string, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil, err
	}
	var mounts []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 {
			mounts = append(mounts, unescapeMount(f[4]))
		}
	}
	return mounts, nil
}

// removeLinksInto removes the symbolic links in dir that point below
// target: the kubelet links every container's log from
// /var/log/containers, a path it does not let us change.
func removeLinksInto(dir, target string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if dest, err := os.Readlink(p); err == nil && strings.HasPrefix(dest, target+"/") {
			os.Remove(p)
		}
	}
}

// cniCacheDir is where libcni (in containerd) caches each attachment's
// result, as <network>-<container ID>-<interface>.
const cniCacheDir = "/var/lib/cni/results"

// removeCNICache removes libcni's cache entries of the node's sandboxes,
// which a CNI DEL would have removed.
func removeCNICache(ids []string) {
	for _, id := range ids {
		for _, network := range []string{cniNetwork, "cni-loopback"} { // containerd adds lo as "cni-loopback"
			matches, _ := filepath.Glob(filepath.Join(cniCacheDir, network+"-"+id+"-*"))
			for _, m := range matches {
				os.Remove(m)
			}
		}
	}
}

// Crash kills the node the way a power cut does: it cuts the node off the
// LAN (labnet Host.LinkDown), then kills its kube-proxy, kubelet and
// containerd, every containerd shim and every container process (SIGKILL,
// by PID), so nothing on the node says goodbye to anyone. The Node object
// stays, as it does when a machine dies: kube-controller-manager marks it
// NotReady once its Lease runs out (Options.NodeMonitorGracePeriod).
// What stop removes for a live node it still removes at the Cluster's
// Close; Crash notes the pod network namespaces and containers first, as
// stop cannot ask a dead containerd.
func (n *Node) Crash(ctx context.Context) error {
	if n.containerd != nil {
		// The containers' IDs name libcni's cache entries and the shim
		// sockets that stop removes; listing them changes nothing.
		if out, err := n.ctr(ctx, "containers", "list", "--quiet"); err == nil {
			n.sandboxIDs = strings.Fields(string(out))
		}
	}
	n.crashedNetns = n.podNetnsFiles()
	if err := n.Host.LinkDown(); err != nil {
		return fmt.Errorf("node %s: crash: %w", n.Name, err)
	}
	var errs []error
	for _, p := range []*proc{n.kubeProxy, n.kubelet, n.containerd} {
		if p != nil {
			errs = append(errs, p.Kill())
		}
	}
	for _, pid := range shimPIDs(n.Socket) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if n.cgroup != nil {
		n.cgroup.kill()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node %s: crash: %w", n.Name, err)
	}
	return nil
}
