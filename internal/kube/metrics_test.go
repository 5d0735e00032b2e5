package kube

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fakeReviews is an API server that knows two tokens: "reader" may get
// /metrics, "other" is someone else; any other token is unknown. It
// counts the TokenReviews it answers, and answers none while failing.
type fakeReviews struct {
	t       *testing.T
	reviews atomic.Int32
	failing atomic.Bool
}

// start serves f on loopback and returns the config of a daemon that
// talks to it as "daemon".
func (f *fakeReviews) start() *rest.Config {
	srv := httptest.NewServer(f)
	f.t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL, BearerToken: "daemon"}
}

func (f *fakeReviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer daemon" {
		f.t.Errorf("%s %s with Content-Type %q and Authorization %q: want a JSON POST as the daemon",
			r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"))
	}
	var out any
	switch r.URL.Path {
	case tokenReviewsPath:
		f.reviews.Add(1)
		if f.failing.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(metav1.Status{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
				Status:   metav1.StatusFailure, Message: "API server away", Reason: metav1.StatusReasonServiceUnavailable, Code: http.StatusServiceUnavailable,
			})
			return
		}
		var tr authenticationv1.TokenReview
		f.decode(r, &tr)
		switch tr.Spec.Token {
		case "reader", "other":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: tr.Spec.Token, Groups: []string{"system:authenticated"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}},
			}}
		}
		out = &tr
	case subjectAccessReviewsPath:
		var sar authorizationv1.SubjectAccessReview
		f.decode(r, &sar)
		nr := sar.Spec.NonResourceAttributes
		if nr == nil || len(sar.Spec.Extra["k"]) != 1 || sar.Spec.Extra["k"][0] != "v" {
			f.t.Errorf("review %+v: want the non-resource URL and the user's extra", sar.Spec)
		}
		sar.Status.Allowed = sar.Spec.User == "reader" && nr != nil && nr.Path == "/metrics" && nr.Verb == "get"
		out = &sar
	default:
		f.t.Errorf("request to %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// decode reads r's body into review, checking that it says what it is,
// as the API server requires of a body.
func (f *fakeReviews) decode(r *http.Request, review any) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Error(err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(b, &tm); err != nil || tm.APIVersion == "" || tm.Kind == "" {
		f.t.Errorf("body %s: %v, want apiVersion and kind", b, err)
	}
	if err := json.Unmarshal(b, review); err != nil {
		f.t.Error(err)
	}
}

// TestMetricsAuthDecide checks metricsAuth's answers against a fake API
// server: who is asked what, and which answers are reused. (The real API
// server's answers: test/install TestMetricsNeedAuthorization.)
func TestMetricsAuthDecide(t *testing.T) {
	f := &fakeReviews{t: t}
	a, err := newMetricsAuth(f.start(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := func(method, path, auth string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}

	tests := []struct {
		name        string
		r           *http.Request
		want        int
		wantReviews int32 // token reviews made, in all, after this request
	}{
		{"no header", req("GET", "/metrics", ""), http.StatusUnauthorized, 0},
		{"not a bearer token", req("GET", "/metrics", "Basic cmVhZGVyOng="), http.StatusUnauthorized, 0},
		{"empty bearer token", req("GET", "/metrics", "Bearer "), http.StatusUnauthorized, 0},
		{"unknown token", req("GET", "/metrics", "Bearer nope"), http.StatusUnauthorized, 1},
		{"reader", req("GET", "/metrics", "Bearer reader"), http.StatusOK, 2},
		{"reader again, remembered", req("GET", "/metrics", "Bearer reader"), http.StatusOK, 2},
		{"reader, another path", req("GET", "/debug", "Bearer reader"), http.StatusForbidden, 3},
		{"reader, another verb", req("POST", "/metrics", "Bearer reader"), http.StatusForbidden, 4},
		{"someone else", req("GET", "/metrics", "Bearer other"), http.StatusForbidden, 5},
		{"someone else again, remembered", req("GET", "/metrics", "Bearer other"), http.StatusForbidden, 5},
	}
	for _, tt := range tests {
		got, err := a.decide(tt.r)
		if reviews := f.reviews.Load(); err != nil || got != tt.want || reviews != tt.wantReviews {
			t.Errorf("%s: %d, %v after %d token reviews; want %d, nil after %d", tt.name, got, err, reviews, tt.want, tt.wantReviews)
		}
	}

	// An API server that cannot answer: 500, with its reason, and not
	// remembered.
	f.failing.Store(true)
	for range 2 {
		if got, err := a.decide(req("GET", "/metrics", "Bearer new")); got != http.StatusInternalServerError || err == nil || !strings.Contains(err.Error(), "API server away") {
			t.Errorf("API server away: %d, %v; want 500 and its error", got, err)
		}
	}
	if reviews := f.reviews.Load(); reviews != 7 {
		t.Errorf("%d token reviews, want 7: a failure is asked again", reviews)
	}
}

// TestServeMetrics scrapes ServeMetrics as Prometheus would, with the
// API server's reviews faked: HTTPS with HTTP/1.1 only, MetricsAuth's
// answers, nothing but /metrics, and an end with its context.
func TestServeMetrics(t *testing.T) {
	f := &fakeReviews{t: t}
	cfg := f.start()
	log := slog.New(slog.DiscardHandler)

	for _, addr := range []string{"", "0"} {
		if err := ServeMetrics(t.Context(), addr, cfg, http.NotFoundHandler(), log); err != nil {
			t.Errorf("ServeMetrics(%q): %v, want nil at once", addr, err)
		}
	}
	// An address already taken: an error at once.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if err := ServeMetrics(t.Context(), taken.Addr().String(), cfg, http.NotFoundHandler(), log); err == nil {
		t.Errorf("ServeMetrics on a taken address: nil, want an error")
	}

	addr := freeAddr(t)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# TYPE up gauge\n") })
	go func() { done <- ServeMetrics(ctx, addr, cfg, metrics, log) }()

	// The certificate is self-signed. ForceAttemptHTTP2 offers h2, which
	// the server must turn down.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
	}}
	scrape := func(scheme, path, token string) (*http.Response, string, error) {
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+addr+path, nil)
		if err != nil {
			return nil, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := scrape("https", "/metrics", "")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics endpoint not up at %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	tests := []struct {
		name, scheme, path, token string
		want                      int
	}{
		{"no token", "https", "/metrics", "", http.StatusUnauthorized},
		{"an unknown token", "https", "/metrics", "nope", http.StatusUnauthorized},
		{"allowed", "https", "/metrics", "reader", http.StatusOK},
		{"not allowed", "https", "/metrics", "other", http.StatusForbidden},
		{"another path", "https", "/debug/pprof/", "reader", http.StatusNotFound},
		{"plain HTTP", "http", "/metrics", "reader", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := scrape(tt.scheme, tt.path, tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d; body %.200q", resp.StatusCode, tt.want, body)
			}
			if served := strings.Contains(body, "# TYPE "); served != (tt.want == http.StatusOK) {
				t.Errorf("status %d with metrics in the body: %v (%.200q)", resp.StatusCode, served, body)
			}
			if tt.scheme == "https" && (resp.ProtoMajor != 1 || resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2") {
				t.Errorf("answered over %s, ALPN %q; want HTTP/1.1 over TLS", resp.Proto, resp.TLS.NegotiatedProtocol)
			}
		})
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeMetrics after its context ended: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeMetrics still running 10 s after its context ended")
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
