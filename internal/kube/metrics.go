package kube

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
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

// MetricsServer returns the options of a daemon's metrics endpoint at
// addr ("0" disables it). The speaker's listens on the node's network
// (hostNetwork), so metrics are served over HTTPS, with the certificate
// in controller-runtime's CertDir or a self-signed one, to callers whose
// bearer token the API server accepts (a TokenReview) and who may get the
// URL (a SubjectAccessReview on the non-resource URL, e.g. get /metrics,
// which MetricsReaderClusterRole grants): without a token the answer is
// 401, with a token not allowed 403. The daemon's own ServiceAccount must
// be allowed to create TokenReviews and SubjectAccessReviews.
//
// This is what controller-runtime's filters.WithAuthenticationAndAuthorization
// does; it is written here on client-go alone, since that filter brings in
// the whole of k8s.io/apiserver, which the daemons do not otherwise
// link. HTTP/2 is off, as in kubebuilder's scaffolding, against HTTP/2's
// stream-reset floods (CVE-2023-44487); a scrape gains nothing from it.
func MetricsServer(addr string) metricsserver.Options {
	return metricsserver.Options{
		BindAddress:    addr,
		SecureServing:  true,
		FilterProvider: metricsAuthFilter,
		TLSOpts:        []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
}

// metricsAuthFilter is MetricsServer's FilterProvider.
func metricsAuthFilter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationv1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationv1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	a := &metricsAuth{tokens: authn.TokenReviews(), reviews: authz.SubjectAccessReviews(), answers: map[metricsKey]metricsAnswer{}}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, err := a.decide(r)
			if err != nil {
				log.Error(err, "authenticate or authorize a metrics request")
			}
			if code != http.StatusOK {
				http.Error(w, http.StatusText(code), code)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

// metricsAuth answers whether a metrics request may be served, asking the
// API server and remembering its answers for a while. Safe for
// concurrent use.
type metricsAuth struct {
	tokens  authenticationv1client.TokenReviewInterface
	reviews authorizationv1client.SubjectAccessReviewInterface

	mu      sync.Mutex
	answers map[metricsKey]metricsAnswer
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
	tr, err := a.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for key, v := range u.Extra {
		extra[key] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.reviews.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: k.path, Verb: k.verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}
