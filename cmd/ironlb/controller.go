//go:build !ironlb_speaker

package main

import (
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/controller"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/version"
)

func newControllerCommand() *cobra.Command {
	var (
		opts       controller.Options
		kubeconfig string
		qps        float32
		burst      int
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Assign IPs to LoadBalancer Services",
		Long: `The controller gives each Service of type LoadBalancer its IPs from the
configured pools (IPPool objects and the legacy MetalLB-format ConfigMap),
writes them to the Service's status, and says why in a condition and an
event when it cannot.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			// controller-runtime's global logger, which it complains
			// about with a stack trace when unset.
			ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
			opts.Logger = log
			defaultGCPercent(controllerGCPercent)
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = qps, burst
			c, err := controller.New(cfg, opts)
			if err != nil {
				return err
			}
			log.Info("controller starting", "version", version.Version, "namespace", opts.Namespace,
				"configMap", opts.ConfigMapName, "leaderElection", opts.LeaderElection)
			return c.Run(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then in-cluster config)")
	f.StringVar(&opts.Namespace, "namespace", kube.DefaultNamespace, "namespace of the legacy ConfigMap and the leader-election Lease")
	f.StringVar(&opts.ConfigMapName, "config-map", "config", "name of the legacy MetalLB-format ConfigMap (the installed Roles allow reading \"config\" only)")
	f.StringVar(&opts.MemberlistSecret, "memberlist-secret", kube.DefaultMemberlistSecret, "Secret in --namespace holding the speakers' memberlist key, created if missing (the installed Roles name \"ironlb-memberlist\")")
	f.StringVar(&opts.LoadBalancerClass, "load-balancer-class", v1alpha1.DefaultLoadBalancerClass, "spec.loadBalancerClass served besides Services with none")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "take a Lease before assigning, so only one replica allocates")
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":7472", "Prometheus metrics listen address, HTTPS for callers allowed get /metrics (\"0\" disables)")
	f.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":7473", "healthz/readyz listen address (\"0\" disables)")
	f.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "net/http/pprof listen address, e.g. 127.0.0.1:7474 (\"\" disables; profiles expose memory, keep it on localhost)")
	f.IntVar(&opts.Workers, "workers", 16, "Services reconciled in parallel")
	f.Float32Var(&qps, "kube-api-qps", 200, "client-side limit on API requests per second")
	f.IntVar(&burst, "kube-api-burst", 400, "client-side burst of API requests")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// controllerGCPercent is the controller's GOGC unless $GOGC sets one.
//
// Most of the controller's heap is long-lived and grows with the cluster:
// a record per Service and the allocator's state. Its garbage is the
// decoding and the API requests of each event, a few KiB each, whatever
// the cluster's size. Go's default of 100 lets the heap grow to twice what
// is live before it collects, so the room it leaves for garbage grows with
// the number of Services although the garbage does not: at 10,000
// Services that room was 13 MiB, a fifth of the process's RSS. At 25 the
// collector runs more often (218 collections instead of 63 in the
// 10,000-Service burst of test/bench/burst) over the same live heap: it
// took about 3 s of the controller's 21 s of CPU there, some 2 s more
// than at 100, for 11 MiB less RSS.
const controllerGCPercent = 25
