package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/kube"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The speakers gossip with hashicorp/memberlist on each node's InternalIP,
// TCP and UDP, encrypted with an AES key kept in a Secret that the
// controller creates (kube.DefaultMemberlistSecret). The port mirrors
// election.DefaultPort, copied rather than imported to keep memberlist out
// of ironlbctl; a test checks they agree.
const (
	memberlistDefaultPort = 7946
	// speakerDaemonSet is the DaemonSet's name in dist/ironlb.yaml and the
	// chart, for fixes when doctor found none.
	speakerDaemonSet = "ironlb-speaker"
)

// memberlistFacts is what the memberlist check reads.
type memberlistFacts struct {
	// DaemonSet is ironlb's speaker DaemonSet (labelled
	// app.kubernetes.io/component=speaker in ironlb's namespace), nil if
	// there is none: doctor then assumes the speaker's defaults.
	DaemonSet    *appsv1.DaemonSet
	DaemonSetErr error

	// HostPods are the scheduled pods, not finished, that take ports on
	// their node's own network: hostNetwork pods, and pods with a hostPort
	// (whose traffic the CNI redirects to the pod).
	HostPods    []corev1.Pod
	HostPodsErr error

	// Secret is the memberlist key's Secret, nil if not found.
	Secret    *corev1.Secret
	SecretErr error

	// Reach is, for each node whose speaker holds a fresh registry Lease,
	// whether that speaker reaches a majority of the others over gossip
	// (kube.SpeakerLeases), read at gathering time.
	Reach    map[string]bool
	ReachErr error
}

// speakerLeaseDuration is the speakers' registry Lease duration, for a
// Lease that does not say (the speaker writes it).
const speakerLeaseDuration = 40 * time.Second

// speakerSettings is how the speaker DaemonSet runs memberlist, from its
// speaker container's flags.
type speakerSettings struct {
	// DaemonSet names the speaker DaemonSet, or where it would be
	// (ironlb-speaker in ironlb's namespace) when Found is false.
	DaemonSet types.NamespacedName
	Found     bool
	Bind      string // --memberlist-bind as written; "" means the default
	BindSet   bool   // --memberlist-bind appears in the command line
	Secret    types.NamespacedName
}

// settingsOf reads the memberlist flags from ds's speaker container (the
// one named "speaker", else the first); ns is ironlb's namespace, used
// when ds is nil or its --namespace is not a literal.
func settingsOf(ds *appsv1.DaemonSet, ns string) speakerSettings {
	s := speakerSettings{
		DaemonSet: types.NamespacedName{Namespace: ns, Name: speakerDaemonSet},
		Secret:    types.NamespacedName{Namespace: ns, Name: kube.DefaultMemberlistSecret},
	}
	if ds == nil {
		return s
	}
	s.DaemonSet, s.Found = client.ObjectKeyFromObject(ds), true
	s.Secret.Namespace = ds.Namespace // --namespace=$(POD_NAMESPACE) in our manifests
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return s
	}
	c := cs[0]
	if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == "speaker" }); i >= 0 {
		c = cs[i]
	}
	argv := append(slices.Clone(c.Command), c.Args...)
	s.Bind, s.BindSet = flagValue(argv, "memberlist-bind")
	if v, ok := flagValue(argv, "memberlist-secret"); ok && v != "" && !strings.Contains(v, "$(") {
		s.Secret.Name = v
	}
	if v, ok := flagValue(argv, "namespace"); ok && v != "" && !strings.Contains(v, "$(") {
		s.Secret.Namespace = v
	}
	return s
}

// flagValue finds --name=VALUE or --name VALUE in argv as pflag reads it:
// the last one wins, and "--" ends the flags.
func flagValue(argv []string, name string) (string, bool) {
	var val string
	found := false
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			break
		}
		switch {
		case strings.HasPrefix(a, "--"+name+"="):
			val, found = strings.TrimPrefix(a, "--"+name+"="), true
		case a == "--"+name && i+1 < len(argv):
			val, found = argv[i+1], true
			i++
		}
	}
	return val, found
}

// bindPort is the port a --memberlist-bind value makes memberlist use,
// as the speaker reads it: "" or port 0 is the default, "off" is no port.
func bindPort(bind string) (port uint16, off bool, err error) {
	switch {
	case bind == "":
		return memberlistDefaultPort, false, nil
	case bind == "off":
		return 0, true, nil
	case strings.Contains(bind, "$("):
		return 0, false, fmt.Errorf("it refers to an environment variable, which doctor does not expand")
	}
	if ap, err := netip.ParseAddrPort(bind); err == nil {
		return cmpPort(ap.Port()), false, nil
	}
	if p, ok := strings.CutPrefix(bind, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return 0, false, fmt.Errorf("bad port %q", p)
		}
		return cmpPort(uint16(n)), false, nil
	}
	return 0, false, fmt.Errorf("the speaker wants IP:PORT, :PORT or off")
}

func cmpPort(p uint16) uint16 {
	if p == 0 {
		return memberlistDefaultPort
	}
	return p
}

// gatherMemberlist reads the speaker DaemonSet, the pods on the nodes'
// networks and the memberlist Secret.
func gatherMemberlist(ctx context.Context, c client.Client, ns string) memberlistFacts {
	var m memberlistFacts
	var dss appsv1.DaemonSetList
	if err := c.List(ctx, &dss, client.InNamespace(ns), client.MatchingLabels{componentLabel: speakerComponent}); err != nil {
		m.DaemonSetErr = err
	} else if len(dss.Items) > 0 {
		m.DaemonSet = &dss.Items[0]
	}

	// Every pod, a page at a time, keeping only those on a node's network:
	// no field selector finds pods by hostPort.
	for cont := ""; ; {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.Limit(500), client.Continue(cont)); err != nil {
			m.HostPodsErr = err
			m.HostPods = nil
			break
		}
		for _, p := range pods.Items {
			if onNodeNetwork(p) {
				m.HostPods = append(m.HostPods, p)
			}
		}
		if cont = pods.Continue; cont == "" {
			break
		}
	}

	var leases coordinationv1.LeaseList
	if err := c.List(ctx, &leases, client.InNamespace(ns), client.MatchingLabels{componentLabel: speakerComponent}); err != nil {
		m.ReachErr = err
	} else {
		m.Reach = kube.SpeakerLeases(leases.Items, time.Now(), speakerLeaseDuration)
	}

	key := settingsOf(m.DaemonSet, ns).Secret
	var sec corev1.Secret
	switch err := c.Get(ctx, key, &sec); {
	case err == nil:
		m.Secret = &sec
	case !apierrors.IsNotFound(err):
		m.SecretErr = err
	}
	return m
}

// onNodeNetwork reports whether p holds ports on its node's network now.
func onNodeNetwork(p corev1.Pod) bool {
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	return p.Spec.HostNetwork || len(hostPorts(p, 0)) > 0
}

// hostPorts returns the protocols ("TCP", "UDP", "SCTP") on which p takes
// port on its node's network, or with port 0, any host port. Under
// hostNetwork a containerPort is the node's port; otherwise only a hostPort
// is.
func hostPorts(p corev1.Pod, port uint16) []string {
	var protos []string
	for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		for _, cp := range c.Ports {
			hp := cp.HostPort
			if p.Spec.HostNetwork && hp == 0 {
				hp = cp.ContainerPort
			}
			if hp == 0 || (port != 0 && hp != int32(port)) {
				continue
			}
			protos = append(protos, string(cmpProto(cp.Protocol)))
		}
	}
	slices.Sort(protos)
	return slices.Compact(protos)
}

func cmpProto(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// isMetalLB reports whether p is one of MetalLB's pods, by its namespace
// or the labels MetalLB's manifests and chart set.
func isMetalLB(p corev1.Pod) bool {
	return p.Namespace == "metallb-system" || p.Labels["app"] == "metallb" || p.Labels["app.kubernetes.io/name"] == "metallb"
}

func checkMemberlist(f clusterFacts) []finding {
	const check = "memberlist"
	m := f.Memberlist
	var out []finding
	if m.DaemonSetErr != nil {
		out = append(out, finding{check, sevWarn,
			fmt.Sprintf("cannot list DaemonSets in namespace %s, so the speaker's defaults are assumed: %v", f.Namespace, m.DaemonSetErr),
			"run doctor as a user who may list DaemonSets there"})
	}
	s := settingsOf(m.DaemonSet, f.Namespace)
	from := "the speaker's default"
	if s.Found && s.BindSet {
		from = fmt.Sprintf("--memberlist-bind in DaemonSet %s", s.DaemonSet)
	} else if !s.Found && m.DaemonSetErr == nil {
		from = fmt.Sprintf("the speaker's default; no speaker DaemonSet in namespace %s", f.Namespace)
	}
	port, off, err := bindPort(s.Bind)
	switch {
	case off:
		return append(out, finding{check, sevOK,
			fmt.Sprintf("membership turned off (--memberlist-bind=off in DaemonSet %s): port and key not checked; a dead node's addresses move only once it is NotReady (about 40 s)", s.DaemonSet), ""})
	case err != nil:
		out = append(out, finding{check, sevWarn,
			fmt.Sprintf("DaemonSet %s: cannot tell memberlist's port from --memberlist-bind=%s: %v", s.DaemonSet, s.Bind, err),
			fmt.Sprintf("write IP:PORT, :PORT or off: kubectl -n %s edit daemonset %s", s.DaemonSet.Namespace, s.DaemonSet.Name)})
	default:
		out = append(out, portFindings(f, s, port, from)...)
		out = append(out, reachFindings(f.Memberlist, port)...)
	}
	return append(out, secretFindings(f, s)...)
}

// reachFindings reports the speakers that say (in their registry Lease)
// they reach no majority of the others over gossip: each answers for
// nothing while the others answer for its addresses; if none reaches a
// majority, gossip is blocked everywhere and the speakers run in degraded
// mode (README: Reliability).
func reachFindings(m memberlistFacts, port uint16) []finding {
	const check = "memberlist"
	if m.ReachErr != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("cannot list the speakers' Leases, so whether they reach each other was not checked: %v", m.ReachErr),
			"run doctor as a user who may list Leases in ironlb's namespace"}}
	}
	if len(m.Reach) == 0 {
		return nil // no speaker running: checkSpeakers says so
	}
	var cut []string
	for node, quorate := range m.Reach {
		if !quorate {
			cut = append(cut, node)
		}
	}
	slices.Sort(cut)
	open := fmt.Sprintf("let the nodes reach each other's InternalIP on port %d, TCP and UDP (host firewalls, security groups, NetworkPolicies for host-network pods)", port)
	switch {
	case len(cut) == 0:
		return []finding{{check, sevOK, fmt.Sprintf("each of the %s reaches a majority of the others over gossip", plural(len(m.Reach), "speaker")), ""}}
	case len(cut) == len(m.Reach) && len(cut) >= 3:
		return []finding{{check, sevFail,
			fmt.Sprintf("no speaker reaches a majority of the others over gossip (port %d): they run in degraded mode, each answering only for the addresses whose ServiceAnnouncement names its node; an address moves only when its speaker stops cleanly or its Lease expires (40 s), and a new Service's address may wait that long", port),
			open}}
	}
	who := "the speaker on node " + cut[0] + " reaches"
	if len(cut) > 1 {
		who = "the speakers on nodes " + strings.Join(cut, ", ") + " reach"
	}
	return []finding{{check, sevWarn,
		fmt.Sprintf("%s no majority of the others over gossip (port %d): such a speaker answers for nothing, and the others answer for its addresses (one that started in the last few seconds says so too until it has joined)", who, port),
		open}}
}

// portFindings reports the pods, other than ironlb's speakers, that take
// memberlist's port on a node's network: only one of them and the speaker
// can run on that node (the scheduler does not put two pods declaring one
// host port together, and memberlist could not bind it anyway).
func portFindings(f clusterFacts, s speakerSettings, port uint16, from string) []finding {
	const check = "memberlist"
	m := f.Memberlist
	if m.HostPodsErr != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("cannot list pods, so port %d was not checked: %v", port, m.HostPodsErr),
			"run doctor as a user who may list pods in every namespace"}}
	}
	// Pods taking the port, grouped by owner so a DaemonSet on 50 nodes
	// is one finding.
	type group struct {
		owner  string // "DaemonSet metallb-system/speaker", or "" for a bare pod
		metal  bool
		protos []string
		pods   []corev1.Pod
	}
	var groups []*group
	for _, p := range m.HostPods {
		if isIronlbSpeaker(p, f, s) {
			continue
		}
		protos := hostPorts(p, port)
		if len(protos) == 0 {
			continue
		}
		owner := ""
		if ref := ownerOf(p); ref != nil {
			owner = fmt.Sprintf("%s %s/%s", ref.Kind, p.Namespace, ref.Name)
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return owner != "" && g.owner == owner })
		if i < 0 {
			groups = append(groups, &group{owner: owner})
			i = len(groups) - 1
		}
		g := groups[i]
		g.metal = g.metal || isMetalLB(p)
		g.protos = slices.Compact(slices.Sorted(slices.Values(append(g.protos, protos...))))
		g.pods = append(g.pods, p)
	}
	if len(groups) == 0 {
		return []finding{{check, sevOK, fmt.Sprintf("port %d (%s): no other pod takes it as a host port", port, from), ""}}
	}

	free := freePort(m.HostPods, port)
	move := fmt.Sprintf("move ironlb's memberlist to a free port, %d: kubectl -n %s edit daemonset %s; in the speaker's args, %s; set the memberlist-tcp and memberlist-udp ports (containerPort and hostPort) to %d; open %d TCP and UDP between the nodes",
		free, s.DaemonSet.Namespace, s.DaemonSet.Name, bindEdit(s, free), free, free)
	var out []finding
	for _, g := range groups {
		var where []string
		for i, p := range g.pods {
			if i == 3 {
				where = append(where, fmt.Sprintf("and %d more", len(g.pods)-i))
				break
			}
			where = append(where, fmt.Sprintf("pod %s on node %s", p.Name, p.Spec.NodeName))
		}
		who := fmt.Sprintf("%s (%s)", g.owner, strings.Join(where, ", "))
		if g.owner == "" {
			p := g.pods[0]
			who = fmt.Sprintf("pod %s/%s on node %s (no owner)", p.Namespace, p.Name, p.Spec.NodeName)
		}
		if g.metal {
			who = "MetalLB's " + who
		}
		msg := fmt.Sprintf("%s takes host port %d (%s), which ironlb's speakers need for memberlist (%s): only one of the two can run on a node",
			who, port, strings.Join(g.protos, ", "), from)
		fix := "move that pod off port " + strconv.Itoa(int(port)) + ", or " + move
		if g.metal {
			fix = fmt.Sprintf("uninstall MetalLB first: convert its configuration (%s convert), then delete it the way it was installed (kubectl delete -f its manifest, or helm uninstall); or, to run both for a while, %s",
				f.CLI, move)
		}
		out = append(out, finding{check, sevFail, msg, fix})
	}
	return out
}

// ownerOf is p's controlling owner, else its first owner, else nil.
func ownerOf(p corev1.Pod) *metav1.OwnerReference {
	if ref := metav1.GetControllerOf(&p); ref != nil {
		return ref
	}
	if len(p.OwnerReferences) > 0 {
		return &p.OwnerReferences[0]
	}
	return nil
}

// isIronlbSpeaker reports whether p is one of ironlb's speakers: labelled
// as doctor finds them in ironlb's namespace, labelled as ironlb's
// manifests label them anywhere, or owned by the speaker DaemonSet.
func isIronlbSpeaker(p corev1.Pod, f clusterFacts, s speakerSettings) bool {
	if p.Labels[componentLabel] != speakerComponent {
		return false
	}
	if p.Namespace == f.Namespace || p.Labels["app.kubernetes.io/name"] == "ironlb" {
		return true
	}
	ds := f.Memberlist.DaemonSet
	return ds != nil && slices.ContainsFunc(p.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == ds.UID })
}

// freePort is the first port above port (or above the default, at the
// top of the range) that no pod declares on a node's network, to suggest
// instead.
func freePort(pods []corev1.Pod, port uint16) uint16 {
	if port == 65535 {
		port = memberlistDefaultPort
	}
	p := port + 1
	for p < 65535 && slices.ContainsFunc(pods, func(pod corev1.Pod) bool { return len(hostPorts(pod, p)) > 0 }) {
		p++
	}
	return p
}

// bindEdit says how to set --memberlist-bind to port, keeping an address
// the DaemonSet already gives.
func bindEdit(s speakerSettings, port uint16) string {
	if !s.BindSet {
		return fmt.Sprintf("add --memberlist-bind=:%d", port)
	}
	if ap, err := netip.ParseAddrPort(s.Bind); err == nil {
		return fmt.Sprintf("change --memberlist-bind %s to %s", s.Bind, netip.AddrPortFrom(ap.Addr(), port))
	}
	return fmt.Sprintf("change --memberlist-bind %s to :%d", s.Bind, port)
}

// secretFindings checks the memberlist key: the speakers refuse a key that
// is not 16, 24 or 32 bytes (AES-128, -192, -256) and then run without
// membership.
func secretFindings(f clusterFacts, s speakerSettings) []finding {
	const check = "memberlist"
	m := f.Memberlist
	name := s.Secret.String()
	restart := fmt.Sprintf("kubectl -n %s rollout restart daemonset %s", s.DaemonSet.Namespace, s.DaemonSet.Name)
	switch {
	case m.SecretErr != nil:
		return []finding{{check, sevWarn, fmt.Sprintf("cannot read Secret %s, so the memberlist key was not checked: %v", name, m.SecretErr),
			"run doctor as a user who may read Secrets in " + s.Secret.Namespace}}
	case m.Secret == nil:
		var running []string
		for _, p := range f.Speakers {
			if p.Status.Phase == corev1.PodRunning {
				running = append(running, p.Name)
			}
		}
		if len(running) == 0 {
			return []finding{{check, sevOK, fmt.Sprintf("Secret %s with the memberlist key does not exist yet; no speaker runs, and the controller creates it", name), ""}}
		}
		return []finding{{check, sevFail,
			fmt.Sprintf("Secret %s with the memberlist key is missing while speakers run (%s): a speaker that restarts answers for nothing until it exists, and the key the controller then creates is not the one the running speakers hold",
				name, strings.Join(running, ", ")),
			fmt.Sprintf("the controller creates it within 10 s of its absence; then restart all the speakers so they read it: %s; if it stays missing, the controller's log says why: kubectl -n %s logs deployment/ironlb-controller", restart, f.Namespace)}}
	}
	key, ok := m.Secret.Data[kube.MemberlistSecretKey]
	fix := fmt.Sprintf("delete the Secret; the controller creates a new 32-byte key within 10 s; then restart the speakers: kubectl -n %s delete secret %s && sleep 10 && %s",
		s.Secret.Namespace, s.Secret.Name, restart)
	switch {
	case !ok:
		return []finding{{check, sevFail, fmt.Sprintf("Secret %s has no key %q: the speakers cannot encrypt memberlist, so they run without membership (a dead node's addresses move only once it is NotReady, about 40 s)", name, kube.MemberlistSecretKey), fix}}
	case len(key) != 16 && len(key) != 24 && len(key) != 32:
		return []finding{{check, sevFail, fmt.Sprintf("Secret %s: key %q is %s; memberlist's AES keys are 16, 24 or 32 bytes, so the speakers run without membership (a dead node's addresses move only once it is NotReady, about 40 s)",
			name, kube.MemberlistSecretKey, plural(len(key), "byte")), fix}}
	}
	return []finding{{check, sevOK, fmt.Sprintf("Secret %s holds a %d-byte key (AES-%d)", name, len(key), len(key)*8), ""}}
}
