// Package labkube makes a lab (internal/labnet) a real Kubernetes cluster:
// kube-controller-manager and kube-scheduler beside the lab's API server,
// and real nodes, each a lab host running containerd, a kubelet and
// kube-proxy in its network namespace (see design/LAB.md, "Real nodes").
// Deployments, DaemonSets, EndpointSlices, ServiceAccount tokens and Node
// health are then Kubernetes' own, and pods are real containers.
//
// # Nodes
//
// Every node has its own containerd (root, state, socket and runc state in
// /var/lib/ironlb-lab/SUFFIX/node-N), its own kubelet root and pod logs
// there too, and its own cgroup root, "/ironlb-lab-SUFFIX-node-N" in every
// cgroup hierarchy. The kubelet registers the lab's Node object with the
// host's LAN addresses. Pods get addresses from the node's pod CIDR,
// 10.244.N.0/24 (PodNetwork), on a bridge "cni0" in the node's namespace
// (the CNI bridge and host-local plugins from Debian's
// containernetworking-plugins); every node routes the other nodes' pod
// CIDRs over the LAN, so pods reach each other across nodes, and so does
// the cp host. kube-proxy runs from the cluster's ConfigMap
// kube-system/kube-proxy (kubeadm's layout: a KubeProxyConfiguration in
// key config.conf, which `ironlbctl doctor` reads), in nftables mode (the
// kernel here has no IPVS), and masquerades traffic from outside the pod
// network to Services, so a LAN client routed to any node reaches every
// endpoint. Each node routes the service CIDR onto the LAN, as a default
// route would, so that host-network pods reach ClusterIPs.
//
// Pods reach the API server at the kubernetes Service's ClusterIP, as in
// any cluster: the API server advertises a second address of the cp host
// and serves there a certificate for the ClusterIP, from a CA that
// kube-controller-manager publishes to the pods (see apiservice.go).
//
// Options.NodeMonitorGracePeriod shortens how long a dead node's pods stay
// in their Services' endpoints; Node.Crash kills a node the way a power
// cut does.
//
// containerd runs in a mount namespace of the node's own, a copy of the
// test's (the private one `ip netns exec` makes has a fresh /sys that
// hides the cgroup hierarchies) that receives the machine's mounts but
// keeps its own; the kubelet and the shims join it. Root filesystems,
// volumes and pinned pod network namespaces are mounted there and vanish
// with it. The kubelet insists on six kernel tunables that no namespace
// isolates (vm.overcommit_memory, kernel.panic_on_oops, ...); in the
// node's mount namespace, files holding the values it wants are bound
// over them, so the machine's stay as they are.
//
// # Images
//
// Nothing is pulled. The pod sandbox (PauseImage) and an HTTP server that
// answers with its pod's name (HelloImage) are built here from images/ as
// static Go binaries, written as OCI archives and imported into every
// node's containerd; Node.ImportImage imports others (ironlb's). Pods use
// them with imagePullPolicy Never or IfNotPresent.
//
// # Credentials
//
// Every component uses the lab's admin kubeconfig (system:masters). The
// API server runs with ServiceAccount admission, so pods get projected
// ServiceAccount tokens; TaintNodesByCondition stays off as in every lab.
//
// # Cleanup
//
// Cluster.Close stops the controllers, deletes every pod and lets the
// kubelets tear them down through the CRI, then stops each node by PID and
// removes what is left: containers through ctr, shims and container
// processes (by PID, found by their containerd socket and cgroup root),
// pinned pod network namespace files, cgroups, the kubelet's log links,
// the CNI cache entries and shim sockets of its sandboxes, and the node's
// directory; mounts vanish with the node's mount namespace. Close the
// Cluster before the lab. A run killed outright loses containerd, the
// kubelet and kube-proxy (they have the lab's parent-death signal), but
// leaves the shims with their containers, the cgroups and the node
// directories under /var/lib/ironlb-lab: nothing sweeps those yet.
package labkube
