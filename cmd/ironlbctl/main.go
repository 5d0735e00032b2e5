// Command ironlbctl is the operator's tool for ironlb: it checks
// prerequisites, shows who announces what, exposes Services and converts
// MetalLB configuration. It also works as the kubectl plugin `kubectl ironlb`.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/version"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ironlbctl:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "ironlbctl",
		Short:         "Operate ironlb, the bare-metal Kubernetes load balancer",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, ~/.kube/config, then in-cluster)")
	pf.StringVarP(&g.namespace, "namespace", "n", "ironlb-system", "namespace ironlb runs in (holds the legacy ConfigMap)")
	pf.StringVar(&g.configMap, "config-map", "config", "name of the legacy MetalLB-format ConfigMap")
	root.AddCommand(newStatusCommand(&g))
	return root
}
