// Package versions runs the tutorial (shared/seed/SCENARIO.md) against
// each Kubernetes version ironlb is tested on: the oldest kube-apiserver
// that hack/oldkube builds (bin/kube-apiserver-1.21, the tutorial's own
// version) and the current one from hack/tools (bin/kube-apiserver). On
// each, dist/ironlb.yaml is applied with kubectl as the README says, the
// chart is rendered for that version and dry-run applied, and the
// controller runs against the API server: the legacy ConfigMap and an
// IPPool give Services their addresses, a Service asking for a taken
// address says why, config/samples/bad is refused at `kubectl apply`, and
// config/samples/invalid, which no API server refuses because the CRDs
// carry no CEL rules, is reported on each object's Valid condition.
// `ironlbctl doctor` states the server's version and what it means. What
// the old API server does differently (fields it drops) is asserted, so
// the README and doctor state what was measured here.
//
// Only etcd and kube-apiserver run, on loopback, as in test/install, with
// the controller and one speaker in this process. The speaker's node has
// only loopback, so it announces nothing (the lab network tests that); it
// shows that the speaker reads Nodes, EndpointSlices (discovery.k8s.io/v1,
// which sets the floor at 1.21) and ironlb's objects from the old API
// server and writes its ServiceAnnouncements there.
package versions

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/controller"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/speaker"
)

// oldest is the oldest Kubernetes whose kube-apiserver hack/oldkube builds
// with this repository's Go; see hack/oldkube/go.mod.
const oldest = "1.21"

// servers are the API servers the tutorial runs against: file names in
// bin/, and whether a missing one skips (the old one is built by its own
// command) or fails (the current one comes with `make tools`).
var servers = []struct {
	name, file string
	optional   bool
}{
	{"oldest", "kube-apiserver-" + oldest, true},
	{"current", "kube-apiserver", false},
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	if ironlbctlPath != "" {
		os.RemoveAll(filepath.Dir(ironlbctlPath))
	}
	os.Exit(code)
}

func TestTutorial(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(binDir(t), s.file)
			if _, err := os.Stat(path); err != nil && s.optional {
				labkube.SkipOrFail(t, fmt.Sprintf("%s not built: build it with make oldkube (a few minutes)", path))
			}
			tutorial(t, path)
		})
	}
}

// facts are the behaviours of an API server version that ironlb meets,
// from the feature gates' defaults of each release.
type facts struct {
	// loadBalancerClass: spec.loadBalancerClass is stored (gate
	// ServiceLoadBalancerClass: alpha and off in 1.21, beta in 1.22).
	loadBalancerClass bool
	// nodePortControl: spec.allocateLoadBalancerNodePorts is stored
	// (ServiceLBNodePortControl: alpha in 1.21, beta in 1.22).
	nodePortControl bool
	// ipMode: status.loadBalancer.ingress[].ipMode is stored
	// (LoadBalancerIPMode: alpha in 1.29, beta in 1.30).
	ipMode bool
	// fieldValidation: the API server refuses unknown fields itself
	// (ServerSideFieldValidation: beta in 1.25); before, kubectl checks
	// them against the published schema and words it differently.
	fieldValidation bool
}

func factsOf(v *version.Version) facts {
	at := func(minor uint) bool { return v.AtLeast(version.MajorMinor(1, minor)) }
	return facts{loadBalancerClass: at(22), nodePortControl: at(22), ipMode: at(30), fieldValidation: at(25)}
}

// The tutorial's legacy ConfigMap, exactly as the user wrote it, but in
// ironlb's namespace.
const legacyConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: ironlb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.1.87-192.168.1.97 # IP range
`

const pools = `apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: lab
spec:
  addresses:
  - 198.51.100.0/28
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: typo
spec:
  addresses:
  - 198.51.100.300
`

// The tutorial's first Service, applied alone so that it holds its
// address before another asks for it.
const gateway = `apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: kubeflow}
---
apiVersion: v1
kind: Namespace
metadata: {name: seldon-system}
---
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  type: LoadBalancer
  loadBalancerIP: 192.168.1.88
  selector: {app: istio-ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
`

// The tutorial's other Services, one asking for the address the gateway
// holds (its pain point), one from the IPPool, and one for another load
// balancer.
const services = `apiVersion: v1
kind: Service
metadata: {name: seldon-core-analytics-grafana, namespace: seldon-system}
spec:
  type: LoadBalancer
  loadBalancerIP: 192.168.1.90
  selector: {app: grafana}
  ports:
  - {port: 80, targetPort: 3000}
---
apiVersion: v1
kind: Service
metadata: {name: minio-service, namespace: kubeflow}
spec:
  type: LoadBalancer
  loadBalancerIP: 192.168.1.88
  selector: {app: minio}
  ports:
  - {port: 9000}
---
apiVersion: v1
kind: Service
metadata:
  name: from-crd-pool
  namespace: default
  annotations: {ironlb.io/address-pool: lab}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: other-class, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/other
  allocateLoadBalancerNodePorts: false
  selector: {app: web}
  ports:
  - {port: 8080}
`

func tutorial(t *testing.T, apiserver string) {
	c := startCluster(t, apiserver)
	v, err := version.ParseGeneric(c.version.GitVersion)
	if err != nil {
		t.Fatalf("server version %q: %v", c.version.GitVersion, err)
	}
	f := factsOf(v)
	t.Logf("API server %s (%s): %+v", c.version.GitVersion, apiserver, f)
	ctx := context.Background()

	// Install as the README says, then render the chart for this version
	// and dry-run it on the server.
	out := c.kubectl(t, nil, "apply", "-f", "dist/ironlb.yaml")
	if strings.Contains(strings.ToLower(out), "warning") {
		t.Logf("kubectl apply -f dist/ironlb.yaml warned:\n%s", out)
	}
	c.kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/name=ironlb")
	chart, errOut, err := c.run(t, nil, "helm", "template", "ironlb", "charts/ironlb", "--namespace", "ironlb-helm",
		"--include-crds", "--kube-version", c.version.GitVersion)
	if err != nil {
		t.Fatalf("helm template --kube-version %s: %v\n%s", c.version.GitVersion, err, errOut)
	}
	c.kubectl(t, nil, "create", "namespace", "ironlb-helm")
	c.kubectl(t, []byte(chart), "apply", "--dry-run=server", "-f", "-")

	// The controller, in this process, with a count of its writes to
	// Services' status.
	var statusPatches atomic.Int64
	cfg := rest.CopyConfig(c.cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/services/") && strings.HasSuffix(r.URL.Path, "/status") {
				statusPatches.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	ctrl, err := controller.New(cfg, controller.Options{
		Namespace:      kube.DefaultNamespace,
		LeaderElection: true,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name()),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})

	c.kubectl(t, []byte(legacyConfig), "apply", "-f", "-")
	// No API server refuses the invalid pool: the controller does.
	c.kubectl(t, []byte(pools), "apply", "-f", "-")
	c.kubectl(t, []byte(gateway), "apply", "-f", "-")

	svc := func(ns, name string) *corev1.Service {
		var s corev1.Service
		if err := c.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	waitIP := func(ns, name, prefix string) *corev1.Service {
		t.Helper()
		var s *corev1.Service
		eventually(t, 30*time.Second, func() string {
			s = svc(ns, name)
			in := s.Status.LoadBalancer.Ingress
			if len(in) == 1 && strings.HasPrefix(in[0].IP, prefix) {
				return ""
			}
			return fmt.Sprintf("%s/%s: ingress %+v, conditions %+v", ns, name, in, s.Status.Conditions)
		})
		return s
	}
	gw := waitIP("istio-system", "istio-ingressgateway", "192.168.1.88")
	c.kubectl(t, []byte(services), "apply", "-f", "-")
	waitIP("seldon-system", "seldon-core-analytics-grafana", "192.168.1.90")
	waitIP("default", "from-crd-pool", "198.51.100.")

	switch ipMode := gw.Status.LoadBalancer.Ingress[0].IPMode; {
	case f.ipMode && (ipMode == nil || *ipMode != corev1.LoadBalancerIPModeVIP):
		t.Errorf("ipMode = %v, want VIP", ipMode)
	case !f.ipMode && ipMode != nil:
		t.Errorf("ipMode = %v on a server that does not store it", *ipMode)
	}

	// The tutorial's pain point: the reason is on the Service, in its
	// condition and in an event.
	eventually(t, 30*time.Second, func() string {
		s := svc("kubeflow", "minio-service")
		cond := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
		if cond != nil && cond.Status == "False" && cond.Reason == v1alpha1.ReasonIPInUse &&
			strings.Contains(cond.Message, "istio-system/istio-ingressgateway") && len(s.Status.LoadBalancer.Ingress) == 0 {
			return ""
		}
		return fmt.Sprintf("kubeflow/minio-service: condition %+v, ingress %+v", cond, s.Status.LoadBalancer.Ingress)
	})
	eventually(t, 30*time.Second, func() string {
		var list corev1.EventList
		if err := c.client.List(ctx, &list); err != nil {
			return err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name == "minio-service" {
				if strings.Contains(e.Message, "192.168.1.88 is already used by istio-system/istio-ingressgateway") {
					return ""
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
		}
		return fmt.Sprintf("no event on kubeflow/minio-service saying who holds 192.168.1.88; events: %q", seen)
	})

	// The invalid pool, accepted by the API server, is Invalid with the
	// field named; the good pool is Valid.
	eventually(t, 30*time.Second, func() string {
		var list v1alpha1.IPPoolList
		if err := c.client.List(ctx, &list); err != nil {
			return err.Error()
		}
		var got []string
		ok := 0
		for _, p := range list.Items {
			cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionValid)
			if cond == nil {
				got = append(got, p.Name+": no Valid condition")
				continue
			}
			switch {
			case p.Name == "lab" && cond.Status == "True":
				ok++
			case p.Name == "typo" && cond.Status == "False" && cond.Reason == v1alpha1.ReasonInvalid &&
				strings.Contains(cond.Message, "spec.addresses[0]") && strings.Contains(cond.Message, "198.51.100.300"):
				ok++
			}
			got = append(got, fmt.Sprintf("%s: %s %s %q", p.Name, cond.Status, cond.Reason, cond.Message))
		}
		if ok == 2 {
			return ""
		}
		return fmt.Sprintf("pools: %q", got)
	})

	// A Service for another load balancer: the old API server drops its
	// class, so ironlb cannot tell it from its own and serves it.
	other := svc("default", "other-class")
	if got := other.Spec.LoadBalancerClass != nil; got != f.loadBalancerClass {
		t.Errorf("spec.loadBalancerClass stored = %v, want %v", got, f.loadBalancerClass)
	}
	if got := other.Spec.AllocateLoadBalancerNodePorts != nil; got != f.nodePortControl {
		t.Errorf("spec.allocateLoadBalancerNodePorts stored = %v, want %v", got, f.nodePortControl)
	}
	if f.loadBalancerClass {
		// Give the controller time to (wrongly) act on it.
		time.Sleep(2 * time.Second)
		if in := svc("default", "other-class").Status.LoadBalancer.Ingress; len(in) != 0 {
			t.Errorf("ironlb gave a Service of class example.com/other %+v", in)
		}
	} else {
		waitIP("default", "other-class", "192.168.1.")
		t.Logf("the API server dropped spec.loadBalancerClass, so ironlb served default/other-class")
	}

	samples(t, c, f)
	speak(t, c)
	doctor(t, c, f)

	// A settled tutorial writes nothing while nothing changes, on every
	// version. What one unrelated change to a settled Service costs is
	// logged: the old API server drops ipMode, so the controller finds its
	// ingress inexact and rewrites it (a no-op on the server) on each
	// reconcile.
	time.Sleep(time.Second)
	settled := statusPatches.Load()
	time.Sleep(2 * time.Second)
	if idle := statusPatches.Load() - settled; idle != 0 {
		t.Errorf("%d status patches in 2 s with nothing changing: the controller is looping", idle)
	}
	before := statusPatches.Load()
	c.kubectl(t, nil, "annotate", "-n", "istio-system", "service", "istio-ingressgateway", "example.com/touched=1")
	time.Sleep(2 * time.Second)
	t.Logf("status patches: %d to settle the tutorial, 0 while idle, %d after an unrelated annotation on a settled Service",
		settled, statusPatches.Load()-before)
}

// TestCRDsWithoutCEL keeps CEL rules (x-kubernetes-validations) out of the
// CRDs users install. Against Kubernetes 1.21 to 1.24 kubectl refuses
// them (measured on 1.21: "unknown field x-kubernetes-validations", for
// rules on properties) and the API server would drop them; 1.25 to 1.30
// reject rules that call CEL's IP and CIDR library (1.31). internal/config
// checks the same in Go on every version (api/v1alpha1's package doc).
func TestCRDsWithoutCEL(t *testing.T) {
	root, err := apiservertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "dist", "ironlb.yaml"), filepath.Join(root, "charts", "ironlb", "crds", "ironlb.io.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "x-kubernetes-validations"); n > 0 {
			rel, _ := filepath.Rel(root, f)
			t.Errorf("%s has %d CEL rules (x-kubernetes-validations), which API servers before 1.31 refuse: check it in internal/config instead", rel, n)
		}
	}
}

var (
	wantLine            = regexp.MustCompile(`(?m)^# want: (.+)$`)
	kubectlUnknownField = regexp.MustCompile(`unknown field "(?:[^"]*\.)?([^".]+)"`)
)

// samples applies config/samples/bad, which kubectl or the API server
// refuses (the README's promise that a typo is refused, not ignored: on
// servers without field validation, 1.21 to 1.24, kubectl's own check
// against the published schema refuses it), and config/samples/invalid,
// which every API server accepts and the controller reports on the
// object's Valid condition. Each file's "# want:" lines are in the
// refusal or the condition's message.
func samples(t *testing.T, c *cluster, f facts) {
	t.Helper()
	root, err := apiservertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"bad", "invalid"} {
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no samples in config/samples/%s: %v", dir, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rel := "config/samples/" + dir + "/" + filepath.Base(file)
			var wants []string
			for _, m := range wantLine.FindAllStringSubmatch(string(b), -1) {
				wants = append(wants, m[1])
			}
			if len(wants) == 0 {
				t.Fatalf("%s has no `# want:` line", rel)
			}
			out, errOut, err := c.run(t, nil, "kubectl", "apply", "-f", rel)
			if dir == "bad" {
				if err == nil {
					t.Errorf("%s accepted:\n%s", rel, out)
				}
				for _, w := range wants {
					if !f.fieldValidation {
						// kubectl: unknown field "adresses" in io.ironlb.v1alpha1.IPPool.spec
						w = kubectlUnknownField.ReplaceAllString(w, `unknown field "$1"`)
					}
					if !strings.Contains(errOut, w) {
						t.Errorf("%s: refusal does not contain %q:\n%s", rel, w, errOut)
					}
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s refused: %v\n%s%s", rel, err, out, errOut)
			}
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal(b, &obj.Object); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() string {
				if err := c.client.Get(context.Background(), client.ObjectKeyFromObject(&obj), &obj); err != nil {
					return err.Error()
				}
				conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
				for _, cd := range conds {
					m, _ := cd.(map[string]any)
					if m["type"] != v1alpha1.ConditionValid || m["status"] != "False" {
						continue
					}
					msg, _ := m["message"].(string)
					for _, w := range wants {
						if !strings.Contains(msg, w) {
							return fmt.Sprintf("%s: Valid condition %q lacks %q", rel, msg, w)
						}
					}
					return ""
				}
				return fmt.Sprintf("%s: no Valid=False condition: %v", rel, conds)
			})
		}
	}
}

var (
	ironlbctlOnce sync.Once
	ironlbctlPath string
	ironlbctlErr  error
)

// doctor runs `ironlbctl doctor`, built from this checkout, and checks
// what it says of the API server's version.
func doctor(t *testing.T, c *cluster, f facts) {
	t.Helper()
	ironlbctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ironlb-versions-")
		if err != nil {
			ironlbctlErr = err
			return
		}
		ironlbctlPath = filepath.Join(dir, "ironlbctl")
		root, _ := apiservertest.RepoRoot()
		cmd := exec.Command("go", "build", "-o", ironlbctlPath, "./cmd/ironlbctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			ironlbctlErr = fmt.Errorf("go build ./cmd/ironlbctl: %v\n%s", err, out)
		}
	})
	if ironlbctlErr != nil {
		t.Fatal(ironlbctlErr)
	}
	// doctor exits 1: this cluster has no kube-proxy, controller or
	// speaker pods.
	out, _ := exec.Command(ironlbctlPath, "--kubeconfig", c.kubeconfig, "doctor").CombinedOutput()
	want := []string{"OK    kubernetes  " + c.version.GitVersion + ", within the tested range 1." + strings.TrimPrefix(oldest, "1.")}
	if !f.loadBalancerClass {
		want = append(want, "OK    kubernetes  before 1.22: spec.loadBalancerClass is dropped")
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("ironlbctl doctor does not say %q:\n%s", w, out)
		}
	}
	if testing.Verbose() {
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.TrimLeft(l, "OKWARNFIL "), "kubernetes ") {
				lines = append(lines, l)
			}
		}
		t.Logf("ironlbctl doctor:\n%s", strings.Join(lines, "\n"))
	}
}

// An EndpointSlice of discovery.k8s.io/v1, the API that sets ironlb's
// floor at 1.21: the gateway's one ready endpoint, on node-1.
const gatewaySlice = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: istio-ingressgateway-abcde
  namespace: istio-system
  labels: {kubernetes.io/service-name: istio-ingressgateway}
addressType: IPv4
endpoints:
- addresses: [10.244.1.5]
  conditions: {ready: true}
  nodeName: node-1
ports:
- {name: http2, port: 8080, protocol: TCP}
`

// speak runs a speaker for node-1, a Ready node with a loopback address,
// without memberlist and answering on lo only, and waits until its
// ServiceAnnouncement for the gateway names node-1: as announcer, or, as
// lo is no interface it answers on, in the reason why none may announce.
func speak(t *testing.T, c *cluster) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if err := c.client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
	}
	if err := c.client.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, []byte(gatewaySlice), "apply", "-f", "-")

	runCtx, stop := context.WithCancel(ctx)
	sp, err := speaker.New(c.cfg, speaker.Options{
		NodeName:       "node-1",
		MemberlistBind: "off",
		Interfaces:     []string{"lo"},
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name(), "speaker", "node-1"),
	})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sp.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("speaker: %v", err)
		}
	})
	var a v1alpha1.ServiceAnnouncement
	eventually(t, 30*time.Second, func() string {
		err := c.client.Get(ctx, types.NamespacedName{Namespace: "istio-system", Name: "istio-ingressgateway"}, &a)
		if err != nil {
			return err.Error()
		}
		for _, an := range a.Status.Announcers {
			if an.IP == "192.168.1.88" && (an.Node == "node-1" || strings.Contains(an.Reason, "node-1")) {
				return ""
			}
		}
		return fmt.Sprintf("ServiceAnnouncement status %+v", a.Status)
	})
	t.Logf("speaker: ServiceAnnouncement istio-system/istio-ingressgateway: %+v", a.Status)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
