package versions

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
)

// cluster is a running etcd and kube-apiserver of one version, with no
// CRDs: the test installs ironlb as a user does.
type cluster struct {
	cfg        *rest.Config
	client     client.Client
	kubeconfig string
	version    *version.Info
	bin        string // the repository's bin/, for kubectl and helm
}

// binDir is $KUBEBUILDER_ASSETS or else the repository's bin/, where
// `make tools` and the build in hack/oldkube put their programs.
func binDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	root, err := apiservertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "bin")
}

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// startCluster starts bin/etcd and the kube-apiserver binary apiserver
// on loopback through envtest, with envtest's flags, and stops them when
// the test ends.
func startCluster(t *testing.T, apiserver string) *cluster {
	t.Helper()
	bin := binDir(t)
	for _, p := range []string{filepath.Join(bin, "etcd"), apiserver, filepath.Join(bin, "kubectl"), filepath.Join(bin, "helm")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s not found: run `make tools`", p)
		}
	}
	s := scheme(t)
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		Scheme:                s,
		ControlPlane:          envtest.ControlPlane{APIServer: &envtest.APIServer{Path: apiserver}},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start %s: %v", apiserver, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop control plane: %v", err)
		}
	})
	c := &cluster{cfg: cfg, bin: bin}
	if c.client, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.version, err = dc.ServerVersion(); err != nil {
		t.Fatalf("server version: %v", err)
	}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "versions-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs bin/<prog> (kubectl or helm) in the repository root with stdin,
// and returns its stdout and stderr; err is non-nil when it exits non-zero.
func (c *cluster) run(t *testing.T, stdin []byte, prog string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if prog == "kubectl" {
		args = append([]string{"--kubeconfig", c.kubeconfig}, args...)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	root, _ := apiservertest.RepoRoot()
	cmd.Dir = root
	if prog == "helm" {
		home := t.TempDir()
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// kubectl runs bin/kubectl as the cluster's admin and fails the test when
// it fails.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, stdin, "kubectl", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out + errOut
}

// eventually polls cond every 100 ms until it returns "" or timeout
// passes, then fails the test with cond's last answer.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		last := cond()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not after %v: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
