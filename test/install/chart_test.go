package install

import (
	"bytes"
	"encoding/json"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The chart is rendered with Helm's own engine (the code behind
// `helm template` and `helm install`), in strict mode: a reference to a
// value that does not exist is an error.

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(repo(t, "charts", "ironlb"))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// renderChart renders the chart as release "ironlb" in namespace with
// values over the chart's defaults, and returns its objects, CRDs first
// (Helm installs crds/ before the templates), and NOTES.txt.
func renderChart(t *testing.T, namespace string, values map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := chartutil.ToRenderValues(c, values, chartutil.ReleaseOptions{Name: "ironlb", Namespace: namespace, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, "", err
	}
	files, err := engine.Engine{Strict: true}.Render(c, vals)
	if err != nil {
		return nil, "", err
	}
	var objs []*unstructured.Unstructured
	for _, crd := range c.CRDObjects() {
		objs = append(objs, decode(t, crd.File.Data)...)
	}
	var notes string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		switch {
		case path.Base(name) == "NOTES.txt":
			notes = files[name]
		case strings.HasSuffix(name, ".yaml"):
			objs = append(objs, decode(t, []byte(files[name]))...)
		}
	}
	return objs, notes, nil
}

func mustRenderChart(t *testing.T, namespace string, values map[string]any) ([]*unstructured.Unstructured, string) {
	t.Helper()
	objs, notes, err := renderChart(t, namespace, values)
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	return objs, notes
}

// helmLabels are the labels the chart adds that kustomize does not.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

func withoutHelmLabels(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	labels := o.GetLabels()
	for _, l := range helmLabels {
		delete(labels, l)
	}
	o.SetLabels(labels)
	return o
}

// TestChartMatchesDist checks that the chart with its default values
// renders the objects of dist/ironlb.yaml, field for field (but Helm's own
// labels), except the Namespace, which `helm install --create-namespace`
// makes.
func TestChartMatchesDist(t *testing.T) {
	image, tag := distImage(t)
	repository := strings.TrimSuffix(image, ":"+tag)
	objs, _ := mustRenderChart(t, systemNamespace, map[string]any{"image": map[string]any{"repository": repository, "tag": tag}})
	got := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		got[key(o)] = withoutHelmLabels(o)
	}
	want := byKey(decode(t, read(t, "dist", "ironlb.yaml")))
	delete(want, "Namespace "+systemNamespace)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chart differs from dist/ironlb.yaml (-dist +chart):\n%s", diff)
	}

	// The chart's default tag is its appVersion; dist's is the release's.
	objs, _ = mustRenderChart(t, systemNamespace, nil)
	c := loadChart(t)
	for _, o := range objs {
		if o.GetKind() == "Deployment" || o.GetKind() == "DaemonSet" {
			img, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			if got, want := img[0].(map[string]any)["image"], "ghcr.io/ironlb/ironlb:"+c.Metadata.AppVersion; got != want {
				t.Errorf("%s runs %v by default, want %s", key(o), got, want)
			}
		}
	}
}

// TestChartApplies installs the chart's default rendering over
// dist/ironlb.yaml with server-side apply (it changes nothing but labels,
// and a field set differently would conflict), and the rendering with
// every option on into another namespace with a server-side dry run.
func TestChartApplies(t *testing.T) {
	install(t)
	image, tag := distImage(t)
	repository := strings.TrimSuffix(image, ":"+tag)
	objs, _ := mustRenderChart(t, systemNamespace, map[string]any{"image": map[string]any{"repository": repository, "tag": tag}})
	out := mustKubectl(t, toYAML(t, objs), "apply", "--server-side", "--field-manager=helm", "-f", "-")
	if n := strings.Count(out, " serverside-applied"); n != len(objs) {
		t.Errorf("applied %d objects, want %d:\n%s", n, len(objs), out)
	}

	const ns = "ironlb-helm"
	mustKubectl(t, nil, "create", "namespace", ns)
	t.Cleanup(func() { _, _, _ = kubectl(t, nil, "delete", "namespace", ns, "--wait=false") })
	objs, notes := mustRenderChart(t, ns, everything)
	var apply []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "ServiceMonitor" {
			continue // the prometheus-operator CRD is not installed here
		}
		apply = append(apply, o)
	}
	out = mustKubectl(t, toYAML(t, apply), "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "--force-conflicts", "-f", "-")
	if n := strings.Count(out, " serverside-applied (server dry run)"); n != len(apply) {
		t.Errorf("dry run applied %d objects, want %d:\n%s", n, len(apply), out)
	}
	if !strings.Contains(notes, "kubectl -n ironlb-helm rollout status daemonset/ironlb-speaker") {
		t.Errorf("NOTES.txt does not name the namespace:\n%s", notes)
	}
}

// everything turns every option of the chart on.
var everything = map[string]any{
	"image":            map[string]any{"repository": "registry.example/ironlb", "tag": "v9.9.9", "pullPolicy": "Always"},
	"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
	"logLevel":         "debug",
	"controller": map[string]any{
		"replicas":          2,
		"resources":         map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "32Mi"}},
		"tolerations":       []any{map[string]any{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}},
		"affinity":          map[string]any{"nodeAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{"weight": 1, "preference": map[string]any{"matchExpressions": []any{map[string]any{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}}}}}}},
		"priorityClassName": "system-cluster-critical",
	},
	"speaker": map[string]any{
		"resources":         map[string]any{"limits": map[string]any{"memory": "128Mi"}},
		"tolerations":       []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}},
		"priorityClassName": "system-node-critical",
	},
	"metrics":   map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
	"dashboard": map[string]any{"enabled": true},
}

// TestChartOptions checks what each option changes.
func TestChartOptions(t *testing.T) {
	objs, _ := mustRenderChart(t, "lb", everything)
	m := byKey(objs)

	deploy := m["Deployment lb/ironlb-controller"]
	ds := m["DaemonSet lb/ironlb-speaker"]
	if deploy == nil || ds == nil {
		t.Fatalf("no controller Deployment or speaker DaemonSet in namespace lb: %v", slices.Sorted(maps.Keys(m)))
	}
	for _, o := range []*unstructured.Unstructured{deploy, ds} {
		c := container(t, o)
		if c["image"] != "registry.example/ironlb:v9.9.9" || c["imagePullPolicy"] != "Always" {
			t.Errorf("%s: image %v, pull policy %v", key(o), c["image"], c["imagePullPolicy"])
		}
		if !slices.Contains(toStrings(c["args"]), "--log-level=debug") {
			t.Errorf("%s: args %v lack --log-level=debug", key(o), c["args"])
		}
		secrets, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "imagePullSecrets")
		if len(secrets) != 1 {
			t.Errorf("%s: imagePullSecrets %v", key(o), secrets)
		}
	}
	if r, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "replicas"); r != float64(2) {
		t.Errorf("controller replicas %v, want 2", r)
	}
	if tol, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "tolerations"); len(tol) != 1 || tol[0].(map[string]any)["key"] != "dedicated" {
		t.Errorf("speaker tolerations %v", tol)
	}
	if pc, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "priorityClassName"); pc != "system-node-critical" {
		t.Errorf("speaker priorityClassName %q", pc)
	}
	// Every namespaced object is in the release's namespace, and the
	// bindings name the ServiceAccounts there.
	for _, o := range objs {
		if o.GetNamespace() != "" && o.GetNamespace() != "lb" {
			t.Errorf("%s is outside the release's namespace", key(o))
		}
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subjects {
			if s.(map[string]any)["namespace"] != "lb" {
				t.Errorf("%s binds %v", key(o), s)
			}
		}
	}

	sm := m["ServiceMonitor lb/ironlb"]
	if sm == nil {
		t.Fatal("metrics.serviceMonitor.enabled renders no ServiceMonitor")
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v lack metrics.serviceMonitor.labels", sm.GetLabels())
	}
	cm := m["ConfigMap lb/ironlb-dashboard"]
	if cm == nil {
		t.Fatal("dashboard.enabled renders no ConfigMap")
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard", cm.GetLabels())
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "ironlb.json")
	if want := strings.TrimRight(string(read(t, "charts", "ironlb", "dashboards", "ironlb.json")), "\n"); data != want {
		t.Errorf("dashboard ConfigMap does not hold dashboards/ironlb.json verbatim (%d bytes, want %d)", len(data), len(want))
	}
	if !json.Valid([]byte(data)) {
		t.Error("dashboard ConfigMap holds invalid JSON")
	}

	// namespaceOverride wins over the release's namespace.
	objs, _ = mustRenderChart(t, "default", map[string]any{"namespaceOverride": "lb"})
	for _, o := range objs {
		if o.GetNamespace() != "" && o.GetNamespace() != "lb" {
			t.Errorf("namespaceOverride: %s is outside namespace lb", key(o))
		}
	}

	// Without the speaker, the controller only assigns addresses.
	objs, notes := mustRenderChart(t, "lb", map[string]any{"speaker": map[string]any{"enabled": false}})
	for _, o := range objs {
		if strings.Contains(o.GetName(), "speaker") {
			t.Errorf("speaker.enabled=false still renders %s", key(o))
		}
	}
	if !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "Deployment" }) {
		t.Error("speaker.enabled=false renders no controller")
	}
	if strings.Contains(notes, "speaker") {
		t.Errorf("NOTES.txt mentions the speaker without one:\n%s", notes)
	}
}

func container(t *testing.T, o *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s has %d containers, want 1", key(o), len(cs))
	}
	return cs[0].(map[string]any)
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func toYAML(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}
