package main

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
	"github.com/ironlb/ironlb/internal/kube"
)

// severity is a check's verdict. Only sevFail makes doctor exit non-zero.
type severity int

const (
	sevOK severity = iota
	sevWarn
	sevFail
)

func (s severity) String() string {
	switch s {
	case sevOK:
		return "OK"
	case sevWarn:
		return "WARN"
	case sevFail:
		return "FAIL"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// finding is one line of doctor's report.
type finding struct {
	Check    string // "kube-proxy", "pools", ...
	Severity severity
	Message  string
	Fix      string // what to do; shown for WARN and FAIL
}

// diagnose judges the facts. It does no I/O, so every verdict is tested
// without a cluster.
func diagnose(f clusterFacts) []finding {
	var out []finding
	for _, check := range []func(clusterFacts) []finding{
		checkKubernetes, checkKubeProxy, checkPools, checkSpeakers, checkController, checkMetalLB, checkMemberlist, checkConfig, checkServices, checkLayer2,
	} {
		out = append(out, check(f)...)
	}
	return out
}

func checkKubeProxy(f clusterFacts) []finding {
	const check = "kube-proxy"
	where := kubeProxyNamespace + "/" + kubeProxyConfigMap
	switch {
	case f.KubeProxyErr != nil:
		return []finding{{check, sevWarn, fmt.Sprintf("cannot read ConfigMap %s: %v", where, f.KubeProxyErr),
			"run doctor as a user who may read ConfigMaps in " + kubeProxyNamespace}}
	case f.KubeProxy == nil:
		return []finding{{check, sevWarn, fmt.Sprintf("kube-proxy not found (another CNI replaces it?): no ConfigMap %s", where),
			"nothing to do if a kube-proxy replacement (such as Cilium's) handles Services; if kube-proxy runs in IPVS mode with its configuration elsewhere, turn strict ARP on there (--ipvs-strict-arp)"}}
	}
	conf, ok := f.KubeProxy.Data[kubeProxyKey]
	if !ok {
		return []finding{{check, sevWarn, fmt.Sprintf("ConfigMap %s has no %s key, so the mode and strictARP are unknown", where, kubeProxyKey),
			"if kube-proxy runs in IPVS mode, make sure ipvs.strictARP is true where its configuration lives"}}
	}
	kp, err := parseKubeProxyConfig(conf)
	if err != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("ConfigMap %s: %v", where, err), "check kube-proxy's configuration by hand"}}
	}
	switch kp.Mode {
	case "ipvs":
		if !kp.IPVS.StrictARP {
			return []finding{{check, sevFail, kubeProxySummary(kp) + ": every node answers ARP for every LoadBalancer IP, so Layer 2 clients reach whichever node answers last",
				fmt.Sprintf("%s doctor --fix (sets ipvs.strictARP: true in ConfigMap %s), then restart kube-proxy: kubectl -n %s rollout restart daemonset %s",
					f.CLI, where, kubeProxyNamespace, kubeProxyConfigMap)}}
		}
	case "", "iptables", "nftables":
	default:
		return []finding{{check, sevWarn, fmt.Sprintf("mode %q, which doctor does not know", kp.Mode), "make sure this mode does not answer ARP for Service IPs on every node"}}
	}
	return []finding{{check, sevOK, kubeProxySummary(kp), ""}}
}

func kubeProxySummary(kp kubeProxyConfig) string {
	switch kp.Mode {
	case "ipvs":
		return fmt.Sprintf("mode ipvs with ipvs.strictARP: %t", kp.IPVS.StrictARP)
	case "":
		return "mode not set (iptables, the Linux default): strictARP does not apply"
	}
	return fmt.Sprintf("mode %s: strictARP does not apply", kp.Mode)
}

// nodeAddr is an address a node owns, for the overlap checks.
type nodeAddr struct {
	node, kind string // kind: InternalIP, ExternalIP
	addr       netip.Addr
}

type nodePrefix struct {
	node   string
	prefix netip.Prefix
}

// checkPools looks for pool addresses the cluster already uses: a node's
// own address (ironlb would hand it to a Service and the node's ARP
// replies would fight the announcement), a pod CIDR (the CNI routes it to
// pods) or the service CIDR (kube-proxy treats it as a ClusterIP).
func checkPools(f clusterFacts) []finding {
	const check = "pools"
	if f.InputErr != nil {
		return nil // checkConfig reports it
	}
	cfg, _ := config.Build(f.Input, nil)
	if len(cfg.Pools) == 0 {
		return []finding{{check, sevWarn, "no address pool is configured: LoadBalancer Services get no address",
			fmt.Sprintf("create an IPPool, or convert MetalLB's configuration: %s convert -f FILE | kubectl apply -f -", f.CLI)}}
	}
	var out []finding
	if f.NodesErr != nil {
		out = append(out, finding{check, sevWarn, fmt.Sprintf("cannot list nodes, so pools were not checked against node addresses and pod CIDRs: %v", f.NodesErr), "run doctor as a user who may list nodes"})
	}
	if f.ServiceCIDRErr != nil {
		out = append(out, finding{check, sevWarn, fmt.Sprintf("cannot find the service CIDR, so pools were not checked against it: %v", f.ServiceCIDRErr), ""})
	}
	var addrs []nodeAddr
	var podCIDRs []nodePrefix
	for _, n := range f.Nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				addrs = append(addrs, nodeAddr{n.Name, string(a.Type), ip.Unmap()})
			}
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, s := range cidrs {
			if p, err := netip.ParsePrefix(s); err == nil {
				podCIDRs = append(podCIDRs, nodePrefix{n.Name, p.Masked()})
			}
		}
	}
	svcNote := ""
	if f.ServiceCIDRGuess {
		svcNote = " (a guess: the API server serves no ServiceCIDR objects, so this is the /12 around the kubernetes Service's clusterIP)"
	}

	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		p := cfg.Pools[name]
		label, edit := poolLabel(p)
		written := writtenEntries(f.Input, p)
		for i, r := range p.Ranges {
			entry := r.String() // as the controller writes ranges in its messages
			if i < len(written) {
				entry = written[i]
			}
			var hits []string
			var taken []netip.Addr
			for _, a := range addrs {
				if r.Contains(a.addr) {
					hits = append(hits, fmt.Sprintf("%s (%s of node %s)", a.addr, a.kind, a.node))
					taken = append(taken, a.addr)
				}
			}
			if len(hits) > 0 {
				fix := "take them out of the pool"
				if rest := subtract(r, taken); len(rest) <= 8 {
					fix = "take them out of the pool: write " + strings.Join(rest, ", ") + " instead of " + entry
					if len(rest) == 0 {
						fix = "remove " + entry + " from the pool"
					}
				}
				out = append(out, finding{check, sevFail,
					fmt.Sprintf("%s: %s contains node addresses: %s; ironlb could give a node's own address to a Service", label, entry, strings.Join(hits, ", ")),
					fix + ": " + edit})
			}
			hits = hits[:0]
			for _, pc := range podCIDRs {
				if overlaps(r, pc.prefix) {
					hits = append(hits, fmt.Sprintf("%s (node %s)", pc.prefix, pc.node))
				}
			}
			if len(hits) > 0 {
				out = append(out, finding{check, sevFail,
					fmt.Sprintf("%s: %s overlaps pod CIDRs: %s; traffic to those Service addresses would be routed to pods", label, entry, strings.Join(hits, ", ")),
					"use addresses outside the pod network: " + edit})
			}
			for _, sc := range f.ServiceCIDRs {
				if overlaps(r, sc) {
					sev := sevFail
					if f.ServiceCIDRGuess {
						sev = sevWarn
					}
					out = append(out, finding{check, sev,
						fmt.Sprintf("%s: %s overlaps the service CIDR %s%s; kube-proxy treats those addresses as ClusterIPs", label, entry, sc, svcNote),
						"use addresses outside the service CIDR: " + edit})
				}
			}
		}
	}
	if len(out) == 0 {
		var svc []string
		for _, p := range f.ServiceCIDRs {
			svc = append(svc, p.String())
		}
		out = append(out, finding{check, sevOK, fmt.Sprintf("%s clear of %s, %s and the service CIDR %s%s",
			plural(len(cfg.Pools), "pool"), plural(len(addrs), "node address"), plural(len(podCIDRs), "pod CIDR"),
			cmp.Or(strings.Join(svc, ", "), "(unknown)"), svcNote), ""})
	}
	return out
}

// poolLabel names a pool as the operator knows it, and says how to edit it.
func poolLabel(p *config.Pool) (label, edit string) {
	if p.Source.Kind == "ConfigMap" {
		return fmt.Sprintf("pool %s (%s)", p.Name, p.Source),
			fmt.Sprintf("kubectl -n %s edit configmap %s", p.Source.Namespace, p.Source.Name)
	}
	return p.Source.String(), "kubectl edit ippool " + p.Name
}

// writtenEntries returns an IPPool's spec.addresses as the operator wrote
// them (Pool.Ranges are in the same order), or nil for a legacy pool.
func writtenEntries(in config.Input, p *config.Pool) []string {
	if p.Source.Kind != "IPPool" {
		return nil
	}
	for _, o := range in.Pools {
		if o.Name == p.Name && len(o.Spec.Addresses) == len(p.Ranges) {
			return o.Spec.Addresses
		}
	}
	return nil
}

// overlaps reports whether range r and prefix p share an address.
func overlaps(r ipam.Range, p netip.Prefix) bool {
	pr, err := ipam.ParseRange(p.String())
	return err == nil && r.Overlaps(pr)
}

// subtract returns what is left of r without the addresses in taken (all
// inside r), as pool entries.
func subtract(r ipam.Range, taken []netip.Addr) []string {
	taken = slices.Clone(taken)
	slices.SortFunc(taken, netip.Addr.Compare)
	taken = slices.Compact(taken)
	var out []string
	from := r.From
	for _, a := range taken {
		if from.Less(a) {
			out = append(out, ipam.Range{From: from, To: a.Prev()}.String())
		}
		from = a.Next()
		if !from.IsValid() || r.To.Less(from) {
			return out
		}
	}
	return append(out, ipam.Range{From: from, To: r.To}.String())
}

func checkSpeakers(f clusterFacts) []finding {
	const check = "speakers"
	if f.PodsErr != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("cannot list ironlb's pods in namespace %s: %v", f.Namespace, f.PodsErr), "run doctor as a user who may list pods there"}}
	}
	if len(f.Speakers) == 0 {
		return []finding{{check, sevFail,
			fmt.Sprintf("speaker not installed: no pod labelled %s=%s in namespace %s, so no node announces any address", componentLabel, speakerComponent, f.Namespace),
			"install ironlb (kubectl apply -f dist/ironlb.yaml); if it runs in another namespace, pass --namespace"}}
	}
	if f.NodesErr != nil {
		return nil // checkPools reports it
	}
	var out []finding
	good := 0
	for _, n := range f.Nodes {
		var pods []corev1.Pod
		for _, p := range f.Speakers {
			if p.Spec.NodeName == n.Name {
				pods = append(pods, p)
			}
		}
		if slices.ContainsFunc(pods, podReady) {
			good++
			continue
		}
		what := fmt.Sprintf("node %s has no speaker pod", n.Name)
		fix := fmt.Sprintf("the speaker DaemonSet does not run there: compare its nodeSelector and tolerations with the node's labels and taints (kubectl -n %s get daemonset -l %s=%s -o yaml; kubectl describe node %s)",
			f.Namespace, componentLabel, speakerComponent, n.Name)
		if len(pods) > 0 {
			what = fmt.Sprintf("speaker pod %s on node %s is not ready (%s)", pods[0].Name, n.Name, podProblem(pods[0]))
			fix = fmt.Sprintf("kubectl -n %s describe pod %s; kubectl -n %s logs %s", f.Namespace, pods[0].Name, f.Namespace, pods[0].Name)
		}
		if !kube.NodeReady(&n) {
			out = append(out, finding{check, sevWarn, fmt.Sprintf("%s; the node is not Ready, and a node that is not Ready announces nothing anyway", what), "bring the node back, or remove it"})
			continue
		}
		out = append(out, finding{check, sevFail, what + ": ironlb cannot announce addresses from it", fix})
	}
	if len(out) == 0 {
		out = append(out, finding{check, sevOK, fmt.Sprintf("a ready speaker on each of the %s", plural(good, "node")), ""})
	}
	return out
}

func checkController(f clusterFacts) []finding {
	const check = "controller"
	if f.PodsErr != nil {
		return nil // checkSpeakers reports it
	}
	if len(f.Controllers) == 0 {
		return []finding{{check, sevFail,
			fmt.Sprintf("controller not running: no pod labelled %s=%s in namespace %s, so no Service gets an address", componentLabel, controllerComponent, f.Namespace),
			"install ironlb (kubectl apply -f dist/ironlb.yaml); if it runs in another namespace, pass --namespace"}}
	}
	var ready []string
	for _, p := range f.Controllers {
		if podReady(p) {
			ready = append(ready, p.Name)
		}
	}
	if len(ready) == 0 {
		p := f.Controllers[0]
		return []finding{{check, sevFail, fmt.Sprintf("controller pod %s is not ready (%s), so no Service gets an address", p.Name, podProblem(p)),
			fmt.Sprintf("kubectl -n %s describe pod %s; kubectl -n %s logs %s", f.Namespace, p.Name, f.Namespace, p.Name)}}
	}
	return []finding{{check, sevOK, "ready: " + strings.Join(ready, ", "), ""}}
}

func checkMetalLB(f clusterFacts) []finding {
	const check = "metallb"
	convert := fmt.Sprintf("kubectl -n metallb-system get configmap config -o yaml | %s convert | kubectl apply -f -", f.CLI)
	switch {
	case len(f.MetalLBPods) > 0:
		var names []string
		for _, p := range f.MetalLBPods {
			names = append(names, p.Name)
		}
		return []finding{{check, sevFail,
			fmt.Sprintf("MetalLB is running (%s in namespace metallb-system): two load balancers would assign and announce addresses for the same Services", strings.Join(names, ", ")),
			fmt.Sprintf("convert its configuration (%s convert), then uninstall MetalLB the way it was installed (kubectl delete -f its manifest, or helm uninstall)", f.CLI)}}
	case f.MetalLBConfig:
		return []finding{{check, sevWarn,
			fmt.Sprintf("ConfigMap metallb-system/config holds MetalLB configuration, which ironlb does not read (it reads %s)", f.ConfigMap),
			"convert it: " + convert}}
	}
	return []finding{{check, sevOK, "MetalLB is not running", ""}}
}

func checkConfig(f clusterFacts) []finding {
	const check = "config"
	if f.InputErr != nil {
		if meta.IsNoMatchError(f.InputErr) {
			return []finding{{check, sevFail, "ironlb's CRDs are not installed (no ironlb.io resources on the API server)", "install ironlb (kubectl apply -f dist/ironlb.yaml)"}}
		}
		return []finding{{check, sevWarn, fmt.Sprintf("cannot read ironlb's configuration: %v", f.InputErr), "run doctor as a user who may read ironlb.io objects"}}
	}
	in := f.Input
	_, problems := config.Build(in, nil)
	var out []finding
	reported := map[config.ObjectRef]bool{}
	for _, p := range problems {
		reported[p.Object] = true
		sev := sevFail
		if p.Outcome == config.Warning {
			sev = sevWarn
		}
		out = append(out, finding{check, sev, p.Error(), editCommand(p.Object)})
	}
	// The controller's word, for what a fresh Build cannot see (a last
	// valid version it keeps in force, for one).
	type conditioned struct {
		ref   config.ObjectRef
		conds []metav1.Condition
	}
	var objs []conditioned
	for _, o := range in.Pools {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "IPPool", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range in.L2 {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "L2Announcement", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range in.BGPPeers {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "BGPPeer", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range in.BGPAnnouncements {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "BGPAnnouncement", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range in.BFDProfiles {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "BFDProfile", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range in.Reservations {
		objs = append(objs, conditioned{config.ObjectRef{Kind: "IPReservation", Name: o.Name}, o.Status.Conditions})
	}
	for _, o := range objs {
		c := meta.FindStatusCondition(o.conds, v1alpha1.ConditionValid)
		if c != nil && c.Status == metav1.ConditionFalse && !reported[o.ref] {
			out = append(out, finding{check, sevFail, fmt.Sprintf("%s: Valid=False (%s): %s", o.ref, c.Reason, c.Message), editCommand(o.ref)})
		}
	}
	if len(out) == 0 {
		n := len(objs)
		if in.ConfigMap != nil {
			n++
		}
		msg := "no configuration objects"
		if n > 0 {
			msg = plural(n, "configuration object") + ", all valid"
		}
		out = append(out, finding{check, sevOK, msg, ""})
	}
	return out
}

// editCommand is the kubectl command that opens ref in an editor.
func editCommand(ref config.ObjectRef) string {
	if ref.Namespace != "" {
		return fmt.Sprintf("kubectl -n %s edit %s %s", ref.Namespace, strings.ToLower(ref.Kind), ref.Name)
	}
	return fmt.Sprintf("kubectl edit %s %s", strings.ToLower(ref.Kind), ref.Name)
}

func checkServices(f clusterFacts) []finding {
	const check = "services"
	if f.InputErr != nil {
		return nil // checkConfig reports it
	}
	if f.ServicesErr != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("cannot list Services: %v", f.ServicesErr), "run doctor as a user who may list Services"}}
	}
	var out []finding
	for _, r := range f.Services {
		svc := r.Namespace + "/" + r.Name
		switch r.State {
		case "Pending":
			out = append(out, finding{check, sevFail, fmt.Sprintf("%s is pending (%s): %s", svc, r.Reason, r.Message), serviceFix(f.CLI, r)})
		case "Unknown":
			out = append(out, finding{check, sevWarn, svc + " has no answer from the ironlb controller yet",
				fmt.Sprintf("check that the controller runs; kubectl -n %s describe service %s", r.Namespace, r.Name)})
		}
	}
	if len(out) == 0 {
		msg := "no LoadBalancer Services"
		if len(f.Services) > 0 {
			msg = plural(len(f.Services), "LoadBalancer Service") + ", all with their addresses"
		}
		out = append(out, finding{check, sevOK, msg, ""})
	}
	return out
}

// serviceFix says what to do about a pending Service, by its reason.
func serviceFix(cli string, r statusRow) string {
	expose := fmt.Sprintf("%s expose svc/%s -n %s", cli, r.Name, r.Namespace)
	switch r.Reason {
	case v1alpha1.ReasonIPInUse, v1alpha1.ReasonBuggyIP, v1alpha1.ReasonNotInPool, v1alpha1.ReasonPoolNotAllowed:
		return fmt.Sprintf("ask for a free address (see above): %s --ip ADDRESS, or drop the request to take any free one", expose)
	case v1alpha1.ReasonUnknownPool:
		return fmt.Sprintf("name an existing pool: %s --pool POOL", expose)
	case v1alpha1.ReasonPoolExhausted:
		return "add addresses to the pool, or free some"
	case v1alpha1.ReasonNoPool:
		return "create an IPPool (or the legacy ConfigMap) that serves namespace " + r.Namespace
	case v1alpha1.ReasonInvalidRequest:
		return fmt.Sprintf("fix the Service's request as the message says: kubectl -n %s edit service %s", r.Namespace, r.Name)
	}
	return fmt.Sprintf("kubectl -n %s describe service %s", r.Namespace, r.Name)
}

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podProblem says in a few words why a pod is not ready.
func podProblem(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return fmt.Sprintf("%s: %s", cs.Name, w.Reason)
		}
	}
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	if p.Status.Phase == corev1.PodRunning {
		return "running, readiness probe failing"
	}
	return "phase " + cmp.Or(string(p.Status.Phase), "unknown")
}

// plural counts things: "1 pool", "2 pools", "2 node addresses".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
