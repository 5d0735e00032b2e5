// Command nologic is the reference allocator of the controller benchmark
// (test/bench/burst): a watch on Services and parallel writers that put the
// next address of a prefix into each LoadBalancer Service's status, with no
// config, no validation, no sharing checks and no cache. What it achieves
// is what the API server allows on the machine; ironlb is measured against
// it. It is test code: it never frees an address and wraps around at the
// prefix's end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file")
	writers := flag.Int("writers", 16, "parallel status writers")
	prefix := flag.String("prefix", "198.18.0.0/15", "addresses to hand out (IPv4)")
	qps := flag.Float64("kube-api-qps", 200, "client-side limit on API requests per second")
	burst := flag.Int("kube-api-burst", 400, "client-side burst of API requests")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *kubeconfig, *prefix, *writers, float32(*qps), *burst); err != nil {
		log.Error("nologic failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, kubeconfig, prefix string, writers int, qps float32, burst int) error {
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("-prefix %q: want an IPv4 CIDR", prefix)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}

	// No cache: every Service the watch shows without an address goes
	// straight to a writer, with the resourceVersion it was seen at. Should
	// a newer version exist, the write conflicts and the watch brings that
	// version too. Memory therefore does not grow with the Service count.
	work := make(chan *corev1.Service, 1024)
	base := pfx.Masked().Addr().As4()
	size := uint32(1) << (32 - pfx.Bits())
	first := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	var next atomic.Uint32
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(work)
	for range writers {
		wg.Go(func() {
			for s := range work {
				n := first + (next.Add(1)-1)%size
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()}}
				if _, err := cs.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
					log.Warn("update status", "service", s.Namespace+"/"+s.Name, "error", err)
				}
			}
		})
	}
	needs := func(s *corev1.Service) bool {
		return s.Spec.Type == corev1.ServiceTypeLoadBalancer && len(s.Status.LoadBalancer.Ingress) == 0
	}

	list, err := cs.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Services(metav1.NamespaceAll).Watch(ctx, o)
		},
	})
	if err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	defer rw.Stop()
	log.Info("ready", "writers", writers)
	for i := range list.Items {
		if needs(&list.Items[i]) {
			work <- &list.Items[i]
		}
	}
	list = nil
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-rw.ResultChan():
			if !ok {
				return errors.New("watch ended")
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if s, ok := ev.Object.(*corev1.Service); ok && needs(s) {
					work <- s
				}
			case watch.Error:
				return fmt.Errorf("watch services: %w", apierrors.FromObject(ev.Object))
			}
		}
	}
}
