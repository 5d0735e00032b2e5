//go:build ironlb_controller

package main

import "github.com/spf13/cobra"

// daemons, built with the tag ironlb_controller (bin/ironlb-controller,
// `make build`), is the controller alone. The speaker brings the BGP
// stack (GoBGP, gRPC, their protobuf tables), which the controller never
// runs but a binary holding it maps and initialises all the same: the
// controller's resident set was 13 MiB bigger with it (39 against 26 MiB
// of the binary resident, 52 against 38 MiB peak in a 2,000-Service
// burst; test/bench/burst). The command line is the same:
// `ironlb-controller controller [flags]`.
func daemons() []*cobra.Command {
	return []*cobra.Command{newControllerCommand()}
}
