package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/controller"
	"github.com/ironlb/ironlb/internal/kubecr"
)

var env *apiservertest.Env

func TestMain(m *testing.M) {
	apiservertest.Main(m, &env, apiservertest.Options{Scheme: kubecr.Scheme()})
}

// TestStatus runs the controller on a real API server and checks that
// `ironlbctl status` shows each Service's address, pool and mode, or why it
// is pending.
func TestStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ensureNamespace(t, "ironlb-system")
	c, err := controller.New(env.Config, controller.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// What the test creates goes again before the controller stops (defers
	// run last first), so that a second run (-count) starts from nothing.
	var created []client.Object
	defer func() {
		for _, o := range slices.Backward(created) {
			deleteAndWait(t, o)
		}
	}()
	mustCreate := func(o client.Object, err error) {
		if err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
		created = append(created, o)
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 198.51.100.87-198.51.100.97\n"},
	}
	mustCreate(cm, env.Client.Create(ctx, cm))
	svc := func(name, ip string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: ip,
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}},
			},
		}
	}
	// One at a time, each once the previous has its answer: Services
	// created together are reconciled in any order.
	for _, s := range []*corev1.Service{svc("dashboard", "198.51.100.88"), svc("copy", "198.51.100.88"), svc("other", "")} {
		mustCreate(s, env.Client.Create(ctx, s))
		waitCondition(t, s)
	}

	// The speaker announcing dashboard's address reports it.
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "dashboard"},
		Status: v1alpha1.ServiceAnnouncementStatus{Mode: v1alpha1.ModeLayer2, Announcers: []v1alpha1.Announcer{
			{IP: "198.51.100.88", Node: "node-2", Interface: "eth0", MAC: "02:00:00:00:00:02"},
		}},
	}
	mustCreate(ann, env.Client.Create(ctx, ann))

	want := []statusRow{
		{Namespace: "default", Name: "copy", State: "Pending", Reason: "IPInUse"},
		{Namespace: "default", Name: "dashboard", IPs: []string{"198.51.100.88"}, Pools: []string{"default"}, Mode: "layer2", State: "Allocated", Reason: "Allocated",
			Announcers: ann.Status.Announcers},
		{Namespace: "default", Name: "other", IPs: []string{"198.51.100.87"}, Pools: []string{"default"}, Mode: "layer2", State: "Allocated", Reason: "Allocated"},
	}
	var rows []statusRow
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err = statusRows(ctx, env.Client, types.NamespacedName{Namespace: "ironlb-system", Name: "config"})
		if err != nil {
			t.Fatal(err)
		}
		diff := cmp.Diff(want, rows, cmpopts.IgnoreFields(statusRow{}, "Message"), cmpopts.IgnoreUnexported(statusRow{}))
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status rows (-want +got):\n%s", diff)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var out bytes.Buffer
	if err := printStatus(&out, statusReport{Services: rows}, ""); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"NAMESPACE  NAME       EXTERNAL-IP    POOL     MODE    ANNOUNCED BY  STATUS",
		"default    copy       <none>         <none>   <none>  <none>        Pending: IPInUse",
		"default    dashboard  198.51.100.88  default  layer2  node-2        Allocated",
		"default/copy is pending: 198.51.100.88 is already used by default/dashboard",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	if err := printStatus(&out, statusReport{Services: rows}, "wide"); err != nil || !strings.Contains(out.String(), "node-2 on eth0 (02:00:00:00:00:02)") {
		t.Errorf("wide output (err %v) lacks the interface and MAC:\n%s", err, out.String())
	}
	out.Reset()
	if err := printStatus(&out, statusReport{Services: rows}, "json"); err != nil || !strings.Contains(out.String(), `"reason": "IPInUse"`) {
		t.Errorf("json output (err %v):\n%s", err, out.String())
	}
}

// waitCondition waits until the controller has written its IPAllocated
// condition on s.
func waitCondition(t *testing.T, s *corev1.Service) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var got corev1.Service
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &got); err == nil &&
			meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no IPAllocated condition on %s/%s", s.Namespace, s.Name)
}

// TestStatusBGP checks the "BGP sessions" table on a real API server: the
// BGPSessionStates the speakers write (here written by the test) are
// listed after the Services, a session that is down says why, and the
// JSON gives each BGP Service the sessions its addresses go to. ANNOUNCED
// BY names the nodes announcing each Service (see TestBGPAnnouncers for
// every rule), read from the Nodes and EndpointSlices.
func TestStatusBGP(t *testing.T) {
	ctx := context.Background()
	const sys, ns = "ironlb-bgpstatus", "bgpstatus"
	startController(t, sys)
	ensureNamespace(t, ns)
	mustCreate(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: sys, Name: "config"},
		Data: map[string]string{"config": "peers:\n- peer-address: 192.0.2.1\n  peer-asn: 64500\n  my-asn: 64512\n" +
			"address-pools:\n- name: routed\n  protocol: bgp\n  addresses:\n  - 203.0.113.96/28\n"},
	})
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: "203.0.113.100",
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
	}
	mustCreate(t, web)
	waitAllocated(t, web)
	// api, with externalTrafficPolicy: Local, has a ready endpoint on
	// node-3 only; batch, also Local, has none.
	local := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
				Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(443)}}},
		}
	}
	api, batch := local("api"), local("batch")
	for _, s := range []*corev1.Service{api, batch} {
		mustCreate(t, s)
		waitAllocated(t, s)
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
	}
	node1, node3 := "node-1", "node-3"
	ready, notReady := true, false
	mustCreate(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "api-x1", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, NodeName: &node1, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
			{Addresses: []string{"10.244.3.5"}, NodeName: &node3, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
	})
	// node-1 to node-3 are Ready, node-4 is not.
	for _, name := range []string{"node-1", "node-2", "node-3", "node-4"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		mustCreate(t, n)
		if name == "node-4" {
			continue
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if err := env.Client.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	md5 := "dial tcp 192.0.2.1:179: i/o timeout (no answer: the router may require a TCP MD5 password, or a firewall drops the connection)"
	since := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	sessions := []v1alpha1.BGPSessionStateStatus{
		{Node: "node-1", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateEstablished, PrefixesSent: 1, LastTransitionTime: since},
		{Node: "node-2", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateActive, LastError: md5, LastTransitionTime: since},
		{Node: "node-3", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateEstablished, PrefixesSent: 2, LastTransitionTime: since},
		{Node: "node-4", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateEstablished, PrefixesSent: 2, LastTransitionTime: since},
	}
	for i, st := range sessions {
		mustCreate(t, &v1alpha1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Namespace: sys, Name: fmt.Sprintf("s%d", len(sessions)-i)}, Status: st})
	}
	// Another installation's session (another namespace) is not listed.
	ensureNamespace(t, "ironlb-other")
	mustCreate(t, &v1alpha1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-other", Name: "s"},
		Status: v1alpha1.BGPSessionStateStatus{Node: "node-9", Peer: "x", PeerAddress: "192.0.2.9", State: v1alpha1.BGPStateIdle}})

	rep, err := readStatus(ctx, env.Client, types.NamespacedName{Namespace: sys, Name: "config"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sessions, rep.Sessions); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	// Other tests' Services are there too, in other namespaces; in
	// Layer 2 pools or none, they get no sessions and no BGP announcers.
	for _, r := range rep.Services {
		switch {
		case r.Namespace != ns && (len(r.BGPSessions) > 0 || len(r.BGPAnnouncers) > 0):
			t.Errorf("%s/%s, not announced over BGP, has sessions or announcers: %+v, %+v", r.Namespace, r.Name, r.BGPSessions, r.BGPAnnouncers)
		case r.Namespace != ns:
		case r.Mode != "bgp":
			t.Errorf("web: mode %q, want bgp", r.Mode)
		default:
			if diff := cmp.Diff(sessions, r.BGPSessions); diff != "" {
				t.Errorf("web's sessions (-want +got):\n%s", diff)
			}
		}
	}

	status := func(args ...string) string {
		t.Helper()
		out, stderr, err := run(t, "", append([]string{"--kubeconfig", env.Kubeconfig, "--namespace", sys, "status"}, args...)...)
		if err != nil {
			t.Fatalf("status %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	out := status()
	wide := status("-o", "wide")
	// The Services table's widths depend on other tests' Services: lines
	// are compared field by field. node-2's session is down, node-4 is
	// NotReady.
	for _, l := range []struct{ out, line string }{
		{out, "bgpstatus web 203.0.113.100 routed bgp node-1, node-3 Allocated"},
		{out, "bgpstatus api " + api.Status.LoadBalancer.Ingress[0].IP + " routed bgp node-3 Allocated"},
		{out, "bgpstatus batch " + batch.Status.LoadBalancer.Ingress[0].IP + " routed bgp none (no node with a ready endpoint) Allocated"},
		{wide, "bgpstatus web 203.0.113.100 routed bgp node-1 (peers[0]), node-3 (peers[0]) Allocated"},
	} {
		if !slices.ContainsFunc(strings.Split(l.out, "\n"), func(got string) bool {
			// -o wide ends lines with the message.
			f, want := strings.Fields(got), strings.Fields(l.line)
			return slices.Equal(f[:min(len(f), len(want))], want)
		}) {
			t.Errorf("status lacks the line %q:\n%s", l.line, l.out)
		}
	}
	for _, s := range []string{
		"\nBGP sessions:\nNODE    PEER      ADDRESS    STATE        BFD     PREFIXES\n" +
			"node-1  peers[0]  192.0.2.1  Established  <none>  1\n" +
			"node-2  peers[0]  192.0.2.1  Active       <none>  0\n" +
			"node-3  peers[0]  192.0.2.1  Established  <none>  2\n" +
			"node-4  peers[0]  192.0.2.1  Established  <none>  2\n",
		"\nnode-2's session with peers[0] is Active: " + md5 + "\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "node-9") {
		t.Errorf("status lists another namespace's session:\n%s", out)
	}
	if !strings.Contains(wide, "PREFIXES  ERROR\n") || !strings.Contains(wide, "Active       <none>  0         "+md5+"\n") {
		t.Errorf("wide output lacks the error column:\n%s", wide)
	}

	var rows []statusRow
	if err := json.Unmarshal([]byte(status("-o", "json")), &rows); err != nil {
		t.Fatalf("json output: %v", err)
	}
	i := slices.IndexFunc(rows, func(r statusRow) bool { return r.Namespace == ns && r.Name == "web" })
	if i < 0 || len(rows[i].BGPSessions) != len(sessions) || rows[i].BGPSessions[1].LastError != md5 {
		t.Fatalf("json rows: %+v, want web with every session", rows)
	}
	want := []bgpAnnouncer{{IP: "203.0.113.100", Node: "node-1", Peer: "peers[0]"}, {IP: "203.0.113.100", Node: "node-3", Peer: "peers[0]"}}
	if diff := cmp.Diff(want, rows[i].BGPAnnouncers); diff != "" {
		t.Errorf("web's bgpAnnouncers in json (-want +got):\n%s", diff)
	}
}

// TestBGPAnnouncers checks who the ANNOUNCED BY column says announces a
// Service's address over BGP, or why no node does: the speakers' rule
// (internal/announce Round.BGP, with the peers internal/bgp.Routes
// sends routes to) applied to the sessions, Nodes, BGPAnnouncements and
// EndpointSlices.
func TestBGPAnnouncers(t *testing.T) {
	const ip = "203.0.113.1"
	node := func(name, rack string, ready bool, labels ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": rack}}}
		for _, l := range labels {
			n.Labels[l] = ""
		}
		if ready {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		}
		return n
	}
	session := func(node, peer string, st v1alpha1.BGPState) v1alpha1.BGPSessionStateStatus {
		return v1alpha1.BGPSessionStateStatus{Node: node, Peer: peer, PeerAddress: "192.0.2.1", State: st}
	}
	announce := func(peers []string, rack string) v1alpha1.BGPAnnouncementSpec {
		a := v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}, Peers: peers}
		if rack != "" {
			a.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": rack}}}
		}
		return a
	}
	ready, notReady := true, false
	endpoint := func(node string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{"10.244.0.1"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	const est, active = v1alpha1.BGPStateEstablished, v1alpha1.BGPStateActive
	// The base: three Ready nodes, sessions with router Established on
	// node-1 and node-2, not node-3; one announcement of every node to
	// every peer.
	type fixture struct {
		nodes     []corev1.Node
		sessions  []v1alpha1.BGPSessionStateStatus
		anns      []v1alpha1.BGPAnnouncementSpec
		endpoints []discoveryv1.Endpoint // of web, in one EndpointSlice
		local     bool                   // web has externalTrafficPolicy: Local
		shared    bool                   // a Cluster Service shares web's address
		row       statusRow              // web's row, before setBGPAnnouncers
	}
	base := func() fixture {
		return fixture{
			nodes:    []corev1.Node{node("node-1", "a", true), node("node-2", "b", true), node("node-3", "b", true)},
			sessions: []v1alpha1.BGPSessionStateStatus{session("node-1", "router", est), session("node-2", "router", est), session("node-3", "router", active)},
			anns:     []v1alpha1.BGPAnnouncementSpec{announce(nil, "")},
			row:      statusRow{Namespace: "shop", Name: "web", IPs: []string{ip}, Mode: "bgp"},
		}
	}
	for _, tc := range []struct {
		name     string
		change   func(*fixture)
		want     string // ANNOUNCED BY
		wantWide string // ANNOUNCED BY with -o wide
	}{
		{"Established on 2 of 3 nodes", func(*fixture) {}, "node-1, node-2", "node-1 (router), node-2 (router)"},
		{"NotReady node", func(f *fixture) { f.nodes[1] = node("node-2", "b", false) }, "node-1", "node-1 (router)"},
		{"excluded node", func(f *fixture) { f.nodes[0] = node("node-1", "a", true, v1alpha1.LabelExcludeFromLoadBalancers) }, "node-2", "node-2 (router)"},
		{"session of a node that does not exist", func(f *fixture) { f.nodes = f.nodes[1:] }, "node-2", "node-2 (router)"},
		{"announcement with a node selector", func(f *fixture) { f.anns = []v1alpha1.BGPAnnouncementSpec{announce(nil, "b")} }, "node-2", "node-2 (router)"},
		{"announcements per peer", func(f *fixture) {
			f.sessions = append(f.sessions, session("node-1", "router-b", est), session("node-3", "router-b", est))
			// node-1 is in rack a: it announces to router only.
			f.anns = []v1alpha1.BGPAnnouncementSpec{announce([]string{"router"}, ""), announce([]string{"router-b"}, "b")}
		}, "node-1, node-2, node-3", "node-1 (router), node-2 (router), node-3 (router-b)"},
		{"more nodes than the table names", func(f *fixture) {
			f.nodes = append(f.nodes, node("node-4", "b", true), node("node-5", "b", true))
			f.sessions = append(f.sessions, session("node-3", "router-b", est), session("node-4", "router", est), session("node-5", "router", est))
		}, "node-1, node-2, node-3 +2",
			"node-1 (router), node-2 (router), node-3 (router-b), node-4 (router), node-5 (router)"},
		{"node with two peers", func(f *fixture) {
			f.sessions = append(f.sessions, session("node-1", "router-b", est))
		}, "node-1, node-2", "node-1 (router, router-b), node-2 (router)"},
		{"externalTrafficPolicy Local, one endpoint node", func(f *fixture) {
			f.local = true
			f.endpoints = []discoveryv1.Endpoint{endpoint("node-1", &notReady), endpoint("node-2", nil), endpoint("node-3", &ready)}
		}, "node-2", "node-2 (router)"},
		{"externalTrafficPolicy Local, shared with a Cluster Service", func(f *fixture) {
			f.local, f.shared = true, true
			f.endpoints = []discoveryv1.Endpoint{endpoint("node-2", &ready)}
		}, "node-1, node-2", "node-1 (router), node-2 (router)"},
		{"mixed modes", func(f *fixture) {
			f.row.Mode = "bgp+layer2"
			f.row.Announcers = []v1alpha1.Announcer{{IP: ip, Node: "node-3", Interface: "eth0", MAC: "02:00:00:00:00:03"}}
		}, "bgp: node-1, node-2; layer2: node-3", "bgp: node-1 (router), node-2 (router); layer2: node-3 on eth0 (02:00:00:00:00:03)"},

		// Why no node announces it.
		{"no session", func(f *fixture) { f.sessions = nil }, "none (no Established session)", ""},
		{"no Established session", func(f *fixture) {
			f.sessions = []v1alpha1.BGPSessionStateStatus{session("node-1", "router", active), session("node-2", "router", v1alpha1.BGPStateIdle)}
		}, "none (no Established session)", ""},
		{"Established only to a peer it is not announced to", func(f *fixture) {
			f.anns = []v1alpha1.BGPAnnouncementSpec{announce([]string{"router-b"}, "")}
		}, "none (no Established session)", ""},
		{"Established only on NotReady nodes", func(f *fixture) {
			f.nodes = []corev1.Node{node("node-1", "a", false), node("node-2", "b", false), node("node-3", "b", true)}
		}, "none (no Established session on a Ready node)", ""},
		{"Established only on excluded nodes", func(f *fixture) {
			f.nodes = []corev1.Node{node("node-1", "a", true, v1alpha1.LabelExcludeFromLoadBalancers), node("node-2", "b", true, v1alpha1.LabelExcludeFromLoadBalancers), node("node-3", "b", true)}
		}, "none (no Established session on a node not labelled " + v1alpha1.LabelExcludeFromLoadBalancers + ")", ""},
		{"node selector matches no node with a session", func(f *fixture) {
			f.anns = []v1alpha1.BGPAnnouncementSpec{announce(nil, "c")}
		}, "none (no BGPAnnouncement selects a node with an Established session)", ""},
		{"externalTrafficPolicy Local, endpoint only where no session is Established", func(f *fixture) {
			f.local = true
			f.endpoints = []discoveryv1.Endpoint{endpoint("node-3", &ready), endpoint("node-1", &notReady)}
		}, "none (no node with a ready endpoint)", ""},
		{"externalTrafficPolicy Local, no endpoint", func(f *fixture) { f.local = true }, "none (no node with a ready endpoint)", ""},
		{"externalTrafficPolicy Local, endpoint only on a node the announcement does not select", func(f *fixture) {
			f.local = true
			f.anns = []v1alpha1.BGPAnnouncementSpec{announce(nil, "b")}
			f.endpoints = []discoveryv1.Endpoint{endpoint("node-1", &ready)}
		}, "none (no node with a ready endpoint)", ""},
		{"a node selected for another peer only", func(f *fixture) {
			f.sessions = []v1alpha1.BGPSessionStateStatus{session("node-1", "router", est), session("node-1", "router-b", est)}
			f.anns = []v1alpha1.BGPAnnouncementSpec{announce([]string{"router"}, "b"), announce([]string{"router-b"}, "")}
		}, "node-1", "node-1 (router-b)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.change(&f)
			in := config.Input{
				Pools: []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.0/28"}}}},
				BGPPeers: []v1alpha1.BGPPeer{
					{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "192.0.2.1"}},
					{ObjectMeta: metav1.ObjectMeta{Name: "router-b"}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "192.0.2.2"}},
				},
			}
			for i, a := range f.anns {
				in.BGPAnnouncements = append(in.BGPAnnouncements, v1alpha1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("ann-", i)}, Spec: a})
			}
			cfg, problems := config.Build(in, nil)
			if len(problems) > 0 {
				t.Fatalf("config problems: %v", problems)
			}
			web := f.row
			web.local = f.local
			rows := []statusRow{web}
			if f.shared {
				rows = append(rows, statusRow{Namespace: "shop", Name: "web-udp", IPs: []string{ip}, Mode: "bgp"})
			}
			eps := []discoveryv1.EndpointSlice{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-x1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
				Endpoints:  f.endpoints,
			}}
			setBGPAnnouncers(rows, newBGPFacts(cfg, f.sessions, f.nodes, eps))
			if got := rows[0].announcedBy(false); got != tc.want {
				t.Errorf("ANNOUNCED BY %q, want %q", got, tc.want)
			}
			if tc.wantWide == "" {
				tc.wantWide = tc.want
			}
			if got := rows[0].announcedBy(true); got != tc.wantWide {
				t.Errorf("ANNOUNCED BY (wide) %q, want %q", got, tc.wantWide)
			}
		})
	}
}
