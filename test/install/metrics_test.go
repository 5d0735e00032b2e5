package install

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
)

// TestMetricsNeedAuthorization scrapes the daemons' metrics endpoint over
// HTTPS: without a token the answer is 401; with the token of a
// ServiceAccount bound to the ClusterRole ironlb-metrics-reader, 200 and
// the metrics; with that of one not bound (the speaker's own), 403. First
// from the endpoint set up in this process as both daemons set it up
// (kubecr.MetricsServer for the controller, kube.ServeMetrics for the
// speaker) on the speaker's ServiceAccount as installed, then from
// `ironlb speaker` itself, whose health endpoint answers plain HTTP.
func TestMetricsNeedAuthorization(t *testing.T) {
	install(t)
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const ns, reader = "monitoring", "prometheus"
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), reader, metav1.DeleteOptions{})
	})
	for _, sa := range []string{reader, "nobody"} {
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reader},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: kube.MetricsReaderClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: reader}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(ns, sa string) string {
		t.Helper()
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	daemon := serviceAccountConfig(t, "ironlb-speaker")
	tokens := []scrapeCase{
		{"no token", "", http.StatusUnauthorized},
		{"a token the API server does not know", "not-a-token", http.StatusUnauthorized},
		{"bound to " + kube.MetricsReaderClusterRole, token(ns, reader), http.StatusOK},
		{"not bound", token(ns, "nobody"), http.StatusForbidden},
		{"the speaker itself", daemon.BearerToken, http.StatusForbidden},
	}

	t.Run("MetricsServer", func(t *testing.T) {
		hc, err := rest.HTTPClientFor(daemon)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		srv, err := metricsserver.NewServer(kubecr.MetricsServer(addr), daemon, hc)
		if err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Start(sctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("metrics server: %v", err)
			}
		})
		checkScrapes(t, addr, tokens)
	})

	t.Run("ServeMetrics", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		sctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- kube.ServeMetrics(sctx, addr, daemon, promhttp.Handler(), slog.New(slog.DiscardHandler))
		}()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("ServeMetrics: %v", err)
			}
		})
		checkScrapes(t, addr, tokens)
	})

	t.Run("speaker", func(t *testing.T) {
		// The speaker registers with a Lease (internal/speaker/registry.go),
		// which other tests' speakers must not count.
		t.Cleanup(func() {
			_ = admin.CoordinationV1().Leases(systemNamespace).Delete(context.Background(), "speaker-metrics-node", metav1.DeleteOptions{})
		})
		kubeconfig := filepath.Join(t.TempDir(), "speaker.kubeconfig")
		writeKubeconfig(t, daemon, kubeconfig)
		metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		health := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		p := start(t, buildIronlb(t, "ironlb"), "speaker", "--kubeconfig", kubeconfig, "--namespace", systemNamespace,
			"--node-name", "metrics-node", "--memberlist-bind", "off", "--interfaces", "ironlb-test-none",
			"--metrics-bind-address", metrics, "--health-probe-bind-address", health)
		checkScrapes(t, metrics, tokens)
		// The kubelet's probes: plain HTTP, no token, nothing but ok or
		// not.
		resp, err := http.Get("http://" + health + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "ok" {
			t.Errorf("healthz: %d %q, want 200 \"ok\"", resp.StatusCode, b)
		}
		if log := p.stop(t); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("the speaker was refused a request:\n%s", log)
		}
	})
}

// scrapeCase is a scrape with a bearer token (none if empty) and the
// status it must get.
type scrapeCase struct {
	name, token string
	want        int
}

// checkScrapes scrapes https://addr/metrics as each case says, twice (the
// second answer comes from the endpoint's cache of the API server's).
func checkScrapes(t *testing.T, addr string, cases []scrapeCase) {
	t.Helper()
	// The certificate is self-signed, as a ServiceMonitor's
	// tlsConfig.insecureSkipVerify accepts.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(bearer string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	eventually(t, 30*time.Second, "metrics endpoint up at "+addr, func() error {
		_, _, err := scrape("")
		return err
	})
	if resp, err := client.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("metrics answered 200 over plain HTTP")
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 2 {
				code, body, err := scrape(c.token)
				if err != nil {
					t.Fatal(err)
				}
				if code != c.want {
					t.Fatalf("status %d, want %d; body %.200q", code, c.want, body)
				}
				if metrics := strings.Contains(body, "# TYPE "); metrics != (code == http.StatusOK) {
					t.Errorf("status %d with metrics in the body: %v (%.200q)", code, metrics, body)
				}
			}
		})
	}
}
