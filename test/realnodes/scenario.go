package realnodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// Nodes is how many real nodes the scenario runs.
const Nodes = 3

// NodeMonitorGracePeriod is the cluster's: how long until a dead node's
// pods leave their Services' endpoints (Kubernetes' default is 50 s).
const NodeMonitorGracePeriod = 4 * time.Second

// StartCluster starts a fresh lab cluster of Nodes real nodes as a
// cluster is before ironlb is installed: without ironlb's CRDs and
// without the namespace the lab's control plane creates for ironlb. The
// caller closes the lab (which closes the cluster).
func StartCluster(ctx context.Context, l *labnet.Lab, log *slog.Logger) (*labkube.Cluster, error) {
	c, err := labkube.Start(ctx, l, labkube.Options{
		Logger:                 log,
		WithoutCRDs:            true,
		NodeMonitorGracePeriod: NodeMonitorGracePeriod,
	})
	if err != nil {
		return nil, err
	}
	nss := c.Kube.CoreV1().Namespaces()
	if err := nss.Delete(ctx, Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	return c, waitFor(ctx, "namespace "+Namespace+" is gone", time.Minute, func() error {
		_, err := nss.Get(ctx, Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// NewEnv is an Env for cluster c with scratch files in dir.
func NewEnv(c *labkube.Cluster, root, dir string, logf func(string, ...any)) (*Env, error) {
	if err := os.MkdirAll(filepath.Join(dir, "helm"), 0o755); err != nil {
		return nil, err
	}
	return &Env{C: c, Lab: c.Lab, Root: root, Dir: dir, Logf: logf}, nil
}

// Scenario runs the whole scenario by path: install old, configure the
// tutorial's pool, doctor, the tutorial's Services through real pods,
// memory, the upgrade to new while the client probes, the uninstall,
// install again, and the failover. Figures are named path_....
func (e *Env) Scenario(ctx context.Context, path Path, old, new Image) error {
	prefix := "realnodes_" + string(path)
	step := func(name string, f func() error) error {
		start := time.Now()
		e.Logf("--- %s", name)
		if err := f(); err != nil {
			return fmt.Errorf("%s: %s: %w", path, name, err)
		}
		e.Logf("--- %s done in %v", name, since(start))
		return nil
	}
	// A step whose name starts with "check " reports its error and lets
	// the scenario go on: what it checks leaves the cluster usable.
	steps := []struct {
		name string
		f    func() error
	}{
		{"import images", func() error { return e.ImportImages(ctx, old, new) }},
		{"install " + old.Version, func() error { return e.Install(ctx, path, old, prefix) }},
		{"configure", func() error { return e.Configure(ctx, path) }},
		{"check doctor", func() error { return e.Doctor(ctx, prefix) }},
		{"deploy workloads", func() error { return e.DeployWorkloads(ctx) }},
		{"expose", func() error { return e.ExposeAll(ctx, prefix) }},
		{"memory", func() error { return e.RecordMemory(ctx, prefix) }},
		{"check data path", func() error { return e.CheckDataPath(ctx, prefix) }},
		{"check privilege", func() error { return e.CheckPrivilege(ctx, prefix) }},
		{"check upgrade to " + new.Version, func() error { return e.Upgrade(ctx, path, new, prefix) }},
		{"uninstall", func() error { return e.Uninstall(ctx, path, new, prefix) }},
		{"install again", func() error { return e.Install(ctx, path, new, prefix+"_again") }},
		{"configure again", func() error { return e.Configure(ctx, path) }},
		{"expose again", func() error { return e.ExposeAll(ctx, prefix+"_again") }},
		{"failover", func() error { return e.Failover(ctx, prefix, 2*NodeMonitorGracePeriod) }},
	}
	var checks []error
	for _, s := range steps {
		if err := step(s.name, s.f); err != nil {
			if strings.HasPrefix(s.name, "check ") {
				e.Logf("FAILED: %v", err)
				checks = append(checks, err)
				continue
			}
			return errors.Join(append(checks, err)...)
		}
	}
	return errors.Join(checks...)
}

// Configure gives ironlb the tutorial's pool: the legacy ConfigMap with
// dist/ironlb.yaml, as the tutorial does; the same pool as CRDs with the
// chart, the README's other form, whose IPPool finalizer the uninstall
// must get past.
func (e *Env) Configure(ctx context.Context, path Path) error {
	if path == Helm {
		return e.ApplyCRDConfig(ctx)
	}
	return e.ApplyLegacyConfig(ctx)
}
