// Package apiservertest gives a package's tests a real Kubernetes API
// server, and no network lab: etcd and kube-apiserver built from the pinned
// modules in hack/tools, started on loopback through controller-runtime's
// envtest with ironlb's CRDs installed. (internal/labnet runs a control
// plane inside a lab network instead, for tests that need nodes.) Start one per
// test package from TestMain (see Main): starting an API server takes seconds,
// so sharing it keeps the suite fast, and tests isolate themselves by
// namespace or object name.
package apiservertest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client with core and ironlb types registered.
	Client client.Client
	// Scheme knows core Kubernetes types; packages register their own on top.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for Config, for programs
	// started as separate processes.
	Kubeconfig string

	env *envtest.Environment
}

// Options tunes Start. The zero value is right for most tests.
type Options struct {
	// Scheme to build the client with; nil means client-go's scheme.
	Scheme *runtime.Scheme
	// APIServerArgs are extra kube-apiserver flags ("--max-requests-inflight=800").
	APIServerArgs map[string]string
}

// Start launches etcd and kube-apiserver and installs the CRDs from
// config/crd/bases. The binaries come from $KUBEBUILDER_ASSETS or, if unset,
// the repository's bin/ directory, where `make tools` puts them.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make tools` to build the pinned control plane binaries", b, assets)
		}
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		Scheme:                scheme,
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	for k, v := range opts.APIServerArgs {
		args.Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	e := &Env{Config: cfg, Scheme: scheme, env: env}
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		e.Stop()
		return nil, fmt.Errorf("api client: %w", err)
	}
	if e.Kubeconfig, err = writeKubeconfig(env); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// Stop shuts the control plane down and removes its files.
func (e *Env) Stop() error {
	if e.Kubeconfig != "" {
		os.Remove(e.Kubeconfig)
	}
	return e.env.Stop()
}

// Main starts a control plane, runs the package's tests with it in *env, and
// stops it, for use as:
//
//	var env *apiservertest.Env
//	func TestMain(m *testing.M) { apiservertest.Main(m, &env, apiservertest.Options{}) }
//
// A missing binary fails the package (it never skips) so CI cannot pass
// without having run against a real API server.
func Main(m *testing.M, env **Env, opts Options) {
	e, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiservertest:", err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "apiservertest: stop:", err)
	}
	os.Exit(code)
}

// RepoRoot finds the repository root (the directory holding go.mod of
// github.com/ironlb/ironlb) from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "tools", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found above the working directory")
		}
		dir = parent
	}
}

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "apiservertest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("add kubeconfig user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("render kubeconfig: %w", err)
	}
	f, err := os.CreateTemp("", "ironlb-kubeconfig-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	return f.Name(), nil
}
