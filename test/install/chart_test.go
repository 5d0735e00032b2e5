package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The chart is rendered by bin/helm, built from the pinned module in
// hack/tools (`make tools`): the helm a user runs. Helm renders a reference
// to a value that does not exist as nothing; TestChartValuesExist catches
// those.

// helmPath is bin/helm, next to bin/kubectl.
func helmPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(kubectlPath(t)), "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found next to kubectl: run `make tools`")
	}
	return p
}

// helm runs bin/helm with args, with its cache and configuration in a
// directory of the test's own, and returns its stdout.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmPath(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// notesName names the ConfigMap that carries the rendered NOTES.txt out of
// `helm template`, which renders NOTES.txt but does not print it (only
// `helm install` does, and its dry runs need a cluster without ironlb on
// it). chartWithNotes adds it to a copy of the chart.
const notesName = "ironlb-test-notes"

// chartWithNotes copies the chart and adds a template that renders
// NOTES.txt with the release's own context (helm's tpl) into the ConfigMap
// notesName.
func chartWithNotes(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ironlb")
	if err := os.CopyFS(dir, os.DirFS(repo(t, "charts", "ironlb"))); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "test-notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test-notes", "NOTES.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + notesName +
		"\ndata:\n  notes: {{ tpl (.Files.Get \"test-notes/NOTES.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", notesName+".yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// renderChart renders the chart as release "ironlb" in namespace with
// values over the chart's defaults (`helm template --include-crds`), and
// returns its objects, CRDs first (Helm installs crds/ before the
// templates), and NOTES.txt.
func renderChart(t *testing.T, namespace string, values map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	vals := filepath.Join(t.TempDir(), "values.json") // JSON is YAML
	if err := os.WriteFile(vals, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "template", "ironlb", chartWithNotes(t), "--namespace", namespace, "--include-crds", "-f", vals)
	if err != nil {
		return nil, "", err
	}
	var objs []*unstructured.Unstructured
	var notes string
	for _, o := range decode(t, []byte(out)) {
		if o.GetKind() == "ConfigMap" && o.GetName() == notesName {
			notes, _, _ = unstructured.NestedString(o.Object, "data", "notes")
			continue
		}
		objs = append(objs, o)
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
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(read(t, "charts", "ironlb", "Chart.yaml"), &chart); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" || o.GetKind() == "DaemonSet" {
			img, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			if got, want := img[0].(map[string]any)["image"], "ghcr.io/ironlb/ironlb:"+chart.AppVersion; got != want {
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

// valueRef is a reference to a chart value in a template: .Values.a.b.
var valueRef = regexp.MustCompile(`\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)

// TestChartValuesExist checks that every value the templates name is in
// values.yaml, where users look them up: helm renders a misspelt or
// undocumented value as nothing, silently.
func TestChartValuesExist(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal(read(t, "charts", "ironlb", "values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(repo(t, "charts", "ironlb", "templates", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range valueRef.FindAllStringSubmatch(string(b), -1) {
			var cur any = values
			for _, name := range strings.Split(strings.TrimPrefix(m[1], "."), ".") {
				obj, ok := cur.(map[string]any)
				if !ok {
					break // below a value that is itself a map or list users fill in
				}
				if cur, ok = obj[name]; !ok {
					t.Errorf("%s names .Values%s, which values.yaml does not have", filepath.Base(f), m[1])
					break
				}
			}
		}
	}
}
