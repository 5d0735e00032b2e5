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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/controller"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Scheme: controller.Scheme()}) }

// TestStatus runs the controller on a real API server and checks that
// `ironlbctl status` shows each Service's address, pool and mode, or why it
// is pending.
func TestStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustCreate := func(o interface{ GetName() string }, err error) {
		if err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ironlb-system"}}
	mustCreate(ns, env.Client.Create(ctx, ns))
	c, err := controller.New(env.Config, controller.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

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
		diff := cmp.Diff(want, rows, cmpopts.IgnoreFields(statusRow{}, "Message"))
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
// JSON gives each BGP Service the sessions its addresses go to.
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

	md5 := "dial tcp 192.0.2.1:179: i/o timeout (no answer: the router may require a TCP MD5 password, or a firewall drops the connection)"
	since := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	sessions := []v1alpha1.BGPSessionStateStatus{
		{Node: "node-1", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateEstablished, PrefixesSent: 1, LastTransitionTime: since},
		{Node: "node-2", Peer: "peers[0]", PeerAddress: "192.0.2.1", State: v1alpha1.BGPStateActive, LastError: md5, LastTransitionTime: since},
	}
	for i, st := range sessions {
		mustCreate(t, &v1alpha1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Namespace: sys, Name: fmt.Sprintf("s%d", 2-i)}, Status: st})
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
	// Layer 2 pools or none, they get no sessions.
	for _, r := range rep.Services {
		switch {
		case r.Namespace != ns && len(r.BGPSessions) > 0:
			t.Errorf("%s/%s, not announced over BGP, has sessions: %+v", r.Namespace, r.Name, r.BGPSessions)
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
	// The Services table's widths depend on other tests' Services.
	if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{"bgpstatus", "web", "203.0.113.100", "routed", "bgp", "<none>", "Allocated"})
	}) {
		t.Errorf("status lacks web's line:\n%s", out)
	}
	for _, s := range []string{
		"\nBGP sessions:\nNODE    PEER      ADDRESS    STATE        BFD     PREFIXES\n" +
			"node-1  peers[0]  192.0.2.1  Established  <none>  1\n" +
			"node-2  peers[0]  192.0.2.1  Active       <none>  0\n",
		"\nnode-2's session with peers[0] is Active: " + md5 + "\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "node-9") {
		t.Errorf("status lists another namespace's session:\n%s", out)
	}
	if out := status("-o", "wide"); !strings.Contains(out, "PREFIXES  ERROR\n") || !strings.Contains(out, "Active       <none>  0         "+md5+"\n") {
		t.Errorf("wide output lacks the error column:\n%s", out)
	}

	var rows []statusRow
	if err := json.Unmarshal([]byte(status("-o", "json")), &rows); err != nil {
		t.Fatalf("json output: %v", err)
	}
	i := slices.IndexFunc(rows, func(r statusRow) bool { return r.Namespace == ns && r.Name == "web" })
	if i < 0 || len(rows[i].BGPSessions) != 2 || rows[i].BGPSessions[1].LastError != md5 {
		t.Errorf("json rows: %+v, want web with both sessions", rows)
	}
}
