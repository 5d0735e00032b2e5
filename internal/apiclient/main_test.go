package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/internal/apiservertest"
)

// env is the API server of the integration tests, which isolate themselves
// by namespace and object name.
var env *apiservertest.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env, apiservertest.Options{}) }

// newClient returns a client of the speaker's scheme for env, with cfg
// changed by tune (which may be nil).
func newClient(t *testing.T, tune func(*rest.Config)) *Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	if tune != nil {
		tune(cfg)
	}
	c, err := New(cfg, newScheme(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newNamespace creates a namespace named after the test, deleted when it
// ends.
func newNamespace(t *testing.T, c *Client) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", ".", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%x", time.Now().UnixNano()&0xffff)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), ns, "") })
	return name
}

// eventually polls cond until it returns nil, failing the test with its
// last error after 15 seconds.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// contentTypes records the content type of every answer, by URL path.
type contentTypes struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (ct *contentTypes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			ct.mu.Lock()
			if ct.seen == nil {
				ct.seen = make(map[string][]string)
			}
			ct.seen[req.URL.Path] = append(ct.seen[req.URL.Path], resp.Header.Get("Content-Type"))
			ct.mu.Unlock()
		}
		return resp, err
	})
}

func (ct *contentTypes) of(path string) []string {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.seen[path]
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// key returns the key of an object.
func key(m metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}
}
