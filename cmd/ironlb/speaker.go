package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSpeakerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "speaker",
		Short: "Announce Service IPs from this node (ARP/NDP or BGP)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("speaker: not implemented yet")
		},
	}
}
