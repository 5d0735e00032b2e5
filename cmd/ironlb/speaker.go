//go:build !ironlb_controller

package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	clientfeatures "k8s.io/client-go/features"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/speaker"
	"github.com/ironlb/ironlb/internal/version"
)

func newSpeakerCommand() *cobra.Command {
	var (
		opts       speaker.Options
		kubeconfig string
		interfaces string
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "speaker",
		Short: "Announce Service IPs from this node (ARP/NDP)",
		Long: `The speaker runs on every node. For each Service address in a Layer 2
pool, the speakers elect one owner among the live, Ready, eligible nodes;
the owner answers ARP (IPv4) and NDP (IPv6) for it with its interface's MAC
and announces it with gratuitous ARP / unsolicited neighbour advertisements
when it takes over. Liveness comes from memberlist gossip between the
speakers, so failover does not wait for the API server.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			opts.Logger = log
			defaultGCPercent(speakerGCPercent)
			clientfeatures.ReplaceFeatureGates(listGates{clientfeatures.FeatureGates()})
			if interfaces != "" {
				opts.Interfaces = strings.Split(interfaces, ",")
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = 50, 100
			ctx := signalContext()
			s, err := speaker.New(cfg, opts)
			if err != nil {
				return err
			}
			log.Info("speaker starting", "version", version.Version, "node", opts.NodeName, "namespace", opts.Namespace)
			return s.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then in-cluster config)")
	f.StringVar(&opts.Namespace, "namespace", kube.DefaultNamespace, "namespace of the legacy ConfigMap and the memberlist Secret")
	f.StringVar(&opts.ConfigMapName, "config-map", "config", "name of the legacy MetalLB-format ConfigMap (the installed Roles allow reading \"config\" only)")
	f.StringVar(&opts.LoadBalancerClass, "load-balancer-class", v1alpha1.DefaultLoadBalancerClass, "spec.loadBalancerClass served besides Services with none")
	f.StringVar(&opts.MemberlistBind, "memberlist-bind", "", "memberlist address: IP:PORT, :PORT (on the node's InternalIP), or off (default: the node's InternalIP, port 7946)")
	f.StringVar(&opts.SecretName, "memberlist-secret", kube.DefaultMemberlistSecret, "Secret in --namespace holding the memberlist encryption key (the controller creates it)")
	f.StringVar(&interfaces, "interfaces", "", "comma-separated interfaces to answer on (default: every LAN-like interface that is up and has an address)")
	f.DurationVar(&opts.HandoverGrace, "handover-grace", speaker.DefaultHandoverGrace, "on SIGTERM, how long to wait after leaving, with ARP/NDP answered by the new owners alone, before closing the BGP sessions and stopping")
	f.DurationVar(&opts.RebalanceInterval, "rebalance-interval", speaker.DefaultRebalanceInterval, "least time between two Layer 2 addresses moved to even out the addresses per node, each by a planned handover that loses no traffic; the first comes three of these after the membership or a node last changed (0: never rebalance)")
	f.DurationVar(&opts.RestartHold, "restart-hold", speaker.DefaultRestartHold, "on SIGTERM on a Ready node, how long the other speakers keep this node's Layer 2 addresses in place, answering ARP/NDP for them with this node's MACs, for the next speaker on the node to take them up (0: hand them over at once, moving them)")
	f.StringVar(&opts.KubeProxyHealthURL, "kube-proxy-health-url", speaker.DefaultKubeProxyHealthURL, "this node's kube-proxy health endpoint, polled every 150 ms: while it fails (3 polls in a row), the node announces nothing and its addresses move; \"off\" for a cluster without kube-proxy")
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":7474", "Prometheus metrics listen address, HTTPS for callers allowed get /metrics (\"0\" disables)")
	f.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":7475", "healthz/readyz listen address (\"0\" disables)")
	f.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "net/http/pprof listen address, e.g. 127.0.0.1:7476 (\"\" disables; profiles expose memory, keep it on localhost)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// speakerGCPercent is the speaker's GOGC unless $GOGC sets one.
//
// As in the controller (see controllerGCPercent), most of the speaker's
// heap is long-lived and grows with the cluster: its records of Services
// and EndpointSlices and GoBGP's routing table, some 17 MiB live at
// 10,000 BGP-announced Services. Go's default of 100 would let the heap
// grow to twice that before collecting, on every node of the cluster.
const speakerGCPercent = 25

// listGates are client-go's feature gates with WatchListClient off unless
// $KUBE_FEATURE_WatchListClient sets it.
//
// With WatchListClient (on by default since client-go 1.35) an informer
// receives its initial objects as a stream of watch events, which spares
// the API server a large list held in its memory, but costs it CPU per
// object: with three speakers starting against 10,000 Services and as many
// EndpointSlices, the API server spent 3.5-4.3 s of CPU against 1.1-1.9 s
// for plain lists, and the speakers 2.4 s each against 1.8 s
// (test/bench/bgpscale with KUBE_FEATURE_WatchListClient=false). Every
// node runs a speaker, so that cost is paid once per node whenever the
// speakers restart, by one API server. The lists are served from its watch
// cache all the same.
type listGates struct{ clientfeatures.Gates }

func (g listGates) Enabled(f clientfeatures.Feature) bool {
	if f == clientfeatures.WatchListClient {
		if _, set := os.LookupEnv("KUBE_FEATURE_WatchListClient"); !set {
			return false
		}
	}
	return g.Gates.Enabled(f)
}

// signalContext ends at the first SIGTERM or SIGINT, which starts the
// speaker's handover; a second one exits at once.
func signalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan os.Signal, 2)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-c
		cancel()
		<-c
		os.Exit(1)
	}()
	return ctx
}
