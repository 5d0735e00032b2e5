//go:build !ironlb_controller && !ironlb_speaker

package main

import "github.com/spf13/cobra"

// daemons are the commands this binary runs: both daemons. The controller's
// image is built with the tag ironlb_controller instead (see
// controller_only.go).
func daemons() []*cobra.Command {
	return []*cobra.Command{newControllerCommand(), newSpeakerCommand()}
}
