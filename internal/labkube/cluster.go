package labkube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Options shapes a Cluster. The zero value makes every lab node real and
// uses the binaries of `make tools`.
type Options struct {
	// Nodes is how many lab nodes become real, node-1 up; 0 means all.
	// The lab's other Node objects are cordoned, so nothing is scheduled
	// where no kubelet runs.
	Nodes int
	// BinDir holds kubelet, kube-proxy, kube-controller-manager,
	// kube-scheduler (and the control plane's etcd and kube-apiserver).
	// Empty means the repository's bin directory.
	BinDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// WithoutCRDs starts the API server without ironlb's CRDs, as a
	// cluster is before ironlb is installed (labnet installs them by
	// default).
	WithoutCRDs bool
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its Lease before kube-controller-manager marks it NotReady and its
	// pods' endpoints not ready; 0 keeps Kubernetes' default (50 s). The
	// kubelets renew their Leases four times per period.
	NodeMonitorGracePeriod time.Duration
}

// binaries are the programs a Cluster runs, resolved once.
type binaries struct {
	kubelet, kubeProxy, controllerManager, scheduler string
	containerd, ctr, nsenter, unshare                string
}

func findBinaries(binDir string) (binaries, error) {
	if binDir == "" {
		root, err := repoRoot()
		if err != nil {
			return binaries{}, err
		}
		binDir = filepath.Join(root, "bin")
	}
	b := binaries{
		kubelet:           filepath.Join(binDir, "kubelet"),
		kubeProxy:         filepath.Join(binDir, "kube-proxy"),
		controllerManager: filepath.Join(binDir, "kube-controller-manager"),
		scheduler:         filepath.Join(binDir, "kube-scheduler"),
	}
	var missing []string
	for _, p := range []string{b.kubelet, b.kubeProxy, b.controllerManager, b.scheduler} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("%s not in %s: `make tools` builds them", strings.Join(missing, ", "), binDir)
	}
	for _, p := range []struct {
		field *string
		name  string
	}{{&b.containerd, "containerd"}, {&b.ctr, "ctr"}, {&b.nsenter, "nsenter"}, {&b.unshare, "unshare"}, {new(string), "runc"}, {new(string), "containerd-shim-runc-v2"}} {
		path, err := exec.LookPath(p.name)
		if err != nil {
			return b, fmt.Errorf("%s not found: install Debian's containerd, runc and containernetworking-plugins (see .ci/run)", p.name)
		}
		*p.field = path
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		return b, fmt.Errorf("CNI plugins not in %s: install Debian's containernetworking-plugins", cniBinDir)
	}
	return b, nil
}

// Missing says what keeps this machine from running real nodes (binaries,
// packages), or "" if nothing does. Tests skip with it.
func Missing(binDir string) string {
	if _, err := findBinaries(binDir); err != nil {
		return err.Error()
	}
	return ""
}

// Cluster is a Kubernetes cluster in a lab: the lab's control plane plus
// kube-controller-manager and kube-scheduler in the cp host, and real
// nodes. Start one with Start; Close it before the lab, or let the lab's
// Close do it.
type Cluster struct {
	Lab *labnet.Lab
	// CP is the control plane Start started.
	CP *labnet.ControlPlane
	// Kube is a client of the API server as the lab's admin.
	Kube kubernetes.Interface
	// Nodes are the real nodes, node-1 up.
	Nodes []*Node
	// ControllerManager and Scheduler run in the cp host.
	ControllerManager, Scheduler *labnet.Process

	log         *slog.Logger
	bin         binaries
	graceperiod time.Duration // Options.NodeMonitorGracePeriod
	inClusterCA string        // the CA pods trust (see apiservice.go)
	dir         string        // node state lives below it
	created     []string      // machine-wide directories that did not exist before Start
	machine     *os.File      // holds the machine-wide lock (lockMachine) until Close

	closeOnce sync.Once
	closeErr  error
}

// Start starts, in lab l, the control plane (with ServiceAccount admission
// on: kube-controller-manager creates the ServiceAccounts it needs),
// kube-controller-manager and
// kube-scheduler, then makes the lab's nodes real (Options.Nodes) in
// parallel and waits until each kubelet has registered its Node Ready. It
// builds the lab's images (PauseImage, HelloImage) and imports them into
// every node. On error it stops what it started (the control plane
// stops with the lab, which stays the caller's to close).
//
// Every component authenticates as the lab's admin (system:masters).
func Start(ctx context.Context, l *labnet.Lab, opts Options) (_ *Cluster, err error) {
	start := time.Now()
	bin, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := opts.Nodes
	if n == 0 {
		n = len(l.Nodes())
	}
	if n < 1 || n > len(l.Nodes()) {
		return nil, fmt.Errorf("labkube: %d real nodes, the lab has %d", n, len(l.Nodes()))
	}
	machine, err := lockMachine(ctx)
	if err != nil {
		return nil, fmt.Errorf("labkube: %w", err)
	}
	c := &Cluster{Lab: l, log: log.With("lab", l.Suffix()), bin: bin,
		dir: filepath.Join(stateRoot, l.Suffix()), graceperiod: opts.NodeMonitorGracePeriod, machine: machine}
	// Registered first, so that the lab's Close (on Ctrl-C, say) removes
	// whatever starts from here on.
	if err := l.OnClose(c, c.Close); err != nil {
		return nil, fmt.Errorf("labkube: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("labkube: %w", err), c.Close())
		}
	}()
	for _, d := range sharedDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			c.created = append(c.created, d)
		}
	}

	// The control plane runs until the lab's Close; ctx ending during the
	// start aborts it.
	cpCtx, abort := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, abort)
	cpOpts := labnet.ControlPlaneOptions{
		APIServerArgs: map[string]string{
			"disable-admission-plugins": "TaintNodesByCondition",
			// Node names resolve nowhere in the lab.
			"kubelet-preferred-address-types": "InternalIP",
		},
	}
	if opts.WithoutCRDs {
		cpOpts.CRDDir = "-"
	}
	inCluster, args, err := setUpInClusterAPI(ctx, l.CP(), filepath.Join(l.Dir(), "in-cluster-api"))
	if err != nil {
		return nil, err
	}
	maps.Copy(cpOpts.APIServerArgs, args)
	c.inClusterCA = inCluster.caFile
	cp, err := l.StartControlPlane(cpCtx, cpOpts)
	if !stop() {
		err = errors.Join(err, fmt.Errorf("start the control plane: %w", ctx.Err()))
	}
	if err != nil {
		return nil, err
	}
	c.CP = cp
	if c.Kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return nil, err
	}
	if err := c.startControllers(ctx); err != nil {
		return nil, err
	}
	c.log.Info("controllers started", "took", since(start))

	for i, h := range l.Nodes()[:n] {
		c.Nodes = append(c.Nodes, &Node{
			Name: h.Name, Host: h, PodCIDR: podCIDR(i + 1),
			Socket:  filepath.Join(c.dir, h.Name, "containerd.sock"),
			cluster: c, dir: filepath.Join(c.dir, h.Name), bin: bin,
		})
	}
	if err := c.cordonOthers(ctx, l.Nodes()[n:]); err != nil {
		return nil, err
	}
	archives, err := buildImages(ctx, filepath.Join(l.Dir(), "images"))
	if err != nil {
		return nil, err
	}
	c.log.Info("images built", "took", since(start))
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, node := range c.Nodes {
		wg.Go(func() { errs[i] = node.startNode(ctx, archives) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.log.Info("nodes started", "took", since(start))
	if err := c.waitNodesReady(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	c.log.Info("nodes ready", "nodes", len(c.Nodes), "took", since(start))
	kubeProxyConf, err := c.createKubeProxyConfigMap(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if err := n.startKubeProxy(kubeProxyConf); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// sharedDirs are the machine-wide directories that containerd, the
// kubelet and libcni create in fixed places, deepest first. What the nodes
// put in them is removed with each node; Close removes the directories
// themselves if Start found them missing and they are empty.
var sharedDirs = []string{
	"/run/containerd/s", "/run/containerd/fifo", "/run/containerd/runc", "/run/containerd",
	cniCacheDir, "/var/lib/cni", "/var/log/containers",
}

// stateRoot holds each lab's node state (containerd's images and
// snapshots, the kubelet's root), on a disk rather than /run's memory.
const stateRoot = "/var/lib/ironlb-lab"

// startControllers starts kube-controller-manager and kube-scheduler in the
// cp host and waits until both report healthy. Without leader election
// and with the admin's credentials for every controller, they are one
// instance each, as small as Kubernetes allows.
func (c *Cluster) startControllers(ctx context.Context) error {
	cpHost := c.Lab.CP()
	args := []string{
		"--kubeconfig=" + c.CP.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=10257",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--cluster-name=ironlb-lab",
		"--controllers=*",
		"--root-ca-file=" + c.inClusterCA,
		"--v=1",
	}
	if c.graceperiod > 0 {
		args = append(args, "--node-monitor-grace-period="+c.graceperiod.String(), "--node-monitor-period=1s")
	}
	kcm := exec.Command(c.bin.controllerManager, args...)
	kcm.Env = labEnv()
	p, err := cpHost.StartCmd(context.Background(), kcm)
	if err != nil {
		return err
	}
	c.ControllerManager = p
	sched := exec.Command(c.bin.scheduler,
		"--kubeconfig="+c.CP.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=10259",
		"--leader-elect=false",
		"--v=1",
	)
	sched.Env = labEnv()
	if c.Scheduler, err = cpHost.StartCmd(context.Background(), sched); err != nil {
		return err
	}
	// Both serve /healthz with a certificate of their own making.
	hc := &http.Client{Transport: &http.Transport{
		DialContext:     cpHost.DialContext,
		Proxy:           nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	for _, s := range []struct {
		p   *labnet.Process
		url string
	}{{c.ControllerManager, "https://127.0.0.1:10257/healthz"}, {c.Scheduler, "https://127.0.0.1:10259/healthz"}} {
		pr := &proc{Process: s.p, log: s.p.LogPath}
		err := waitFor(ctx, s.url+" answers", pr, time.Minute, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// cordonOthers marks the Node objects of lab nodes without a kubelet
// unschedulable.
func (c *Cluster) cordonOthers(ctx context.Context, hosts []*labnet.Host) error {
	for _, h := range hosts {
		patch := []byte(`{"spec":{"unschedulable":true}}`)
		if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, h.Name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("cordon %s: %w", h.Name, err)
		}
	}
	return nil
}

// waitNodesReady waits until every real node's kubelet has reported its
// Node Ready. The lab created the Node objects Ready already, so what
// counts is the kubelet's own report: its version in the node info.
func (c *Cluster) waitNodesReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var notReady []string
		var last error
		for _, n := range c.Nodes {
			node, err := c.Kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				last = err
				notReady = append(notReady, n.Name)
				continue
			}
			if node.Status.NodeInfo.KubeletVersion == "" || !nodeReady(node) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		for _, n := range c.Nodes {
			select {
			case <-n.kubelet.Done():
				return fmt.Errorf("kubelet of %s exited (%v); end of %s:\n%s", n.Name, n.kubelet.Wait(), n.kubelet.log, logTail(n.kubelet))
			default:
			}
		}
		select {
		case <-ctx.Done():
			var tails []string
			for _, n := range c.Nodes {
				if slices.Contains(notReady, n.Name) {
					tails = append(tails, fmt.Sprintf("end of %s:\n%s", n.kubelet.log, logTail(n.kubelet)))
				}
			}
			return fmt.Errorf("nodes %v not ready by their kubelets (last error: %v); %s", notReady, last, strings.Join(tails, "\n"))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// PodReady reports whether p's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Close stops the controllers (so nothing replaces what follows removes),
// deletes every pod and gives the kubelets a moment to tear them down
// through the CRI (which also removes their network namespaces and CNI
// state), then stops the nodes and removes what they made. The control
// plane stays: the lab's Close stops it. It is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.close()
		c.Lab.RemoveOnClose(c)
	})
	return c.closeErr
}

func (c *Cluster) close() error {
	var errs []error
	for _, p := range []*labnet.Process{c.ControllerManager, c.Scheduler} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	if c.Kube != nil && len(c.Nodes) > 0 {
		c.deletePods(30 * time.Second)
	}
	var wg sync.WaitGroup
	nerrs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Go(func() { nerrs[i] = n.stop() })
	}
	wg.Wait()
	errs = append(errs, nerrs...)
	if err := os.Remove(c.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	os.Remove(stateRoot) // only if no other lab uses it
	for _, d := range c.created {
		os.Remove(d) // only if empty: another lab may use it
	}
	if c.machine != nil {
		c.machine.Close() // the next lab with real nodes may start
	}
	return errors.Join(errs...)
}

// deletePods deletes every pod and waits, up to timeout and while any
// kubelet runs, until the kubelets have confirmed each one gone.
func (c *Cluster) deletePods(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nss, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	grace := int64(1)
	for _, ns := range nss.Items {
		c.Kube.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
	}
	for ctx.Err() == nil && c.kubeletsRunning() {
		pods, err := c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		// A crashed node's pods (Node.Crash) stay: no kubelet confirms
		// them, and stop removes what is left of them.
		left := slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return c.kubeletRunning(p.Spec.NodeName) })
		if !left {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// kubeletRunning reports whether the kubelet of the real node name runs.
func (c *Cluster) kubeletRunning(name string) bool {
	for _, n := range c.Nodes {
		if n.Name == name && n.kubelet != nil {
			select {
			case <-n.kubelet.Done():
				return false
			default:
				return true
			}
		}
	}
	return false
}

// kubeletsRunning reports whether any node's kubelet is still running,
// and so could still confirm a pod's deletion.
func (c *Cluster) kubeletsRunning() bool {
	for _, n := range c.Nodes {
		if n.kubelet == nil {
			continue
		}
		select {
		case <-n.kubelet.Done():
		default:
			return true
		}
	}
	return false
}

// since is the time since t, rounded for logs.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// repoRoot finds the ironlb repository's root from the working directory
// up: tests run in their package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/ironlb/ironlb\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the ironlb repository root is not above the working directory; set Options.BinDir")
		}
		dir = parent
	}
}

// SkipOrFail skips t for want of what a real node needs (Missing), except
// under CI (the environment variable CI set, as CI services and .ci/run's
// callers set it), where everything is installed on purpose and a skip
// would hide that the real-node tests did not run: there it fails.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: the real-node tests must run)", reason)
	}
	t.Skip(reason)
}
