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
	return &cobra.Command{
		Use:           "ironlbctl",
		Short:         "Operate ironlb, the bare-metal Kubernetes load balancer",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
}
