//go:build ironlb_speaker

package main

import "github.com/spf13/cobra"

// daemons, built with the tag ironlb_speaker (bin/ironlb-speaker, `make
// build`, the image's /ironlb-speaker, which the DaemonSet runs), is the
// speaker alone. The controller brings controller-runtime and client-go's
// clientset, which register every API group of Kubernetes as the process
// starts: a binary holding them maps and touches their pages whether or
// not it runs the controller. The command line is the same:
// `ironlb-speaker speaker [flags]`.
func daemons() []*cobra.Command {
	return []*cobra.Command{newSpeakerCommand()}
}
