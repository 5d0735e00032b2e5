package labnet

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlane(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 2})
	ctx := t.Context()

	start := time.Now()
	cp, err := l.StartControlPlane(ctx, ControlPlaneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane ready in %v", time.Since(start).Round(time.Millisecond))
	kube, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Nodes", func(t *testing.T) {
		list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		type node struct {
			Name, Hostname string
			Addresses      []string
			Ready          bool
		}
		var got []node
		for _, n := range list.Items {
			got = append(got, node{n.Name, n.Labels[corev1.LabelHostname], internalIPs(n), nodeReady(n)})
		}
		want := []node{
			{"node-1", "node-1", []string{"198.51.100.11", "2001:db8:1::11"}, true},
			{"node-2", "node-2", []string{"198.51.100.12", "2001:db8:1::12"}, true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("nodes (-want +got):\n%s", diff)
		}
		if _, err := kube.CoreV1().Namespaces().Get(ctx, SystemNamespace, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", SystemNamespace, err)
		}
	})

	t.Run("CRDs", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(cp.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"ippools.ironlb.io", "l2announcements.ironlb.io", "bgppeers.ironlb.io", "bgpannouncements.ironlb.io", "bfdprofiles.ironlb.io"} {
			crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Errorf("CRD %s: %v", name, err)
				continue
			}
			if !crdEstablished(crd) {
				t.Errorf("CRD %s is not established", name)
			}
		}
		// Served, not only stored: an empty list, not a 404.
		pools := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "ippools"}
		if _, err := dyn.Resource(pools).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list IPPools: %v", err)
		}
	})

	// A program inside a node's namespace reaches the API server at its
	// LAN address, with the kubeconfig.
	bin, err := ControlPlaneOptions{}.binDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(t *testing.T, h *Host, args ...string) string {
		t.Helper()
		out, err := h.Run(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	t.Run("Kubectl", func(t *testing.T) {
		for _, h := range []*Host{l.Node(1), l.Client()} {
			out := kubectl(t, h, "get", "nodes", "--no-headers", "-o", "custom-columns=NAME:.metadata.name")
			if got := strings.Fields(out); !slices.Equal(got, []string{"node-1", "node-2"}) {
				t.Errorf("kubectl get nodes in %s: %q, want node-1 and node-2", h, got)
			}
		}
		// RBAC is on: an identity without bindings is refused.
		// (can-i exits with status 1 when the answer is no.)
		out, _ := l.Node(1).Run(ctx, filepath.Join(bin, "kubectl"), "--kubeconfig", cp.Kubeconfig, "auth", "can-i", "list", "pods", "--namespace", SystemNamespace, "--as", "system:serviceaccount:default:nobody")
		if strings.TrimSpace(string(out)) != "no" {
			t.Errorf("kubectl auth can-i for a service account without bindings: %q, want no", out)
		}
	})

	t.Run("SetNodeReady", func(t *testing.T) {
		if err := cp.SetNodeReady(ctx, "node-2", false); err != nil {
			t.Fatal(err)
		}
		n, err := kube.CoreV1().Nodes().Get(ctx, "node-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if nodeReady(*n) {
			t.Errorf("node-2 still Ready after SetNodeReady(false): %+v", n.Status.Conditions)
		}
		out := kubectl(t, l.Node(1), "get", "node", "node-2", "--no-headers")
		if f := strings.Fields(out); len(f) < 2 || f[1] != "NotReady" {
			t.Errorf("kubectl get node node-2: %q, want NotReady", out)
		}
		if err := cp.SetNodeReady(ctx, "node-2", true); err != nil {
			t.Fatal(err)
		}
		if n, err = kube.CoreV1().Nodes().Get(ctx, "node-2", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if !nodeReady(*n) {
			t.Errorf("node-2 not Ready after SetNodeReady(true): %+v", n.Status.Conditions)
		}
		if err := cp.SetNodeReady(ctx, "node-9", true); err == nil {
			t.Error("SetNodeReady of a node that does not exist succeeded")
		}
	})

	// Close stops both processes and deletes etcd's data.
	procs := []*Process{cp.APIServer, cp.Etcd}
	closeStart := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab with control plane closed in %v", time.Since(closeStart).Round(time.Millisecond))
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			t.Errorf("%s still running after Close", p.Args[0])
		}
		if alive(p.PID()) {
			t.Errorf("process %d (%s) survived Close", p.PID(), p.Args[0])
		}
	}
	assertGone(t, l.Suffix())
}

// TestControlPlaneStopsWithContext checks that the control plane stops when
// its context ends, deleting etcd's data and leaving the lab usable.
func TestControlPlaneStopsWithContext(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cp, err := l.StartControlPlane(ctx, ControlPlaneOptions{CRDDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for _, p := range []*Process{cp.APIServer, cp.Etcd} {
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s still running 30s after its context ended", p.Args[0])
		}
	}
	if err := cp.Stop(); err != nil {
		t.Errorf("Stop after the context ended: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "controlplane", "etcd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etcd's data survived Stop (stat: %v)", err)
	}
	if _, err := os.Stat(cp.Kubeconfig); err != nil {
		t.Errorf("kubeconfig: %v", err)
	}
	if _, err := l.Node(1).Run(t.Context(), "true"); err != nil {
		t.Errorf("lab unusable after the control plane stopped: %v", err)
	}
}

// TestControlPlaneStartFailure checks that a control plane that cannot
// start says why and leaves nothing running.
func TestControlPlaneStartFailure(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1})
	before := l.procCount()
	_, err := l.StartControlPlane(t.Context(), ControlPlaneOptions{APIServerArgs: map[string]string{"no-such-flag": "1"}})
	if err == nil {
		t.Fatal("StartControlPlane with an unknown kube-apiserver flag succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "kube-apiserver exited") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error does not say that kube-apiserver exited, nor show its log: %v", err)
	}
	if n := l.procCount(); n != before {
		t.Errorf("%d processes running after the failed start, want %d", n, before)
	}

	if _, err := l.StartControlPlane(t.Context(), ControlPlaneOptions{BinDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("StartControlPlane without binaries: %v, want an error pointing to make tools", err)
	}
}

func TestAPIServerArgs(t *testing.T) {
	host := &Host{IPv4: netip.MustParseAddr("198.51.100.2")}
	f := controlPlaneFiles{tokenFile: "/d/tokens.csv"}
	args := apiServerArgs(host, "/d", f, map[string]string{
		"--secure-port":    "7443", // dashes are optional
		"feature-gates":    "Foo=true",
		"token-auth-file":  "",
		"nonexistent-flag": "",
	})
	for _, want := range []string{"--secure-port=7443", "--feature-gates=Foo=true", "--bind-address=198.51.100.2", "--authorization-mode=Node,RBAC"} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %q", want, args)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--token-auth-file") || strings.HasPrefix(a, "--secure-port=6443") || strings.HasPrefix(a, "--nonexistent") {
			t.Errorf("args have %s: %q", a, args)
		}
	}
	if !slices.IsSorted(args) {
		t.Errorf("args are not sorted, so not reproducible: %q", args)
	}
}

func TestReadCRDs(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	crds, err := readCRDs(filepath.Join(root, "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crds {
		names = append(names, c.GetName())
	}
	if !slices.Contains(names, "ippools.ironlb.io") {
		t.Errorf("CRDs %q lack ippools.ironlb.io", names)
	}

	dir := t.TempDir()
	multi := "---\n" + "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n" +
		"---\n---\n" + "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: b.example.com\n"
	if err := os.WriteFile(filepath.Join(dir, "two.yaml"), []byte(multi), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	crds, err = readCRDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 2 || crds[0].GetName() != "a.example.com" || crds[1].GetName() != "b.example.com" {
		t.Errorf("read %d CRDs from two documents, want a.example.com and b.example.com", len(crds))
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
	if err := os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte(cm), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCRDs(dir); err == nil {
		t.Error("readCRDs accepted a ConfigMap")
	}
}

func internalIPs(n corev1.Node) []string {
	var ips []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ips = append(ips, a.Address)
		}
	}
	return ips
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// procCount is the number of processes the lab tracks as running.
func (l *Lab) procCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.procs)
}
