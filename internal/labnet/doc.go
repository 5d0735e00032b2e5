// Package labnet gives a test a lab network: a whole bare-metal LAN on one
// Linux machine, out of network namespaces, for ironlb's tests, benchmarks
// and demo (see design/LAB.md). It runs no ironlb component:
// internal/labcluster does, on top of it.
//
// A Lab is a bridge "lan" inside a switch namespace plus one namespace per
// host: cp (the control plane), node-1..N and client, each wired to the
// bridge by a veth and numbered in 198.51.100.0/24 and 2001:db8:1::/64. The
// lab never creates, changes or sends through anything in the caller's own
// (root) network namespace: every link, address and socket lives in a
// namespace the lab created, and there are no default routes, so no packet
// can leave the lab.
//
// # Names
//
// Every namespace is named "ironlb-<suffix>-<host>", where the suffix is a
// random six-hex-digit string reserved by an O_EXCL marker file under
// /run/ironlb-lab, so parallel labs (in one process or many) never collide.
// Interface names need no suffix: they only ever exist inside the lab's own
// namespaces ("lan" and one port per host in the switch, "eth0" in each
// host), so they cannot clash with the machine's or another lab's, and they
// stay within the kernel's 15-byte limit.
//
// # Cleanup
//
// Close stops every process and server the lab started (by PID, never by
// name) and deletes its namespaces, which takes their veths and the bridge
// with them. New installs a SIGINT/SIGTERM handler that closes every open lab
// and then re-raises the signal, so Ctrl-C during `go test` leaves nothing
// behind. A run killed outright (SIGKILL, a `go test -timeout` panic) cannot
// clean up; its processes die with it (they are started with a parent-death
// signal) and the next New, or an explicit Sweep, deletes its namespaces once
// the marker file shows that the owning process is gone.
//
// # Link state
//
// A link that has just come up drops every packet until the kernel's
// deferred link-watch work has run, which can take up to a second on a busy
// machine. New and Host.LinkUp therefore wait until every link they brought
// up reports operational state UP and a frame sent from the host has crossed
// the bridge (a broadcast of EtherType 0x88b5, which hosts ignore); without
// that, a test's first ARP request would vanish and the client would only
// retry a second later.
//
// # Control plane
//
// Lab.StartControlPlane runs etcd and kube-apiserver (from `make tools`)
// inside cp, with ironlb's CRDs and a Ready Node object per node, and no
// controller-manager, scheduler or kubelet. Programs in any host reach it
// through ControlPlane.Kubeconfig; the test process, which lives outside
// every lab namespace, through ControlPlane.Config, whose connections start
// inside cp.
//
// # Router
//
// Lab.AddRouter adds host "router" to the LAN (198.51.100.1, 2001:db8:1::1)
// with a second link to host "outside" (203.0.113.130, 2001:db8:2::2),
// which reaches the cluster only through it. Router.StartFRR and
// Router.StartBIRD run a real routing daemon there (Debian's frr and
// bird2), each instance with its own configuration, sockets and PID files
// under /run/ironlb-lab/SUFFIX.router, never the system-wide ones, so labs
// run in parallel; the daemon installs the (ECMP) routes it learns into the
// router's kernel table. Routes and Neighbors read its view back.
//
// # Namespaces and goroutines
//
// A network namespace belongs to an OS thread, not to a goroutine. Host.Do
// runs a function on a fresh goroutine locked to a thread that has entered
// the host's namespace, and restores the thread afterwards. Sockets keep the
// namespace they were created in, so a listener or connection made inside Do
// can be used from any goroutine afterwards; but goroutines started inside Do
// run in the caller's namespace, which is why helpers such as
// Host.DialContext create each socket inside Do. Go also maps IPv6 zone
// names ("fe80::1%eth0") to interface indexes through a process-wide cache
// that knows nothing of namespaces, so the lab avoids link-local sockets
// (NDPSolicit works on raw Ethernet frames) and so should tests.
package labnet
