package kube

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// MetricsReaderClusterRole is the ClusterRole (config/rbac, the chart)
// that lets its subjects read the daemons' metrics: get on the
// non-resource URL /metrics.
const MetricsReaderClusterRole = "ironlb-metrics-reader"

// How long a metrics caller's answer is reused before the API server is
// asked again: a scrape every 30 s then costs the API server a review a
// minute, and a revoked binding takes effect within a minute.
const (
	metricsAllowedTTL = time.Minute
	metricsRefusedTTL = 10 * time.Second
	// metricsCacheSize bounds the answers kept; the cache starts over
	// when it is full (callers with many tokens are not the case to be
	// fast for).
	metricsCacheSize = 1024
)

// The API paths of the two reviews metricsAuth creates.
const (
	tokenReviewsPath         = "/apis/authentication.k8s.io/v1/tokenreviews"
	subjectAccessReviewsPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
)

// MetricsAuth wraps next, a daemon's metrics handler, so that it serves
// only callers whose bearer token the API server accepts (a TokenReview)
// and who may get the URL (a SubjectAccessReview on the non-resource URL,
// e.g. get /metrics, which MetricsReaderClusterRole grants): without a
// token the answer is 401, with a token not allowed 403, and 500 when the
// API server cannot tell. Answers are remembered for a minute (refusals
// for 10 s), keyed by a hash of the token, so a scrape rarely costs a
// review. cfg is the daemon's own identity, which must be allowed to
// create TokenReviews and SubjectAccessReviews; hc is the HTTP client for
// cfg (rest.HTTPClientFor), nil to make one. log receives the API
// server's failures.
//
// This is what controller-runtime's filters.WithAuthenticationAndAuthorization
// does; it is written here on client-go's REST client alone, since that
// filter brings in the whole of k8s.io/apiserver and the typed clients all
// of k8s.io/client-go/kubernetes, which the speaker does not otherwise
// link.
func MetricsAuth(cfg *rest.Config, hc *http.Client, log *slog.Logger, next http.Handler) (http.Handler, error) {
	a, err := newMetricsAuth(cfg, hc)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := a.decide(r)
		if err != nil {
			log.Error("authenticate or authorize a metrics request", "error", err)
		}
		if code != http.StatusOK {
			http.Error(w, http.StatusText(code), code)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// ServeMetrics serves handler (the Prometheus handler) at addr on path
// /metrics, every request through MetricsAuth on cfg, until ctx ends,
// then shuts the server down (waiting up to a minute for scrapes under
// way) and returns nil. "0" or "" disables it: it returns nil at once.
// An address it cannot listen on is an error at once.
//
// It serves what controller-runtime's metrics server serves the
// controller (kubecr.MetricsServer), for a daemon with no
// controller-runtime manager: the speaker listens on the node's network
// (hostNetwork), so metrics go over HTTPS, with a self-signed
// certificate made at start for localhost and 127.0.0.1 (a
// ServiceMonitor's tlsConfig.insecureSkipVerify accepts it; what matters
// is that a token never crosses the network in clear). HTTP/2 is off, as
// in kubebuilder's scaffolding, against HTTP/2's stream-reset floods
// (CVE-2023-44487); a scrape gains nothing from it.
func ServeMetrics(ctx context.Context, addr string, cfg *rest.Config, handler http.Handler, log *slog.Logger) error {
	if addr == "" || addr == "0" {
		return nil
	}
	auth, err := MetricsAuth(cfg, nil, log.With("path", "/metrics"), handler)
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKeyWithFixtures("localhost", []net.IP{{127, 0, 0, 1}}, nil, "")
	if err != nil {
		return fmt.Errorf("metrics server: self-signed certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("metrics server: self-signed key pair: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	// ALPN offers http/1.1 alone, so no client can negotiate h2.
	l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	mux := http.NewServeMux()
	mux.Handle("/metrics", auth)
	// The limits of controller-runtime's servers (its internal httpserver).
	srv := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return ctx },
		Handler:           mux,
		MaxHeaderBytes:    1 << 20,
		IdleTimeout:       90 * time.Second,
		ReadHeaderTimeout: 32 * time.Second,
		// The server's own complaints are mostly failed handshakes from
		// port scanners and plain-HTTP probes of a port on the node's
		// network: noise, unless one is looking.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("serving metrics", "addr", l.Addr().String())
	if err := Serve(ctx, l, srv, time.Minute); err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// metricsAuth answers whether a metrics request may be served, asking the
// API server and remembering its answers for a while. Safe for
// concurrent use.
type metricsAuth struct {
	api *rest.RESTClient

	mu      sync.Mutex
	answers map[metricsKey]metricsAnswer
}

// newMetricsAuth returns a metricsAuth that asks the API server of cfg
// through hc (nil: a client made for cfg).
func newMetricsAuth(cfg *rest.Config, hc *http.Client) (*metricsAuth, error) {
	c := rest.CopyConfig(cfg)
	// The reviews are sent and read as JSON by hand (create); the
	// serializer is there because the REST client will not start
	// without one, and it decodes the metav1.Status of a failed request,
	// so that the error reads as the API server put it.
	c.APIPath, c.GroupVersion = "", nil
	c.ContentType, c.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	if hc == nil {
		var err error
		if hc, err = rest.HTTPClientFor(c); err != nil {
			return nil, fmt.Errorf("metrics auth client: %w", err)
		}
	}
	api, err := rest.UnversionedRESTClientForConfigAndClient(c, hc)
	if err != nil {
		return nil, fmt.Errorf("metrics auth client: %w", err)
	}
	return &metricsAuth{api: api, answers: map[metricsKey]metricsAnswer{}}, nil
}

// metricsKey is a request's token (hashed: the cache holds no credential),
// verb and path.
type metricsKey struct {
	token      [sha256.Size]byte
	verb, path string
}

type metricsAnswer struct {
	code  int
	until time.Time
}

// decide returns the HTTP status for r: 200 to serve it, 401 without a
// valid bearer token, 403 when the token's user may not verb the path,
// 500 when the API server could not tell (not remembered).
func (a *metricsAuth) decide(r *http.Request) (int, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return http.StatusUnauthorized, nil
	}
	k := metricsKey{token: sha256.Sum256([]byte(token)), verb: strings.ToLower(r.Method), path: r.URL.Path}
	now := time.Now()
	a.mu.Lock()
	ans, ok := a.answers[k]
	a.mu.Unlock()
	if ok && now.Before(ans.until) {
		return ans.code, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	code, err := a.review(ctx, token, k)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	ttl := metricsRefusedTTL
	if code == http.StatusOK {
		ttl = metricsAllowedTTL
	}
	a.mu.Lock()
	if len(a.answers) >= metricsCacheSize {
		clear(a.answers)
	}
	a.answers[k] = metricsAnswer{code: code, until: now.Add(ttl)}
	a.mu.Unlock()
	return code, nil
}

// review asks the API server who token is (TokenReview) and whether that
// user may k.verb k.path (SubjectAccessReview).
func (a *metricsAuth) review(ctx context.Context, token string, k metricsKey) (int, error) {
	tr := &authenticationv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: authenticationv1.SchemeGroupVersion.String(), Kind: "TokenReview"},
		Spec:     authenticationv1.TokenReviewSpec{Token: token},
	}
	if err := a.create(ctx, tokenReviewsPath, tr); err != nil {
		return 0, fmt.Errorf("create token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for key, v := range u.Extra {
		extra[key] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: authorizationv1.SchemeGroupVersion.String(), Kind: "SubjectAccessReview"},
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: k.path, Verb: k.verb},
		},
	}
	if err := a.create(ctx, subjectAccessReviewsPath, sar); err != nil {
		return 0, fmt.Errorf("create subject access review: %w", err)
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}

// create POSTs obj as JSON to path and reads the API server's answer
// (the review with its status filled in) back into obj.
func (a *metricsAuth) create(ctx context.Context, path string, obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	res := a.api.Post().AbsPath(path).SetHeader("Content-Type", runtime.ContentTypeJSON).Body(body).Do(ctx)
	// Error, unlike Raw, reads a failure's metav1.Status.
	if err := res.Error(); err != nil {
		return err
	}
	out, err := res.Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(out, obj)
}
