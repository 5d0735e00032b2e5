// Package faults is the fault suite of issue 14: each scenario injects one
// failure real networks have into a lab cluster (internal/labcluster)
// while a Watch samples, from the client, who answers for every service
// address and whether the client's traffic flows. The same scenarios run
// shortened in `make test` (faults_test.go, which holds them to the
// invariants) and at full length in `make bench` (test/bench/faults, which
// prints their figures).
package faults

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labcluster"
)

// SpeakerArgs are the flags the suite's speakers run with: rebalancing
// off. The rows hold that nothing moves without cause, and they place
// the suite's addresses unevenly on purpose (busiest), which the
// rebalancing would even out by moves in the middle of a fault; its
// planned handovers are tested on their own (test/e2e, Rebalance).
var SpeakerArgs = []string{"--rebalance-interval=0"}

// Namespace holds the suite's Services.
const Namespace = "faults"

// Service is one of the suite's Services and its address.
type Service struct {
	Name string
	IP   netip.Addr
}

// Services are the suite's Services: three IPv4 addresses, so that with
// three nodes most nodes own one, and an IPv6 one, so that NDP is sampled
// too.
var Services = []Service{
	{"web", netip.MustParseAddr("198.51.100.88")},
	{"minio", netip.MustParseAddr("198.51.100.89")},
	{"grafana", netip.MustParseAddr("198.51.100.90")},
	{"web6", netip.MustParseAddr("2001:db8:1::300")},
}

// IPs are the Services' addresses.
func IPs() []netip.Addr {
	var out []netip.Addr
	for _, s := range Services {
		out = append(out, s.IP)
	}
	return out
}

// Env is what a scenario runs in.
type Env struct {
	C *labcluster.Cluster
	// Short asks for the shortened form of a long scenario (make test).
	Short bool
	Logf  func(format string, args ...any)
}

// The suite's config: the IPPool "faults" and its L2Announcement, and
// the legacy ConfigMap, whose pool holds grafana's address, so that a
// fault in either kind of config object (row 10) is one in the Services'
// own config. The IPPool "older" is older than "faults" and holds no
// Service: row 10 makes "faults" overlap it.
var (
	faultsPool = v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.88-198.51.100.89", "198.51.100.92-198.51.100.95", "2001:db8:1::300/125"}}
	olderPool  = v1alpha1.IPPoolSpec{Addresses: []string{"2001:db8:1::400/126"}}
	legacyConf = "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses: [198.51.100.90/31]\n"
)

// Setup creates the suite's config and its Services with backends on
// every node, and waits until each is announced.
func (e *Env) Setup(ctx context.Context) error {
	c := e.C.Client
	older := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "older"}, Spec: olderPool}
	if err := c.Create(ctx, older); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create IPPool/older: %w", err)
	} else if err == nil {
		sleep(ctx, 1100*time.Millisecond) // a creationTimestamp a second older than the rest
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: kube.DefaultNamespace, Name: kube.DefaultConfigMapName},
			Data:       map[string]string{config.LegacyConfigKey: legacyConf},
		},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "faults"}, Spec: faultsPool},
		&v1alpha1.L2Announcement{
			ObjectMeta: metav1.ObjectMeta{Name: "faults"},
			Spec:       v1alpha1.L2AnnouncementSpec{IPPools: []string{"faults"}},
		},
	}
	for _, s := range Services {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: s.Name},
			Spec: corev1.ServiceSpec{
				Type:                          corev1.ServiceTypeLoadBalancer,
				AllocateLoadBalancerNodePorts: new(bool),
				LoadBalancerIP:                s.IP.String(),
				Ports:                         []corev1.ServicePort{{Name: "udp", Port: labcluster.UDPPort, Protocol: corev1.ProtocolUDP}},
			},
		}
		if s.IP.Is6() {
			single := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &single
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		}
		objs = append(objs, svc)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	for _, s := range Services {
		if err := e.C.Backends(ctx, s.IP); err != nil {
			return err
		}
	}
	_, err := e.Settled(ctx, 30*time.Second)
	return err
}

// Settled waits until every Service's address is announced by a node and
// answered by that node's MAC alone, and returns the owners (Owners).
func (e *Env) Settled(ctx context.Context, timeout time.Duration) (map[netip.Addr]string, error) {
	var owners map[netip.Addr]string
	err := labcluster.Eventually(ctx, timeout, func() (err error) {
		owners, err = e.Owners(ctx)
		return err
	})
	return owners, err
}

// Owners returns, for every suite address, the node its
// ServiceAnnouncement names, after checking that exactly that node's MAC
// answers ARP/NDP for it.
func (e *Env) Owners(ctx context.Context) (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	for _, s := range Services {
		a, err := e.C.Announcer(ctx, Namespace, s.Name, s.IP)
		if err != nil {
			return nil, err
		}
		if a.Node == "" {
			return nil, fmt.Errorf("%s: no announcer: %s", s.IP, a.Reason)
		}
		macs, err := e.C.Resolve(ctx, s.IP)
		if err != nil {
			return nil, err
		}
		if want := e.C.NodeMAC(a.Node); !slices.Equal(macs, []string{want}) {
			return nil, fmt.Errorf("%s: answered by %v, want only %s (%s)", s.IP, macs, a.Node, want)
		}
		out[s.IP] = a.Node
	}
	return out, nil
}

// watch starts a Watch of every suite address.
func (e *Env) watch() (*labcluster.Watch, error) {
	return e.C.Watch(labcluster.WatchOptions{IPs: IPs()})
}

// owned returns the suite addresses owners gives to node.
func owned(owners map[netip.Addr]string, node string) []netip.Addr {
	var out []netip.Addr
	for ip, n := range owners {
		if n == node {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// busiest is the node that owns most suite addresses (the first by name
// on a tie), so that a fault there moves as many as possible.
func busiest(owners map[netip.Addr]string) string {
	count := map[string]int{}
	for _, n := range owners {
		count[n]++
	}
	best := ""
	for n, k := range count {
		if best == "" || k > count[best] || (k == count[best] && n < best) {
			best = n
		}
	}
	return best
}

// Result is what a scenario saw: the Watch's report over the whole
// scenario, and what the scenario itself found wrong (its row's own
// expectation).
type Result struct {
	Report labcluster.Report
	Bounds labcluster.Bounds
	Errs   []error
}

// Err is every invariant the scenario broke, nil if none.
func (r Result) Err() error {
	return errors.Join(append([]error{r.Report.Check(r.Bounds)}, r.Errs...)...)
}

// nodeNames are the lab's node names.
func (e *Env) nodeNames() []string {
	var out []string
	for _, h := range e.C.Lab.Nodes() {
		out = append(out, h.Name)
	}
	return out
}

// announcerNodes returns, per suite address, the node the
// ServiceAnnouncements name now ("" if none), without checking ARP.
func (e *Env) announcerNodes(ctx context.Context) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, s := range Services {
		var a v1alpha1.ServiceAnnouncement
		if err := e.C.Client.Get(ctx, types.NamespacedName{Namespace: Namespace, Name: s.Name}, &a); err != nil {
			continue
		}
		for _, an := range a.Status.Announcers {
			if an.IP == s.IP.String() {
				out[s.IP] = an.Node
			}
		}
	}
	return out
}

// noTakeback reports an error for every address whose owner after a
// fault healed is not the one it had while the fault lasted: a node that
// comes back takes nothing back, and nothing moves without cause.
func noTakeback(during, after map[netip.Addr]string) []error {
	var errs []error
	for ip, n := range during {
		if after[ip] != n {
			errs = append(errs, fmt.Errorf("%s moved from %s to %s after the fault healed", ip, n, after[ip]))
		}
	}
	return errs
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// speakerJoined waits until node's speaker, as last started, has seen
// every other node's speaker alive (its log says so for each): a rolling
// update moves to the next node only then (a DaemonSet waits for the
// readiness probe, and the speaker's is its first sync; the lab runs no
// probe).
func (e *Env) speakerJoined(ctx context.Context, node string, timeout time.Duration) error {
	return labcluster.Eventually(ctx, timeout, func() error {
		b, err := e.C.Speaker(node).Log()
		if err != nil {
			return err
		}
		for _, other := range e.nodeNames() {
			alive := regexp.MustCompile(`(?m)msg="member alive".* member=` + regexp.QuoteMeta(other) + `( |$)`)
			if other != node && !alive.Match(b) {
				return fmt.Errorf("%s's speaker has not seen %s alive yet", node, other)
			}
		}
		return nil
	})
}

// pauseAPIServer stops the API server (SIGSTOP) and returns what resumes
// it, once however often it is called; ok is false (and r says why) if
// it could not be stopped.
func (e *Env) pauseAPIServer(r *Result) (resume func(), ok bool) {
	api := e.C.CP.APIServer
	if r.fail(api.Pause()) {
		return nil, false
	}
	resumed := false
	return func() {
		if !resumed {
			resumed = true
			r.fail(api.Resume())
		}
	}, true
}

// stopHandingOver stops node's speaker so that the others take its
// addresses over at once, as the rows about what a restarted speaker
// does need: a speaker stopped on a Ready node keeps its addresses for
// its successor (--restart-hold), so node's speaker is first restarted
// with a hold of 0 (which keeps its addresses) and then stopped.
func (e *Env) stopHandingOver(ctx context.Context, node string) error {
	if err := e.C.Speaker(node).Stop(); err != nil {
		return err
	}
	if _, err := e.C.StartSpeaker(node, "--restart-hold=0"); err != nil {
		return err
	}
	if err := e.speakerJoined(ctx, node, 30*time.Second); err != nil {
		return err
	}
	sleep(ctx, 2*time.Second)
	return e.C.Speaker(node).Stop()
}

// rollSpeakers restarts every speaker in turn (SIGTERM, start again),
// moving to the next once the restarted one has joined the others and
// 2 s more have passed, as a DaemonSet's rolling update does. It reports
// whether every restart went through (r says why not).
func (e *Env) rollSpeakers(ctx context.Context, r *Result, what string) bool {
	for _, n := range e.nodeNames() {
		e.Logf("%s %s's speaker", what, n)
		if r.fail(e.C.Speaker(n).Stop()) {
			return false
		}
		if _, err := e.C.StartSpeaker(n); r.fail(err) {
			return false
		}
		if r.fail(e.speakerJoined(ctx, n, 30*time.Second)) {
			return false
		}
		sleep(ctx, 2*time.Second)
	}
	return true
}

// setAllReady marks every Node Ready or NotReady, one after the other, as
// the node lifecycle controller does; it reports whether every change
// went through (r says why not).
func (e *Env) setAllReady(ctx context.Context, r *Result, ready bool) bool {
	for _, n := range e.nodeNames() {
		if r.fail(e.C.CP.SetNodeReady(ctx, n, ready)) {
			return false
		}
	}
	return true
}
