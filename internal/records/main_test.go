package records

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/ironlb/ironlb/internal/apiservertest"
)

var env *apiservertest.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env, apiservertest.Options{}) }

// svc is the tests' record of a Service: two fields its readers care
// about, which equalSvc compares, and one they do not, which it ignores,
// so that a test can tell an update stored silently from one not stored.
type svc struct {
	port int32  // the first port
	lb   bool   // type LoadBalancer
	note string // the "note" annotation
}

func equalSvc(a, b svc) bool { return a.port == b.port && a.lb == b.lb }

// skipLabel on a Service makes reduceIn drop it.
const skipLabel = "records.ironlb.io/skip"

// reduceIn keeps the Services of namespace ns without skipLabel. A store
// lists every namespace; each test owns one and keeps only its own.
func reduceIn(ns string) func(runtime.Object) (svc, bool) {
	return func(obj runtime.Object) (svc, bool) {
		s := obj.(*corev1.Service)
		if s.Namespace != ns || s.Labels[skipLabel] != "" {
			return svc{}, false
		}
		r := svc{lb: s.Spec.Type == corev1.ServiceTypeLoadBalancer, note: s.Annotations["note"]}
		if len(s.Spec.Ports) > 0 {
			r.port = s.Spec.Ports[0].Port
		}
		return r, true
	}
}

// serviceKind is the Services of every namespace, through c, kept by
// reduceIn(ns) and compared by equalSvc.
func serviceKind(c corev1client.CoreV1Interface, ns string) Kind[svc] {
	return Kind[svc]{
		Name: "services",
		List: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.Services("").List(ctx, o)
		},
		Watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.Services("").Watch(ctx, o)
		},
		Reduce: reduceIn(ns),
		Equal:  equalSvc,
	}
}

// service is a ClusterIP Service on port 80, changed by mods.
func service(name string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// headless spares the cluster IP: envtest's service range is a /24.
func headless(s *corev1.Service)     { s.Spec.ClusterIP = corev1.ClusterIPNone }
func loadBalancer(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }

func port(p int32) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Ports[0].Port = p }
}

func skip(on bool) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if !on {
			delete(s.Labels, skipLabel)
			return
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[skipLabel] = "true"
	}
}

func annotate(note string) func(*corev1.Service) {
	return func(s *corev1.Service) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "note", note) }
}

// namespace creates a namespace for t and returns it with a client. Its
// Services are deleted when t ends: envtest runs no namespace controller
// to delete them with the namespace, and each holds a cluster IP.
func namespace(t *testing.T) (corev1client.CoreV1Interface, string) {
	t.Helper()
	c, err := corev1client.NewForConfig(env.Config)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	ns, err := c.Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "records-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := c.Services(ns.Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Errorf("list Services to delete: %v", err)
			return
		}
		for _, s := range list.Items {
			if err := c.Services(ns.Name).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete Service %s: %v", s.Name, err)
			}
		}
		c.Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return c, ns.Name
}

func create(t *testing.T, c corev1client.ServiceInterface, svcs ...*corev1.Service) {
	t.Helper()
	for _, s := range svcs {
		if _, err := c.Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Service %s: %v", s.Name, err)
		}
	}
}

// start runs s until t ends, and then waits for Run to return.
func start[R any](t *testing.T, s *Store[R]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s after 30s", what)
	}
}

// contents reads s through Range, and checks that Len and Get agree.
func contents(t *testing.T, s *Store[svc]) map[types.NamespacedName]svc {
	t.Helper()
	m := map[types.NamespacedName]svc{}
	s.Range(func(nn types.NamespacedName, r svc) bool { m[nn] = r; return true })
	if n := s.Len(); n != len(m) {
		t.Errorf("Len() = %d, but Range gave %d records", n, len(m))
	}
	for nn, r := range m {
		if got, ok := s.Get(nn); !ok || got != r {
			t.Errorf("Get(%v) = %+v, %v; Range gave %+v", nn, got, ok, r)
		}
	}
	return m
}

// watcher runs a Store of the Services of its own namespace and records
// the keys the store tells its subscribers of, for tests that write
// Services and check the store after each write.
//
// A Service named "sentinel" serves as a barrier (see settle); it is left
// out of what the watcher reports.
type watcher struct {
	c       corev1client.ServiceInterface
	ns      string
	s       *Store[svc]
	barrier int

	mu  sync.Mutex
	got []string // names notified and not yet taken
}

// newWatcher creates existing and the sentinel in a new namespace, runs a
// store of them with Equal equal, waits for its first list and
// subscribes.
func newWatcher(t *testing.T, equal func(a, b svc) bool, existing ...*corev1.Service) *watcher {
	t.Helper()
	c, ns := namespace(t)
	create(t, c.Services(ns), append(existing, service("sentinel"))...)
	k := serviceKind(c, ns)
	k.Equal = equal
	w := &watcher{c: c.Services(ns), ns: ns, s: New(k)}
	start(t, w.s)
	await(t, w.s.Synced(), "first list")
	w.subscribe()
	return w
}

func (w *watcher) name(nn types.NamespacedName) string {
	if nn.Namespace != w.ns {
		return nn.String() // not the test's: shows up in a diff
	}
	return nn.Name
}

func (w *watcher) subscribe() {
	w.s.Subscribe(func(nn types.NamespacedName) {
		if nn == (types.NamespacedName{Namespace: w.ns, Name: "sentinel"}) {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.got = append(w.got, w.name(nn))
	})
}

// take returns the names notified since the last take, sorted.
func (w *watcher) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.got
	w.got = nil
	slices.Sort(got)
	return got
}

func (w *watcher) update(t *testing.T, name string, mods ...func(*corev1.Service)) {
	t.Helper()
	s, err := w.c.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Service %s: %v", name, err)
	}
	for _, m := range mods {
		m(s)
	}
	if _, err := w.c.Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update Service %s: %v", name, err)
	}
}

func (w *watcher) delete(t *testing.T, name string) {
	t.Helper()
	if err := w.c.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete Service %s: %v", name, err)
	}
}

// settle returns once the store has every write made before the call: it
// annotates the sentinel and waits for the store to show the annotation.
// One watch delivers events in resourceVersion order, so a test can then
// check that something did not happen without sleeping first.
func (w *watcher) settle(t *testing.T) {
	t.Helper()
	w.barrier++
	note := strconv.Itoa(w.barrier)
	w.update(t, "sentinel", annotate(note))
	nn := types.NamespacedName{Namespace: w.ns, Name: "sentinel"}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if r, _ := w.s.Get(nn); r.note == note {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not see the sentinel's note %s in 30s", note)
		}
	}
}

// check compares the store's records, and the names notified since the
// last check, with want and notified.
func (w *watcher) check(t *testing.T, want map[string]svc, notified []string) {
	t.Helper()
	got := map[string]svc{}
	for nn, r := range contents(t, w.s) {
		if nn.Name != "sentinel" || nn.Namespace != w.ns {
			got[w.name(nn)] = r
		}
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(svc{})); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(notified, w.take(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("notified (-want +got):\n%s", diff)
	}
	for _, name := range notified {
		if _, kept := want[name]; kept {
			continue
		}
		if r, ok := w.s.Get(types.NamespacedName{Namespace: w.ns, Name: name}); ok {
			t.Errorf("Get(%s) = %+v after the record went", name, r)
		}
	}
}

// A step writes Services, then says what the store holds and which names
// it told its subscriber of.
type step struct {
	name     string
	write    func(t *testing.T, w *watcher)
	want     map[string]svc // by name
	notified []string       // sorted
}

// run runs steps in order, and stops at the first that fails: each builds
// on the ones before.
func (w *watcher) run(t *testing.T, steps []step) {
	t.Helper()
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			st.write(t, w)
			w.settle(t)
			w.check(t, st.want, st.notified)
		}) {
			return
		}
	}
}
