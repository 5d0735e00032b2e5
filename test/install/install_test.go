package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The README's install commands, run by the tests exactly as written there.
var (
	installCmd = []string{"apply", "-f", "dist/ironlb.yaml"}
	waitCmd    = []string{"wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/name=ironlb"}
)

// installation is what installing dist/ironlb.yaml printed.
type installation struct {
	dryRun, apply, wait, reapply string
}

var (
	installOnce sync.Once
	installed   *installation
	installErr  error
)

// install installs dist/ironlb.yaml once per test run, on a cluster as a
// user has it: apiservertest's API server comes with ironlb's CRDs, which are
// removed first. Tests that need ironlb installed call it first.
func install(t *testing.T) *installation {
	t.Helper()
	installOnce.Do(func() { installed, installErr = doInstall(t) })
	if installErr != nil {
		t.Fatalf("install dist/ironlb.yaml: %v", installErr)
	}
	return installed
}

func doInstall(t *testing.T) (*installation, error) {
	ctx := context.Background()
	if err := removeCRDs(ctx); err != nil {
		return nil, err
	}
	var in installation
	run := func(out *string, stdin []byte, args ...string) error {
		o, e, err := kubectl(t, stdin, args...)
		*out = o + e
		if err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, *out)
		}
		return nil
	}
	// A server-side dry run of namespaced objects needs their namespace
	// to exist (a dry run creates nothing), so the Namespace goes first,
	// as `kubectl apply` would create it.
	var ns string
	if err := run(&ns, []byte(namespaceDoc(t)), "apply", "-f", "-"); err != nil {
		return nil, err
	}
	if err := run(&in.dryRun, nil, "apply", "--dry-run=server", "-f", "dist/ironlb.yaml"); err != nil {
		return nil, err
	}
	if err := run(&in.apply, nil, installCmd...); err != nil {
		return nil, err
	}
	if err := run(&in.wait, nil, waitCmd...); err != nil {
		return nil, err
	}
	if err := run(&in.reapply, nil, installCmd...); err != nil {
		return nil, err
	}
	return &in, nil
}

// namespaceDoc is the Namespace document of dist/ironlb.yaml.
func namespaceDoc(t *testing.T) string {
	for _, doc := range regexp.MustCompile(`(?m)^---\n`).Split(string(read(t, "dist", "ironlb.yaml")), -1) {
		if strings.Contains(doc, "\nkind: Namespace\n") {
			return doc
		}
	}
	t.Fatal("dist/ironlb.yaml has no Namespace")
	return ""
}

// removeCRDs deletes the ironlb.io CRDs and waits until they are gone.
func removeCRDs(ctx context.Context) error {
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := env.Client.List(ctx, &crds); err != nil {
		return err
	}
	for _, crd := range crds.Items {
		if crd.Spec.Group != v1alpha1.GroupVersion.Group {
			continue
		}
		// Deleting a CRD whose storage is still starting fails its
		// finalizer ("could not list instances: storage is (re)initializing")
		// and leaves it Terminating for minutes; wait until its objects list.
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: crd.Spec.Versions[0].Name, Kind: crd.Spec.Names.ListKind})
		deadline := time.Now().Add(time.Minute)
		for err := env.Client.List(ctx, list); err != nil; err = env.Client.List(ctx, list) {
			if time.Now().After(deadline) {
				return fmt.Errorf("list %s: %w", crd.Spec.Names.Plural, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := env.Client.Delete(ctx, &crd); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if err := env.Client.List(ctx, &crds); err != nil {
			return err
		}
		var left []string
		for _, crd := range crds.Items {
			if crd.Spec.Group == v1alpha1.GroupVersion.Group {
				left = append(left, fmt.Sprintf("%s (finalizers %v, conditions %+v)", crd.Name, crd.Finalizers, crd.Status.Conditions))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRDs still there a minute after deletion: %s", strings.Join(left, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInstall installs dist/ironlb.yaml with the README's commands on a
// cluster without ironlb: a server-side dry run creates nothing, the real
// apply creates every object, the CRDs become Established, and applying
// again changes nothing.
func TestInstall(t *testing.T) {
	in := install(t)
	objs := decode(t, read(t, "dist", "ironlb.yaml"))
	for _, o := range objs {
		line := fmt.Sprintf("%s/%s", resourceName(o.GetKind()), o.GetName())
		// The dry run came before the real apply, so each object (but the
		// Namespace, created first) was new to it.
		if o.GetKind() != "Namespace" && !strings.Contains(in.dryRun, line+" created (server dry run)") {
			t.Errorf("dry run did not create %s:\n%s", line, in.dryRun)
		}
		if o.GetKind() != "Namespace" && !strings.Contains(in.apply, line+" created") {
			t.Errorf("apply did not create %s:\n%s", line, in.apply)
		}
		if !strings.Contains(in.reapply, line+" unchanged") {
			t.Errorf("second apply changed %s:\n%s", line, in.reapply)
		}
	}

	ctx := context.Background()
	n := 0
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		n++
		var crd apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: o.GetName()}, &crd); err != nil {
			t.Fatal(err)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("CRD %s is not Established: %+v", crd.Name, crd.Status.Conditions)
		}
	}
	if n == 0 {
		t.Error("dist/ironlb.yaml holds no CRD")
	}
	if got := strings.Count(in.wait, "condition met"); got != n {
		t.Errorf("`kubectl %s` waited for %d CRDs, want %d:\n%s", strings.Join(waitCmd, " "), got, n, in.wait)
	}
}

// resourceName is how kubectl names a kind in its output ("deployment.apps/x").
func resourceName(kind string) string {
	switch kind {
	case "Namespace", "ServiceAccount", "Service", "ConfigMap":
		return strings.ToLower(kind)
	case "Deployment", "DaemonSet":
		return strings.ToLower(kind) + ".apps"
	case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
		return strings.ToLower(kind) + ".rbac.authorization.k8s.io"
	case "CustomResourceDefinition":
		return "customresourcedefinition.apiextensions.k8s.io"
	}
	return strings.ToLower(kind)
}

// TestSamples applies config/samples/ the way a user would, and checks the
// objects are there.
func TestSamples(t *testing.T) {
	install(t)
	out := mustKubectl(t, nil, "apply", "-f", "config/samples/")
	// The BGPPeer names a router on a LAN: no speaker started by a later
	// test may see it (TestComponentsRunWithTheirServiceAccounts checks).
	t.Cleanup(func() { mustKubectl(t, nil, "delete", "-f", "config/samples/", "--wait=false") })
	for _, want := range []string{
		"configmap/config created", "ippool.ironlb.io/lan created", "l2announcement.ironlb.io/lan created",
		"ippool.ironlb.io/routed created", "bgppeer.ironlb.io/router created", "bgpannouncement.ironlb.io/routed created",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -f config/samples/: no %q in\n%s", want, out)
		}
	}
	ctx := context.Background()
	var pool v1alpha1.IPPool
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "lan"}, &pool); err != nil {
		t.Fatal(err)
	}
	// Defaults come from the schema.
	if pool.Spec.AutoAssign == nil || !*pool.Spec.AutoAssign {
		t.Errorf("IPPool lan: autoAssign = %v, want the default true", pool.Spec.AutoAssign)
	}
}

var wantLine = regexp.MustCompile(`(?m)^# want: (.+)$`)

// TestBadSamples applies each file in config/samples/bad and checks that
// the API server refuses it with a message containing each of the file's
// "# want:" lines (the field, and what is wrong with it).
func TestBadSamples(t *testing.T) {
	install(t)
	files, err := filepath.Glob(repo(t, "config", "samples", "bad", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no files in config/samples/bad")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants := wantLine.FindAllStringSubmatch(string(b), -1)
			if len(wants) == 0 {
				t.Fatalf("%s has no `# want:` line", name)
			}
			out, errOut, err := kubectl(t, nil, "apply", "-f", "config/samples/bad/"+name)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			t.Logf("kubectl says: %s", strings.TrimSpace(errOut))
			for _, w := range wants {
				if !strings.Contains(errOut, w[1]) {
					t.Errorf("message does not contain %q:\n%s", w[1], errOut)
				}
			}
		})
	}
}
