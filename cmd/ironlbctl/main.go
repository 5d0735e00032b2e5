// Command ironlbctl is the operator's tool for ironlb: it checks
// prerequisites, shows who announces what, exposes Services and converts
// MetalLB configuration. It also works as the kubectl plugin `kubectl ironlb`.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/version"
)

func main() {
	root := newRootCommand()
	setDisplayName(root, os.Args[0])
	if err := root.Execute(); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
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
	pf.StringVarP(&g.namespace, "namespace", "n", kube.DefaultNamespace, "namespace ironlb runs in (holds the legacy ConfigMap)")
	pf.StringVar(&g.configMap, "config-map", kube.DefaultConfigMapName, "name of the legacy MetalLB-format ConfigMap")
	root.AddCommand(newStatusCommand(&g), newDoctorCommand(&g), newExposeCommand(&g), newReserveCommand(&g), newConvertCommand(&g))
	return root
}

// setDisplayName makes usage lines say `kubectl ironlb` when the binary
// runs as the kubectl plugin kubectl-ironlb (kubectl finds plugins by that
// file name on $PATH and runs them with it as argv[0]).
func setDisplayName(root *cobra.Command, argv0 string) {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if name, ok := strings.CutPrefix(base, "kubectl-"); ok {
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl " + strings.ReplaceAll(name, "_", "-")
	}
}

// exitCode is an error that only sets the exit status: the command has
// already told the user everything (doctor's report, expose's reason).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
