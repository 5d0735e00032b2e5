package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// scenarioConfig is the user's ConfigMap (SCENARIO.md) with the range
// moved into the lab's LAN.
const scenarioConfig = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 198.51.100.87-198.51.100.97 # IP range
`

// TestLayer2 is Layer 2 mode end to end on three nodes. The subtests run in
// order on one cluster; each leaves it as it found it, apart from the
// Services it adds.
func TestLayer2(t *testing.T) {
	// Rebalancing off: several steps check that an address stays where a
	// failure put it, and the scenario's addresses are not spread evenly;
	// TestLayer2Steering tests the rebalancing.
	c := newCluster(t, 3, "--rebalance-interval=0")
	for _, ns := range []string{"istio-system", "kubeflow", "seldon-system", "lab"} {
		c.namespace(ns)
	}
	c.legacyConfig(scenarioConfig)

	steps := []struct {
		name string
		f    func(*testing.T)
	}{
		{"Scenario", c.testScenario},
		{"NoAnswerForUnowned", c.testNoAnswerForUnowned},
		{"IPv6", c.testIPv6},
		{"ExcludedNode", c.testExcludedNode},
		{"NotReadyNode", c.testNotReady},
		{"LocalTrafficPolicy", c.testLocal},
		{"GossipCut", c.testGossipCut},
		{"RestartCutOff", c.testRestartCutOff},
		{"AddressConflict", c.testAddressConflict},
		{"UnplannedFailover", c.testUnplannedFailover},
		{"PlannedRestart", c.testPlannedRestart},
		{"RestartNodeDies", c.testRestartNodeDies},
		{"PlannedHandover", c.testPlannedHandover},
		{"NoMembership", c.testNoMembership},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) {
			t.Fatalf("stopping after %s failed: the later steps build on it", s.name)
		}
	}
}

// checkAnswer checks that exactly one MAC answers ARP/NDP for ip, the one
// of the node the ServiceAnnouncement of ns/name names, and that HTTP to
// ip reaches that node. It returns the node.
func (c *cluster) checkAnswer(ns, name string, ip netip.Addr) string {
	c.t.Helper()
	a := c.waitAnnouncer(ns, name, ip)
	want := c.nodeMAC(a.Node)
	if a.MAC != want || a.Interface != "eth0" {
		c.t.Errorf("%s: announcement says %s on %s (%s), want %s's eth0 (%s)", ip, a.Node, a.Interface, a.MAC, a.Node, want)
	}
	c.eventually(10*time.Second, "one answer for "+ip.String(), func() error {
		if got := c.resolve(ip); !slices.Equal(got, []string{want}) {
			return fmt.Errorf("answers from %v, want exactly %s (%s)", got, want, a.Node)
		}
		return nil
	})
	c.eventually(10*time.Second, "HTTP to "+ip.String(), func() error {
		got, err := c.get(ip)
		if err == nil && got != a.Node {
			err = fmt.Errorf("reached %s, want %s", got, a.Node)
		}
		return err
	})
	return a.Node
}

func (c *cluster) testScenario(t *testing.T) {
	c.t = t
	services := []struct {
		ns, name string
		ports    []int32
		ip       string
	}{
		{"istio-system", "istio-ingressgateway", []int32{15021, 80, 443, 31400, 15443}, "198.51.100.88"},
		{"kubeflow", "minio-service", []int32{9000}, "198.51.100.89"},
		{"seldon-system", "seldon-core-analytics-grafana", []int32{80}, "198.51.100.90"},
	}
	for _, s := range services {
		svc := service(s.ns, s.name, s.ports...)
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		svc.Spec.AllocateLoadBalancerNodePorts = nil
		c.apply(svc)
		// kubectl edit: type LoadBalancer and the address.
		c.edit(s.ns, s.name, func(svc *corev1.Service) {
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Spec.AllocateLoadBalancerNodePorts = new(bool)
			svc.Spec.LoadBalancerIP = s.ip
		})
		c.backends(netip.MustParseAddr(s.ip))
	}
	for _, s := range services {
		c.waitIPs(s.ns, s.name, s.ip)
		ip := netip.MustParseAddr(s.ip)
		node := c.checkAnswer(s.ns, s.name, ip)
		c.waitEvent(s.ns, s.name, fmt.Sprintf("%s announced by %s on eth0 (%s)", ip, node, c.nodeMAC(node)))
	}

	// The speakers made their gossip key.
	var sec corev1.Secret
	if err := c.c.Get(c.ctx(), types.NamespacedName{Namespace: labnet.SystemNamespace, Name: kube.DefaultMemberlistSecret}, &sec); err != nil {
		t.Errorf("memberlist key: %v", err)
	} else if n := len(sec.Data[kube.MemberlistSecretKey]); n != 32 {
		t.Errorf("memberlist key is %d bytes, want 32", n)
	}

	// The conflict: a fourth Service asks for .88 and says who holds it.
	dup := service("kubeflow", "dashboard-copy", 80)
	dup.Spec.LoadBalancerIP = "198.51.100.88"
	c.apply(dup)
	c.eventually(30*time.Second, "dashboard-copy pending with the holder named", func() error {
		var svc corev1.Service
		if err := c.c.Get(c.ctx(), types.NamespacedName{Namespace: "kubeflow", Name: "dashboard-copy"}, &svc); err != nil {
			return err
		}
		for _, cond := range svc.Status.Conditions {
			if cond.Type == v1alpha1.ServiceConditionIPAllocated && cond.Status == metav1.ConditionFalse &&
				strings.Contains(cond.Message, "istio-system/istio-ingressgateway") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", svc.Status.Conditions)
	})
}

// waitEvent waits for an event on the Service whose note contains want.
func (c *cluster) waitEvent(ns, name, want string) {
	c.t.Helper()
	c.eventually(20*time.Second, "event "+want, func() error {
		var list eventsv1.EventList
		if err := c.c.List(c.ctx(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Name == name {
				if strings.Contains(e.Note, want) {
					return nil
				}
				notes = append(notes, e.Note)
			}
		}
		return fmt.Errorf("events of %s/%s: %q", ns, name, notes)
	})
}

// testNoAnswerForUnowned: nobody answers for a pool address no Service
// has, nor, once its Service is gone, for an address that was announced.
func (c *cluster) testNoAnswerForUnowned(t *testing.T) {
	c.t = t
	if got := c.resolve(netip.MustParseAddr("198.51.100.95")); len(got) != 0 {
		t.Errorf("unassigned 198.51.100.95 answered by %v", got)
	}
	svc := service("lab", "short-lived", 80)
	svc.Spec.LoadBalancerIP = "198.51.100.96"
	c.apply(svc)
	ip := netip.MustParseAddr("198.51.100.96")
	c.waitAnnouncer("lab", "short-lived", ip)
	c.eventually(10*time.Second, "an answer for .96", func() error {
		if len(c.resolve(ip)) != 1 {
			return fmt.Errorf("no single answer")
		}
		return nil
	})
	if err := c.c.Delete(c.ctx(), svc); err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, "silence for .96 after its Service is deleted", func() error {
		if got := c.resolve(ip); len(got) != 0 {
			return fmt.Errorf("still answered by %v", got)
		}
		return nil
	})
	c.eventually(10*time.Second, "its ServiceAnnouncement deleted", func() error {
		if _, err := c.announcer("lab", "short-lived", ip); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// testIPv6: a dual-stack Service from a dual-stack IPPool gets one NDP
// answer from its IPv6 owner, and HTTP over IPv6 reaches that node.
func (c *cluster) testIPv6(t *testing.T) {
	c.t = t
	c.applyDualPool()
	v4, v6 := c.applyDualService()
	c.checkAnswer("lab", "dual", v6)
	c.checkAnswer("lab", "dual", v4)
}

// applyDualPool creates the dual-stack IPPool "dual" (198.51.100.112/29
// and 2001:db8:1::200/125, not auto-assigned) and its L2Announcement on
// eth0.
func (c *cluster) applyDualPool() {
	c.apply(&v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "dual"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.112/29", "2001:db8:1::200/125"}, AutoAssign: new(bool)},
	})
	c.apply(&v1alpha1.L2Announcement{
		ObjectMeta: metav1.ObjectMeta{Name: "dual"},
		Spec:       v1alpha1.L2AnnouncementSpec{IPPools: []string{"dual"}, Interfaces: []string{"eth0"}},
	})
}

// applyDualService creates lab/dual, a RequireDualStack Service of pool
// "dual", waits for its two addresses (the pool's first of each family)
// and puts its backends on the nodes.
func (c *cluster) applyDualService() (v4, v6 netip.Addr) {
	svc := service("lab", "dual", 80)
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc.Spec.IPFamilyPolicy = &policy
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	svc.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "dual"}
	c.apply(svc)
	v4, v6 = netip.MustParseAddr("198.51.100.112"), netip.MustParseAddr("2001:db8:1::200")
	c.waitIPs("lab", "dual", v4.String(), v6.String())
	c.backends(v4)
	c.backends(v6)
	return v4, v6
}

// testExcludedNode: a node labelled exclude-from-external-load-balancers
// stops answering; its addresses move to others. Removing the label
// moves nothing back.
func (c *cluster) testExcludedNode(t *testing.T) {
	c.t = t
	ip := netip.MustParseAddr("198.51.100.88")
	was := c.waitAnnouncer("istio-system", "istio-ingressgateway", ip).Node
	c.label(was, v1alpha1.LabelExcludeFromLoadBalancers, "")
	var now string
	c.eventually(10*time.Second, ip.String()+" leaves "+was, func() error {
		a, err := c.announcer("istio-system", "istio-ingressgateway", ip)
		if err == nil && (a.Node == was || a.Node == "") {
			err = fmt.Errorf("announced by %q", a.Node)
		}
		now = a.Node
		return err
	})
	c.checkAnswer("istio-system", "istio-ingressgateway", ip)
	c.label(was, v1alpha1.LabelExcludeFromLoadBalancers, "-")
	time.Sleep(time.Second)
	if a := c.waitAnnouncer("istio-system", "istio-ingressgateway", ip); a.Node != now {
		t.Errorf("%s moved back to %s when the label went; want it to stay on %s", ip, a.Node, now)
	}
}

// label sets (or with value "-" removes) a label on a Node.
func (c *cluster) label(node, key, value string) {
	c.t.Helper()
	var n corev1.Node
	if err := c.c.Get(c.ctx(), types.NamespacedName{Name: node}, &n); err != nil {
		c.t.Fatal(err)
	}
	patch := client.MergeFrom(n.DeepCopy())
	if value == "-" {
		delete(n.Labels, key)
	} else {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[key] = value
	}
	if err := c.c.Patch(c.ctx(), &n, patch); err != nil {
		c.t.Fatal(err)
	}
}

// endpoints writes the EndpointSlice of ns/name with one ready endpoint on
// each of nodes (there is no kubelet or endpoint controller in the lab).
func (c *cluster) endpoints(ns, name string, nodes ...string) {
	c.t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-lab",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("203.0.113.%d", 20+i)},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			NodeName:   &n,
		})
	}
	c.apply(es)
}

// testLocal: with externalTrafficPolicy Local only the node with the ready
// endpoint announces, and the address follows the endpoint.
func (c *cluster) testLocal(t *testing.T) {
	c.t = t
	ip := netip.MustParseAddr("198.51.100.91")
	svc := service("lab", "local", 80)
	svc.Spec.LoadBalancerIP = ip.String()
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	c.apply(svc)
	c.backends(ip)
	c.waitIPs("lab", "local", ip.String())
	c.eventually(10*time.Second, "no announcer without endpoints", func() error {
		a, err := c.announcer("lab", "local", ip)
		if err == nil && (a.Node != "" || !strings.Contains(a.Reason, "no ready endpoint")) {
			err = fmt.Errorf("announcer %+v", a)
		}
		return err
	})
	if got := c.resolve(ip); len(got) != 0 {
		t.Errorf("answered by %v with no endpoint anywhere", got)
	}
	for _, node := range []string{"node-2", "node-3", "node-1"} {
		c.endpoints("lab", "local", node)
		c.eventually(10*time.Second, "announced by "+node, func() error {
			a, err := c.announcer("lab", "local", ip)
			if err == nil && a.Node != node {
				err = fmt.Errorf("announced by %q", a.Node)
			}
			return err
		})
		if got := c.checkAnswer("lab", "local", ip); got != node {
			t.Errorf("answered from %s, want %s", got, node)
		}
	}
}

// failoverTarget is the Service the failover tests probe, and its owner.
func (c *cluster) failoverTarget() (netip.Addr, string) {
	c.t.Helper()
	ip := netip.MustParseAddr("198.51.100.89")
	return ip, c.checkAnswer("kubeflow", "minio-service", ip)
}

// probe runs f while the client sends a UDP probe to ip every 10 ms, and
// returns what the client saw.
func (c *cluster) probe(ip netip.Addr, f func()) labnet.ProbeResult {
	c.t.Helper()
	p, err := c.Lab.Client().ProbeUDP(context.Background(), netip.AddrPortFrom(ip, 9000), labnet.DefaultProbeInterval)
	if err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	f()
	return p.Stop()
}

// testUnplannedFailover: the owner's speaker is killed and its link cut;
// the client's probes resume through another node, and when the node
// comes back the address stays where it went.
func (c *cluster) testUnplannedFailover(t *testing.T) {
	c.t = t
	ip, owner := c.failoverTarget()
	h := c.host(owner)
	var next string
	res := c.probe(ip, func() {
		if err := c.speaker(owner).Kill(); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkDown(); err != nil {
			t.Fatal(err)
		}
		next = c.movedFrom(ip, owner)
		time.Sleep(time.Second)
	})
	t.Logf("unplanned failover %s -> %s: longest gap %s, %d/%d probes answered, by node %v",
		owner, next, res.LongestGap.Round(time.Millisecond), res.Received, res.Sent, res.ByNode)
	if res.ByNode[next] == 0 {
		t.Errorf("no probe answered by the new owner %s after the failover", next)
	}
	if last := res.Replies[len(res.Replies)-1]; last.Node != next {
		t.Errorf("last probe answered by %s, want %s", last.Node, next)
	}
	// The node comes back: one MAC answers, and it is still the new owner's.
	if err := h.LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.startSpeaker(owner)
	time.Sleep(3 * time.Second)
	if got := c.checkAnswer("kubeflow", "minio-service", ip); got != next {
		t.Errorf("%s moved back to %s after it recovered; want it to stay on %s", ip, got, next)
	}
}

// movedFrom waits until another node than owner announces the minio
// Service's address ip, and returns it.
func (c *cluster) movedFrom(ip netip.Addr, owner string) string {
	c.t.Helper()
	var next string
	c.eventually(15*time.Second, "another node announces "+ip.String(), func() error {
		a, err := c.announcer("kubeflow", "minio-service", ip)
		if err == nil && (a.Node == owner || a.Node == "") {
			err = fmt.Errorf("still %q", a.Node)
		}
		next = a.Node
		return err
	})
	return next
}

// testPlannedRestart: SIGTERM to the owner's speaker, and a new one
// started on the node (a rolling update): the address stays on the node
// and no probe is lost; while the node has no speaker, another node
// answers ARP for the address with the owner's MAC, so a client that
// resolves it anew gets the node that forwards.
func (c *cluster) testPlannedRestart(t *testing.T) {
	c.t = t
	ip, owner := c.failoverTarget()
	mac := c.nodeMAC(owner)
	var during []string
	res := c.probe(ip, func() {
		if err := c.speaker(owner).Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		during = c.resolve(ip)
		c.startSpeaker(owner)
		time.Sleep(3 * time.Second)
	})
	t.Logf("planned restart of %s's speaker: longest gap %s, %d/%d probes answered, by node %v; ARP answered by %v while it was away",
		owner, res.LongestGap.Round(time.Millisecond), res.Received, res.Sent, res.ByNode, during)
	if !slices.Equal(during, []string{mac}) {
		t.Errorf("while %s's speaker restarted, ARP for %s was answered with %v, want %s's MAC %s alone", owner, ip, during, owner, mac)
	}
	if lost := res.Sent - res.Received; lost > 1 { // the last one may still be in flight
		t.Errorf("%d probes lost in a planned restart", lost)
	}
	if len(res.ByNode) != 1 || res.ByNode[owner] == 0 {
		t.Errorf("probes answered by %v, want %s alone: the address moved", res.ByNode, owner)
	}
	if got := c.checkAnswer("kubeflow", "minio-service", ip); got != owner {
		t.Errorf("%s is announced by %s after the restart, want %s", ip, got, owner)
	}
}

// testRestartNodeDies: SIGTERM to the owner's speaker, as in a rolling
// update, and the node's link cut a second later: the others stop
// keeping the address on it and take it over, as after any node failure.
func (c *cluster) testRestartNodeDies(t *testing.T) {
	c.t = t
	ip, owner := c.failoverTarget()
	h := c.host(owner)
	var next string
	res := c.probe(ip, func() {
		if err := c.speaker(owner).Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := h.LinkDown(); err != nil {
			t.Fatal(err)
		}
		next = c.movedFrom(ip, owner)
		time.Sleep(time.Second)
	})
	t.Logf("node %s died while its speaker restarted: moved to %s, longest gap %s, %d/%d probes answered, by node %v",
		owner, next, res.LongestGap.Round(time.Millisecond), res.Received, res.Sent, res.ByNode)
	if res.LongestGap > 3*time.Second {
		t.Errorf("longest gap %s: the address waited for the restart hold, not for the node's failure to be seen", res.LongestGap.Round(time.Millisecond))
	}
	if last := res.Replies[len(res.Replies)-1]; last.Node != next {
		t.Errorf("last probe answered by %s, want %s", last.Node, next)
	}
	if err := h.LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.startSpeaker(owner)
	time.Sleep(3 * time.Second)
}

// testPlannedHandover: with --restart-hold=0, SIGTERM to the owner's
// speaker hands its addresses over; the link is cut 2 s later: no probe
// is lost.
func (c *cluster) testPlannedHandover(t *testing.T) {
	c.t = t
	ip, owner := c.failoverTarget()
	if err := c.speaker(owner).Stop(); err != nil {
		t.Fatal(err)
	}
	c.startSpeaker(owner, "--restart-hold=0")
	time.Sleep(3 * time.Second)
	if got := c.checkAnswer("kubeflow", "minio-service", ip); got != owner {
		t.Fatalf("%s moved to %s when %s's speaker restarted", ip, got, owner)
	}
	h := c.host(owner)
	res := c.probe(ip, func() {
		done := make(chan error, 1)
		go func() { done <- c.speaker(owner).Stop() }()
		time.Sleep(2 * time.Second)
		if err := h.LinkDown(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
		time.Sleep(time.Second)
	})
	t.Logf("planned handover from %s: longest gap %s, %d/%d probes answered, by node %v",
		owner, res.LongestGap.Round(time.Millisecond), res.Received, res.Sent, res.ByNode)
	if lost := res.Sent - res.Received; lost > 1 { // the last one may still be in flight
		t.Errorf("%d probes lost in a planned handover", lost)
	}
	if err := h.LinkUp(); err != nil {
		t.Fatal(err)
	}
	c.startSpeaker(owner)
}

// testNotReady: a node the API server reports NotReady loses its
// addresses even though its speaker still gossips.
func (c *cluster) testNotReady(t *testing.T) {
	c.t = t
	ip := netip.MustParseAddr("198.51.100.90")
	was := c.waitAnnouncer("seldon-system", "seldon-core-analytics-grafana", ip).Node
	if err := c.CP.SetNodeReady(c.ctx(), was, false); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.CP.SetNodeReady(c.ctx(), was, true); err != nil {
			t.Error(err)
		}
	}()
	c.eventually(10*time.Second, ip.String()+" leaves the NotReady "+was, func() error {
		a, err := c.announcer("seldon-system", "seldon-core-analytics-grafana", ip)
		if err == nil && (a.Node == was || a.Node == "") {
			err = fmt.Errorf("announced by %q", a.Node)
		}
		return err
	})
	c.checkAnswer("seldon-system", "seldon-core-analytics-grafana", ip)
}

// testNoMembership: with memberlist off, node readiness alone decides:
// the speakers still agree on one owner per address, and a NotReady owner
// hands over.
func (c *cluster) testNoMembership(t *testing.T) {
	c.t = t
	for _, h := range c.Lab.Nodes() {
		if err := c.speaker(h.Name).Stop(); err != nil {
			t.Fatal(err)
		}
		c.startSpeaker(h.Name, "--memberlist-bind=off")
	}
	ip := netip.MustParseAddr("198.51.100.89")
	owner := c.checkAnswer("kubeflow", "minio-service", ip)
	if err := c.CP.SetNodeReady(c.ctx(), owner, false); err != nil {
		t.Fatal(err)
	}
	defer c.CP.SetNodeReady(c.ctx(), owner, true)
	c.eventually(10*time.Second, ip.String()+" leaves the NotReady "+owner, func() error {
		a, err := c.announcer("kubeflow", "minio-service", ip)
		if err == nil && (a.Node == owner || a.Node == "") {
			err = fmt.Errorf("announced by %q", a.Node)
		}
		return err
	})
	c.checkAnswer("kubeflow", "minio-service", ip)
}

// testGossipCut: a node that can no longer gossip with the others (its
// memberlist port firewalled) while still on the LAN must stop answering:
// the others have taken its addresses, and two MACs must never answer for
// one address. When the firewall goes, nothing moves back.
func (c *cluster) testGossipCut(t *testing.T) {
	c.t = t
	victim := c.waitAnnouncer("istio-system", "istio-ingressgateway", scenarioIPs["istio-system/istio-ingressgateway"]).Node
	heal := c.cutGossip(victim)
	defer heal()
	c.eventually(15*time.Second, "the cut-off "+victim+" silent, one MAC per address", func() error { return c.onePerIP(victim) })
	// It stays so, also once the cut-off node has given the others up
	// for dead (its own failure detector is slowed by its bad health).
	for start := time.Now(); time.Since(start) < 12*time.Second; time.Sleep(500 * time.Millisecond) {
		if err := c.onePerIP(victim); err != nil {
			t.Fatalf("%s after the cut: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	heal()
	time.Sleep(3 * time.Second)
	if err := c.onePerIP(victim); err != nil {
		t.Errorf("after the cut healed: %v", err)
	}
}

// testRestartCutOff: a speaker that restarts while it cannot reach the
// others' gossip answers for nothing and claims nothing (a starting
// speaker that took itself for the only one would claim every address and
// report itself as their announcer, which the others then honour); once
// it joins them, every address stays where it is.
func (c *cluster) testRestartCutOff(t *testing.T) {
	c.t = t
	victim := c.waitAnnouncer("kubeflow", "minio-service", scenarioIPs["kubeflow/minio-service"]).Node
	// Stopped on a Ready node, a speaker keeps its addresses for the next
	// one (--restart-hold): run one that hands them over, and stop it.
	if err := c.speaker(victim).Stop(); err != nil {
		t.Fatal(err)
	}
	c.startSpeaker(victim, "--restart-hold=0")
	time.Sleep(3 * time.Second)
	if err := c.speaker(victim).Stop(); err != nil {
		t.Fatal(err)
	}
	c.eventually(15*time.Second, "the others announce "+victim+"'s addresses", func() error { return c.onePerIP(victim) })
	heal := c.cutGossip(victim)
	defer heal()
	c.startSpeaker(victim)
	for start := time.Now(); time.Since(start) < 6*time.Second; time.Sleep(500 * time.Millisecond) {
		if err := c.onePerIP(victim); err != nil {
			t.Fatalf("%s after the restart: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	heal()
	time.Sleep(3 * time.Second)
	if err := c.onePerIP(victim); err != nil {
		t.Errorf("after it joined: %v", err)
	}
}

// scenarioIPs are the addresses of the scenario's Services.
var scenarioIPs = map[string]netip.Addr{
	"istio-system/istio-ingressgateway":           netip.MustParseAddr("198.51.100.88"),
	"kubeflow/minio-service":                      netip.MustParseAddr("198.51.100.89"),
	"seldon-system/seldon-core-analytics-grafana": netip.MustParseAddr("198.51.100.90"),
}

// onePerIP checks that every scenario address is announced by a node
// other than not, and answered by that node's MAC alone.
func (c *cluster) onePerIP(not string) error {
	for key, ip := range scenarioIPs {
		ns, name, _ := strings.Cut(key, "/")
		a, err := c.announcer(ns, name, ip)
		if err != nil {
			return err
		}
		if a.Node == not || a.Node == "" {
			return fmt.Errorf("%s announced by %q", ip, a.Node)
		}
		if got := c.resolve(ip); !slices.Equal(got, []string{c.nodeMAC(a.Node)}) {
			return fmt.Errorf("%s answered by %v, want only %s (%s)", ip, got, a.Node, c.nodeMAC(a.Node))
		}
	}
	return nil
}

// cutGossip firewalls node's memberlist port both ways (no TCP fallback
// ping either) and returns the function that heals the cut; calling it
// again does nothing.
func (c *cluster) cutGossip(node string) (heal func()) {
	t := c.t
	t.Helper()
	h := c.host(node)
	nft := func(args ...string) {
		t.Helper()
		if out, err := h.Run(c.ctx(), "nft", args...); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
	}
	nft("add", "table", "inet", "gossipcut")
	nft("add", "chain", "inet", "gossipcut", "in", "{ type filter hook input priority 0; }")
	for _, proto := range []string{"udp", "tcp"} {
		for _, port := range []string{"dport", "sport"} {
			nft("add", "rule", "inet", "gossipcut", "in", proto, port, "7946", "drop")
		}
	}
	healed := false
	return func() {
		if !healed {
			healed = true
			nft("delete", "table", "inet", "gossipcut")
		}
	}
}
