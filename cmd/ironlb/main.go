// Command ironlb runs ironlb's two daemons: the controller, which gives
// LoadBalancer Services their IPs, and the speaker, which makes those IPs
// reachable from one node's network.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/version"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ironlb:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "ironlb",
		Short:         "Load balancer for bare-metal Kubernetes",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(daemons()...)
	return root
}
