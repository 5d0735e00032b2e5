package kubecr

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
)

// Scheme returns a scheme with the core types and ironlb's CRDs.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail at run time
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Reader adapts c to kube.Reader. The objects kube reads are all typed
// API objects, which controller-runtime takes as client.Object and
// client.ObjectList; any other is an error, not a panic.
func Reader(c client.Reader) kube.Reader { return reader{c} }

type reader struct{ c client.Reader }

func (r reader) Get(ctx context.Context, key types.NamespacedName, obj runtime.Object) error {
	o, ok := obj.(client.Object)
	if !ok {
		return fmt.Errorf("get %T: not a client.Object", obj)
	}
	return r.c.Get(ctx, key, o)
}

func (r reader) List(ctx context.Context, list runtime.Object) error {
	l, ok := list.(client.ObjectList)
	if !ok {
		return fmt.Errorf("list %T: not a client.ObjectList", list)
	}
	return r.c.List(ctx, l)
}

// MetricsServer returns the options of the controller's metrics endpoint
// at addr ("0" disables it), which answers as the speaker's
// (kube.ServeMetrics) does: over HTTPS, with the certificate in
// controller-runtime's CertDir or a self-signed one, HTTP/1.1 only, to
// callers that kube.MetricsAuth lets through (401 without a token, 403
// with one not allowed to get /metrics). The controller's own
// ServiceAccount must be allowed to create TokenReviews and
// SubjectAccessReviews.
//
// HTTP/2 is off, as in kubebuilder's scaffolding, against HTTP/2's
// stream-reset floods (CVE-2023-44487); a scrape gains nothing from it.
func MetricsServer(addr string) metricsserver.Options {
	return metricsserver.Options{
		BindAddress:    addr,
		SecureServing:  true,
		FilterProvider: metricsAuthFilter,
		TLSOpts:        []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
}

// metricsAuthFilter is MetricsServer's FilterProvider: kube.MetricsAuth,
// logging to the logger controller-runtime gives the path, which the
// controller builds on its own slog handler.
func metricsAuthFilter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return kube.MetricsAuth(cfg, hc, slog.New(logr.ToSlogHandler(log)), next)
	}, nil
}
