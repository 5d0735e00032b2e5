package labnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/internal/kube"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// APIServerPort is the kube-apiserver's secure port on the cp host.
	APIServerPort = 6443
	// SystemNamespace is the namespace ironlb is installed in; the control
	// plane creates it.
	SystemNamespace = kube.DefaultNamespace

	// etcd listens on the cp host's loopback only: nothing but the API
	// server, in the same namespace, talks to it.
	etcdClientURL = "http://127.0.0.1:2379"
	etcdPeerURL   = "http://127.0.0.1:2380"

	// adminUser is the kubeconfig's identity, a member of system:masters.
	adminUser = "lab-admin"
	// serviceCIDRs are the Service ClusterIP ranges, dual-stack. They are
	// only allocation ranges inside the API server: no interface holds
	// them and no packet is sent to them.
	serviceCIDRs = "10.0.0.0/16,fd00:10::/108"
	// controlPlaneStartTimeout bounds StartControlPlane when its context
	// has no earlier deadline.
	controlPlaneStartTimeout = 2 * time.Minute
)

// ControlPlaneOptions shapes a control plane. The zero value uses the
// binaries from `make tools` and installs ironlb's CRDs.
type ControlPlaneOptions struct {
	// BinDir holds the etcd and kube-apiserver binaries. Empty means
	// $KUBEBUILDER_ASSETS if set, else the repository's bin directory.
	BinDir string
	// CRDDir holds CustomResourceDefinition manifests (*.yaml, *.yml,
	// *.json) to install. Empty means the repository's config/crd/bases;
	// "-" installs none.
	CRDDir string
	// APIServerArgs adds or overrides kube-apiserver flags, keyed by flag
	// name without dashes ("feature-gates"). An empty value removes a
	// flag the lab would otherwise pass.
	APIServerArgs map[string]string
}

// binDir resolves BinDir.
func (o ControlPlaneOptions) binDir() (string, error) {
	if o.BinDir != "" {
		return o.BinDir, nil
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// crdDir resolves CRDDir; "" means install none.
func (o ControlPlaneOptions) crdDir() (string, error) {
	switch o.CRDDir {
	case "-":
		return "", nil
	case "":
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		return filepath.Join(root, "config", "crd", "bases"), nil
	default:
		return o.CRDDir, nil
	}
}

// ControlPlane is a real Kubernetes control plane, etcd and kube-apiserver,
// running inside the lab's cp host and serving https://198.51.100.2:6443.
// It has no controller-manager, scheduler or kubelet: the lab itself plays
// their part where tests need it (Node objects and their Ready condition).
//
// Start one with Lab.StartControlPlane; the lab stops it on Close. Its
// methods are safe for concurrent use.
type ControlPlane struct {
	// Kubeconfig is the path of an admin kubeconfig file for the API
	// server at its LAN address, for programs started inside any of the
	// lab's hosts (Host.Start, Host.Run). The test process itself cannot
	// use it: it runs outside the lab, where 198.51.100.2 does not exist.
	// Programs inherit the test's environment, proxy variables included;
	// the lab has no proxy, so clear them if the environment sets one.
	Kubeconfig string
	// Config reaches the API server as the same admin from the test
	// process: its connections are made inside the cp host (see
	// Host.DialContext). Copy it (rest.CopyConfig) before changing it.
	Config *rest.Config
	// URL is the API server's address, "https://198.51.100.2:6443". It
	// listens on that address only; APIServerArgs{"bind-address": "::"}
	// also serves cp's IPv6 address and loopback, which the serving
	// certificate covers too.
	URL string
	// Etcd and APIServer are the running processes; their logs are in
	// the lab's directory.
	Etcd, APIServer *Process

	lab     *Lab
	dataDir string // etcd's, removed on Stop
	kube    kubernetes.Interface

	// mu guards the process fields while StartControlPlane sets them, and
	// stopping, against a concurrent Stop (from the lab's Close).
	mu       sync.Mutex
	stopping bool
	stopOnce sync.Once
	stopErr  error
	stopped  chan struct{} // closed once Stop has finished
}

// StartControlPlane starts etcd and kube-apiserver in the cp host, waits
// until the API server is ready, installs the CRDs (waiting until they are
// served), creates the namespace SystemNamespace and one Node object per lab
// node, Ready, and writes an admin kubeconfig into the lab's directory.
// Start at most one control plane per lab: they would share cp's ports.
//
// The control plane runs until ctx is done, Stop, or the lab's Close. ctx
// also bounds the start, which otherwise gives up after two minutes; on
// failure everything started is stopped and the error carries the end of
// the failing process's log.
//
// The API server authorizes with Node and RBAC, so tests can check the
// permissions of other identities: impersonate them (rest.Config's
// Impersonate) or create a ServiceAccount and request a token for it (the
// TokenRequest API works; nothing creates ServiceAccounts or their
// secrets, so ServiceAccount admission is off). TaintNodesByCondition
// admission is off too, so Node objects carry no not-ready taint that no
// node lifecycle controller would ever lift.
func (l *Lab) StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (*ControlPlane, error) {
	start := time.Now()
	cp, err := l.startControlPlane(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("lab: start control plane: %w", err)
	}
	l.log.Info("control plane ready", "url", cp.URL, "took", since(start), "kubeconfig", cp.Kubeconfig)
	return cp, nil
}

func (l *Lab) startControlPlane(ctx context.Context, opts ControlPlaneOptions) (_ *ControlPlane, err error) {
	start := time.Now()
	bin, err := opts.binDir()
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: `make tools` builds the pinned control plane binaries: %w", b, bin, err)
		}
	}
	crdDir, err := opts.crdDir()
	if err != nil {
		return nil, err
	}

	host := l.cp
	dir := filepath.Join(l.dir, "controlplane")
	files, err := writeControlPlaneFiles(dir, host)
	if err != nil {
		return nil, err
	}
	apiURL := "https://" + netip.AddrPortFrom(host.IPv4, APIServerPort).String()
	kubeconfig := filepath.Join(l.dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, apiURL, files.caPEM, files.token); err != nil {
		return nil, err
	}
	cfg := &rest.Config{
		Host:            apiURL,
		BearerToken:     files.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: files.caPEM},
		// The lab's addresses exist only inside its namespaces, so every
		// connection starts in cp, and never through a proxy from the
		// environment.
		Dial:  host.DialContext,
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		// As envtest's: client-go's default of 5 requests a second would
		// throttle tests, and our own start, far more than the server.
		QPS:   1000,
		Burst: 2000,
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	cp := &ControlPlane{
		Kubeconfig: kubeconfig,
		Config:     cfg,
		URL:        apiURL,
		lab:        l,
		dataDir:    filepath.Join(dir, "etcd"),
		kube:       kube,
		stopped:    make(chan struct{}),
	}
	// Registered before anything starts, so that a Close racing with us
	// stops whatever did.
	if err := l.addCloser(cp, cp.Stop); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, cp.Stop())
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, controlPlaneStartTimeout)
	defer cancel()

	// The processes outlive this call, so they are not tied to ctx here:
	// once started, ctx ends them through Stop, API server first.
	etcd, err := cp.start(exec.Command(filepath.Join(bin, "etcd"), etcdArgs(cp.dataDir)...), &cp.Etcd)
	if err != nil {
		return nil, err
	}
	if err := waitEtcd(startCtx, host, etcd); err != nil {
		return nil, err
	}
	l.log.Debug("etcd healthy", "took", since(start))
	args := apiServerArgs(host, dir, files, opts.APIServerArgs)
	apiServer, err := cp.start(exec.Command(filepath.Join(bin, "kube-apiserver"), args...), &cp.APIServer)
	if err != nil {
		return nil, err
	}
	if err := cp.waitReady(startCtx, apiServer); err != nil {
		return nil, err
	}
	l.log.Debug("API server ready", "took", since(start))
	if crdDir != "" {
		if err := cp.installCRDs(startCtx, crdDir); err != nil {
			return nil, err
		}
		l.log.Debug("CRDs served", "took", since(start))
	}
	if err := cp.createObjects(startCtx); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			cp.Stop()
		case <-cp.stopped:
		}
	}()
	return cp, nil
}

// start starts cmd in the cp host and stores it in *field, unless Stop has
// begun (the lab's Close can call it at any time), in which case it stops
// the process again.
func (cp *ControlPlane) start(cmd *exec.Cmd, field **Process) (*Process, error) {
	p, err := cp.lab.cp.StartCmd(context.Background(), cmd)
	if err != nil {
		return nil, err
	}
	cp.mu.Lock()
	stopping := cp.stopping
	if !stopping {
		*field = p
	}
	cp.mu.Unlock()
	if stopping {
		p.Stop()
		os.RemoveAll(cp.dataDir)
		return nil, errors.New("control plane stopped while starting")
	}
	return p, nil
}

// Stop stops the API server, then etcd, and deletes etcd's data; certificates,
// kubeconfig and logs stay in the lab's directory. It is idempotent; the
// lab's Close calls it.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		cp.mu.Lock()
		cp.stopping = true
		// In this order, so the API server does not spend its shutdown
		// retrying a vanished etcd.
		procs := []*Process{cp.APIServer, cp.Etcd}
		cp.mu.Unlock()
		var errs []error
		for _, p := range procs {
			if p != nil {
				errs = append(errs, p.Stop())
			}
		}
		if err := os.RemoveAll(cp.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("remove etcd data: %w", err))
		}
		if err := errors.Join(errs...); err != nil {
			cp.stopErr = fmt.Errorf("stop control plane: %w", err)
		}
		close(cp.stopped)
		cp.lab.removeCloser(cp)
	})
	return cp.stopErr
}

// controlPlaneFiles are the credentials written for the API server.
type controlPlaneFiles struct {
	caPEM              []byte
	token              string
	certFile, keyFile  string
	saKeyFile          string
	tokenFile, certDir string
}

// writeControlPlaneFiles creates, in dir, a CA, the API server's serving
// certificate for every name and address a client may use, the key that
// signs ServiceAccount tokens, and a static token file with one admin.
func writeControlPlaneFiles(dir string, host *Host) (controlPlaneFiles, error) {
	f := controlPlaneFiles{
		certFile:  filepath.Join(dir, "apiserver.crt"),
		keyFile:   filepath.Join(dir, "apiserver.key"),
		saKeyFile: filepath.Join(dir, "sa.key"),
		tokenFile: filepath.Join(dir, "tokens.csv"),
		certDir:   filepath.Join(dir, "certs"),
	}
	ca, err := newCA("ironlb-lab-ca")
	if err != nil {
		return f, err
	}
	names := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}
	addrs := []netip.Addr{host.IPv4, host.IPv6, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	serving, err := newServingCert(ca, names, addrs)
	if err != nil {
		return f, err
	}
	sa, err := newCA("service-accounts") // only its key is used
	if err != nil {
		return f, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return f, fmt.Errorf("admin token: %w", err)
	}
	f.caPEM, f.token = ca.certPEM(), hex.EncodeToString(tok)

	// The API server presents its certificate followed by the CA's.
	if err := writeFile(f.certFile, append(serving.certPEM(), f.caPEM...), 0o644); err != nil {
		return f, fmt.Errorf("write certificate: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "ca.crt"), f.caPEM, 0o644); err != nil {
		return f, fmt.Errorf("write CA: %w", err)
	}
	if err := writeKey(f.keyFile, serving.key); err != nil {
		return f, fmt.Errorf("write serving key: %w", err)
	}
	if err := writeKey(f.saKeyFile, sa.key); err != nil {
		return f, fmt.Errorf("write service account key: %w", err)
	}
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,system:masters\n", f.token, adminUser, adminUser)
	if err := writeFile(f.tokenFile, []byte(line), 0o600); err != nil {
		return f, fmt.Errorf("write token file: %w", err)
	}
	return f, nil
}

// writeKubeconfig writes an admin kubeconfig for server.
func writeKubeconfig(path, server string, caPEM []byte, token string) error {
	const name = "ironlb-lab"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: adminUser}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// etcdArgs runs a single-member etcd on cp's loopback. fsync is off: the
// data dies with the lab anyway, and it makes writes much faster.
func etcdArgs(dataDir string) []string {
	return []string{
		"--name=cp",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + etcdClientURL,
		"--advertise-client-urls=" + etcdClientURL,
		"--listen-peer-urls=" + etcdPeerURL,
		"--initial-advertise-peer-urls=" + etcdPeerURL,
		"--initial-cluster=cp=" + etcdPeerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync=true",
	}
}

// apiServerArgs are the kube-apiserver flags: envtest's (controller-runtime's
// pkg/internal/testing/controlplane), made to serve on the LAN with static
// token authentication, Node and RBAC authorization and dual-stack Services,
// then overridden by extra.
func apiServerArgs(host *Host, dir string, f controlPlaneFiles, extra map[string]string) []string {
	addr := host.IPv4.String()
	flags := map[string]string{
		"etcd-servers":      etcdClientURL,
		"bind-address":      addr,
		"advertise-address": addr,
		"secure-port":       strconv.Itoa(APIServerPort),
		// Given tls-cert-file, the API server writes nothing here; set so
		// that it never falls back to /var/run/kubernetes.
		"cert-dir":             f.certDir,
		"tls-cert-file":        f.certFile,
		"tls-private-key-file": f.keyFile,
		"token-auth-file":      f.tokenFile,
		"authorization-mode":   "Node,RBAC",
		// The key file holds the private key; the API server derives the
		// public one to verify tokens.
		"service-account-issuer":           "https://kubernetes.default.svc",
		"service-account-key-file":         f.saKeyFile,
		"service-account-signing-key-file": f.saKeyFile,
		"service-cluster-ip-range":         serviceCIDRs,
		"allow-privileged":                 "true",
		// Both need controllers that do not run here: ServiceAccount
		// admission waits for the token controller's default
		// ServiceAccount, and TaintNodesByCondition's not-ready taint is
		// lifted by the node lifecycle controller.
		"disable-admission-plugins": "ServiceAccount,TaintNodesByCondition",
	}
	for k, v := range extra {
		k = strings.TrimLeft(k, "-")
		if v == "" {
			delete(flags, k)
		} else {
			flags[k] = v
		}
	}
	args := make([]string, 0, len(flags))
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		args = append(args, "--"+k+"="+flags[k])
	}
	return args
}

// since is the time since t, rounded for logs.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// pollInterval is how often the control plane's readiness is polled.
const pollInterval = 50 * time.Millisecond

// poll calls check until it returns nil, ctx is done, or p exits; the error
// then says why, with check's last error and the end of p's log.
func poll(ctx context.Context, what string, p *Process, check func(context.Context) error) error {
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before %s (%v); end of %s:\n%s", filepath.Base(p.Args[0]), what, p.Wait(), p.LogPath, logTail(p))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v); end of %s:\n%s", what, context.Cause(ctx), err, p.LogPath, logTail(p))
		case <-time.After(pollInterval):
		}
	}
}

// logTail is the end of a process's log, for error messages.
func logTail(p *Process) []byte {
	const n = 3 << 10
	b, _ := p.Log()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return b
}

// waitEtcd waits until etcd reports itself healthy.
func waitEtcd(ctx context.Context, host *Host, etcd *Process) error {
	c := host.HTTPClient()
	return poll(ctx, "etcd is healthy", etcd, func(ctx context.Context) error {
		return httpOK(ctx, c, etcdClientURL+"/health")
	})
}

// waitReady waits until the API server's /readyz passes: storage, RBAC
// bootstrap roles and its other post-start hooks are done.
func (cp *ControlPlane) waitReady(ctx context.Context, apiServer *Process) error {
	c, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		return fmt.Errorf("HTTP client: %w", err)
	}
	defer c.CloseIdleConnections()
	return poll(ctx, "the API server is ready", apiServer, func(ctx context.Context) error {
		return httpOK(ctx, c, cp.URL+"/readyz")
	})
}

// httpOK GETs u and returns an error unless the answer is 200.
func httpOK(ctx context.Context, c *http.Client, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// repoRoot finds the root of the ironlb repository (the directory whose
// go.mod declares github.com/ironlb/ironlb) from the working directory
// upwards; tests run in their package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == "github.com/ironlb/ironlb" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the ironlb repository root is not above the working directory; set ControlPlaneOptions.BinDir and CRDDir")
		}
		dir = parent
	}
}

// modulePath is the module path a go.mod declares, or "".
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
