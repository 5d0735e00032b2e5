// Package routerctl talks to the lab's routing daemons over their control
// sockets, as their own command-line tools do: FRR's vty sockets with
// vtysh's protocol (VTY) and BIRD's control socket with birdc's (BIRD).
//
// The benchmarks poll the router every few tens of milliseconds; a vtysh
// or birdc process per poll (internal/labnet's FRR.VTY and BIRD.Command,
// through `ip netns exec`) takes 200-300 ms on this machine kind, which
// would make the polls, not the daemon, the figure. Unix sockets are
// reached by path, so a benchmark outside the router's network namespace
// can use them. Neither type is safe for concurrent use.
package routerctl
