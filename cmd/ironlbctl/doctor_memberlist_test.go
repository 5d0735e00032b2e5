package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/election"
)

// testPodLabel marks the pods TestDoctorMemberlist creates: the package's
// tests share one API server, and the check reads every pod in it.
const testPodLabel = "ironlb.io/test-doctor-memberlist"

// TestDoctorMemberlist runs the memberlist check against a real API
// server: another pod on memberlist's port (MetalLB's speaker, a hostPort),
// the port the speaker DaemonSet's --memberlist-bind sets, and the key's
// Secret.
func TestDoctorMemberlist(t *testing.T) {
	ctx := context.Background()
	const ns = "ironlb-doctor-ml"
	for _, n := range []string{ns, "metallb-system", "doctor"} {
		ensureNamespace(t, n)
	}

	memberlistPorts := func(port int32) []corev1.ContainerPort {
		return []corev1.ContainerPort{
			{Name: "memberlist-tcp", ContainerPort: port, Protocol: corev1.ProtocolTCP},
			{Name: "memberlist-udp", ContainerPort: port, Protocol: corev1.ProtocolUDP},
		}
	}
	speakerLabels := map[string]string{componentLabel: speakerComponent, "app.kubernetes.io/name": "ironlb"}
	speakerDS := func(args ...string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ironlb-speaker", Labels: speakerLabels},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: speakerLabels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: speakerLabels},
					Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{
						Name: "speaker", Image: "ironlb", Command: []string{"/ironlb"},
						Args:  append([]string{"speaker", "--namespace=$(POD_NAMESPACE)"}, args...),
						Ports: memberlistPorts(7946),
					}}},
				},
			},
		}
	}
	// hostPod is a pod on node's network; the test sets a status phase
	// given before creation after it.
	hostPod := func(namespace, name, node string, ports ...corev1.ContainerPort) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{
				{Name: "main", Image: "example", Ports: ports},
			}},
		}
	}
	withLabels := func(p *corev1.Pod, labels map[string]string) *corev1.Pod {
		p.Labels = map[string]string{testPodLabel: "true"}
		for k, v := range labels {
			p.Labels[k] = v
		}
		return p
	}
	running := func(p *corev1.Pod) *corev1.Pod {
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		return p
	}
	ironlbSpeaker := func(node string) *corev1.Pod {
		return withLabels(hostPod(ns, "ironlb-speaker-"+node, node, memberlistPorts(7946)...), speakerLabels)
	}

	// MetalLB's speaker DaemonSet, owning its pods (nothing runs it here),
	// with its chart's labels: the component label is the same as ironlb's.
	metallbLabels := map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}
	metallbDS := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "speaker", Labels: metallbLabels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: metallbLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: metallbLabels},
				Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "speaker", Image: "metallb"}}},
			},
		},
	}
	mustCreate(t, metallbDS)
	metallbSpeaker := func(node string) *corev1.Pod {
		p := withLabels(hostPod("metallb-system", "speaker-"+node, node,
			append(memberlistPorts(7946), corev1.ContainerPort{Name: "monitoring", ContainerPort: 7472})...), metallbLabels)
		p.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "DaemonSet", Name: metallbDS.Name, UID: metallbDS.UID, Controller: ptr.To(true),
		}}
		return running(p)
	}
	key := func(name string, n int) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Data:       map[string][]byte{"secretkey": []byte(strings.Repeat("k", n))},
		}
	}

	tests := []struct {
		name      string
		objs      []client.Object
		want      []string // lines of the report, each found in it
		wantFails int
	}{
		{
			name: "healthy",
			objs: []client.Object{speakerDS(), running(ironlbSpeaker("ml-1")), key("ironlb-memberlist", 32),
				// Not on the node's network: a containerPort alone takes no node port.
				withLabels(&corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "doctor", Name: "gossip"},
					Spec: corev1.PodSpec{NodeName: "ml-1", Containers: []corev1.Container{
						{Name: "main", Image: "example", Ports: memberlistPorts(7946)},
					}},
				}, nil)},
			want: []string{
				"OK    memberlist  port 7946 (the speaker's default): no other pod takes it as a host port",
				"OK    memberlist  Secret ironlb-doctor-ml/ironlb-memberlist holds a 32-byte key (AES-256)",
			},
		},
		{
			name: "MetalLB speaker on the port",
			objs: []client.Object{speakerDS(), running(ironlbSpeaker("ml-1")), key("ironlb-memberlist", 32), metallbSpeaker("ml-1"), metallbSpeaker("ml-2")},
			want: []string{
				"FAIL  memberlist  MetalLB's DaemonSet metallb-system/speaker (pod speaker-ml-1 on node ml-1, pod speaker-ml-2 on node ml-2) takes host port 7946 (TCP, UDP), which ironlb's speakers need for memberlist (the speaker's default): only one of the two can run on a node",
				"fix: uninstall MetalLB first: convert its configuration (ironlbctl convert), then delete it the way it was installed (kubectl delete -f its manifest, or helm uninstall); " +
					"or, to run both for a while, move ironlb's memberlist to a free port, 7947: kubectl -n ironlb-doctor-ml edit daemonset ironlb-speaker; in the speaker's args, add --memberlist-bind=:7947; set the memberlist-tcp and memberlist-udp ports (containerPort and hostPort) to 7947",
			},
			wantFails: 1,
		},
		{
			name: "memberlist moved off MetalLB's port",
			objs: []client.Object{speakerDS("--memberlist-bind=:7947"), key("ironlb-memberlist", 32), metallbSpeaker("ml-1")},
			want: []string{"OK    memberlist  port 7947 (--memberlist-bind in DaemonSet ironlb-doctor-ml/ironlb-speaker): no other pod takes it as a host port"},
		},
		{
			name: "moved onto another pod's port",
			objs: []client.Object{speakerDS("--memberlist-bind", "10.0.0.1:7472"), key("ironlb-memberlist", 32), metallbSpeaker("ml-1")},
			want: []string{
				"FAIL  memberlist  MetalLB's DaemonSet metallb-system/speaker (pod speaker-ml-1 on node ml-1) takes host port 7472 (TCP)",
				"change --memberlist-bind 10.0.0.1:7472 to 10.0.0.1:7473",
			},
			wantFails: 1,
		},
		{
			name: "hostPort",
			objs: []client.Object{speakerDS(), key("ironlb-memberlist", 32), withLabels(&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "doctor", Name: "gossip"},
				Spec: corev1.PodSpec{NodeName: "ml-2", Containers: []corev1.Container{{Name: "main", Image: "example", Ports: []corev1.ContainerPort{
					{ContainerPort: 8000, HostPort: 7946, Protocol: corev1.ProtocolUDP},
				}}}},
			}, nil)},
			want: []string{
				"FAIL  memberlist  pod doctor/gossip on node ml-2 (no owner) takes host port 7946 (UDP), which ironlb's speakers need for memberlist",
				"fix: move that pod off port 7946, or move ironlb's memberlist to a free port, 7947",
			},
			wantFails: 1,
		},
		{
			name: "5-byte key",
			objs: []client.Object{speakerDS(), running(ironlbSpeaker("ml-1")), key("ironlb-memberlist", 5)},
			want: []string{
				`FAIL  memberlist  Secret ironlb-doctor-ml/ironlb-memberlist: key "secretkey" is 5 bytes; memberlist's AES keys are 16, 24 or 32 bytes, so the speakers run without membership`,
				"fix: delete the Secret; the controller creates a new 32-byte key within 10 s; then restart the speakers: " +
					"kubectl -n ironlb-doctor-ml delete secret ironlb-memberlist && sleep 10 && kubectl -n ironlb-doctor-ml rollout restart daemonset ironlb-speaker",
			},
			wantFails: 1,
		},
		{
			name: "no key before the speakers run",
			objs: []client.Object{speakerDS(), ironlbSpeaker("ml-1")}, // Pending
			want: []string{"OK    memberlist  Secret ironlb-doctor-ml/ironlb-memberlist with the memberlist key does not exist yet; no speaker runs, and the controller creates it"},
		},
		{
			name: "no key while speakers run",
			objs: []client.Object{speakerDS(), running(ironlbSpeaker("ml-1"))},
			want: []string{
				"FAIL  memberlist  Secret ironlb-doctor-ml/ironlb-memberlist with the memberlist key is missing while speakers run (ironlb-speaker-ml-1)",
				"fix: the controller creates it within 10 s of its absence; then restart all the speakers so they read it: kubectl -n ironlb-doctor-ml rollout restart daemonset ironlb-speaker",
			},
			wantFails: 1,
		},
		{
			name: "another Secret",
			objs: []client.Object{speakerDS("--memberlist-secret=gossip-key"), running(ironlbSpeaker("ml-1")), key("gossip-key", 24), key("ironlb-memberlist", 5)},
			want: []string{"OK    memberlist  Secret ironlb-doctor-ml/gossip-key holds a 24-byte key (AES-192)"},
		},
		{
			name: "membership off",
			objs: []client.Object{speakerDS("--memberlist-bind=off"), running(ironlbSpeaker("ml-1")), key("ironlb-memberlist", 5), metallbSpeaker("ml-1")},
			want: []string{"OK    memberlist  membership turned off (--memberlist-bind=off in DaemonSet ironlb-doctor-ml/ironlb-speaker): port and key not checked"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, o := range tt.objs {
				p, isPod := o.(*corev1.Pod)
				var status corev1.PodStatus
				if isPod {
					status = p.Status // the API server drops it on create
				}
				mustCreate(t, o)
				if isPod && status.Phase != "" {
					p.Status = status
					if err := env.Client.Status().Update(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
			}
			f := gatherFacts(ctx, env.Client, types.NamespacedName{Namespace: ns, Name: "config"})
			f.CLI = "ironlbctl"
			if f.Memberlist.DaemonSetErr != nil || f.Memberlist.HostPodsErr != nil || f.Memberlist.SecretErr != nil {
				t.Fatalf("gather: %+v", f.Memberlist)
			}
			f.Memberlist.HostPods = slices.DeleteFunc(f.Memberlist.HostPods, func(p corev1.Pod) bool { return p.Labels[testPodLabel] == "" })

			var b strings.Builder
			fails := printFindings(&b, checkMemberlist(f))
			out := b.String()
			if testing.Verbose() {
				t.Logf("memberlist findings:\n%s", out)
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			if fails != tt.wantFails {
				t.Errorf("%d failures, want %d:\n%s", fails, tt.wantFails, out)
			}
		})
	}
}

// TestMemberlistDefaults checks doctor's copy of the speakers' gossip port.
func TestMemberlistDefaults(t *testing.T) {
	if memberlistDefaultPort != election.DefaultPort {
		t.Errorf("memberlistDefaultPort = %d, the speaker uses %d", memberlistDefaultPort, election.DefaultPort)
	}
}

func TestBindPort(t *testing.T) {
	tests := []struct {
		bind    string
		port    uint16
		off     bool
		wantErr bool
	}{
		{"", 7946, false, false},
		{"off", 0, true, false},
		{":7947", 7947, false, false},
		{":0", 7946, false, false},
		{"10.0.0.1:8000", 8000, false, false},
		{"[fd00::1]:8001", 8001, false, false},
		{"10.0.0.1", 0, false, true},
		{":http", 0, false, true},
		{"$(POD_IP):7946", 0, false, true},
	}
	for _, tt := range tests {
		port, off, err := bindPort(tt.bind)
		if port != tt.port || off != tt.off || (err != nil) != tt.wantErr {
			t.Errorf("bindPort(%q) = %d, %t, %v; want %d, %t, error %t", tt.bind, port, off, err, tt.port, tt.off, tt.wantErr)
		}
	}
	argv := []string{"/ironlb", "speaker", "--memberlist-bind=:1", "--memberlist-bind", ":2", "--", "--memberlist-bind=:3"}
	if v, ok := flagValue(argv, "memberlist-bind"); v != ":2" || !ok {
		t.Errorf("flagValue = %q, %t; want the last before --, :2", v, ok)
	}
	if v, ok := flagValue(argv, "memberlist-secret"); ok {
		t.Errorf("flagValue of an absent flag = %q, true", v)
	}
}

func TestReachFindings(t *testing.T) {
	cases := []struct {
		name string
		m    memberlistFacts
		sev  severity
		want string // in the message; "" for no finding
	}{
		{"every speaker reaches a majority", memberlistFacts{Reach: map[string]bool{"a": true, "b": true, "c": true}}, sevOK, "each of the 3 speakers reaches a majority"},
		{"one cut off", memberlistFacts{Reach: map[string]bool{"a": true, "b": false, "c": true}}, sevWarn, "the speaker on node b reaches no majority"},
		{"two cut off", memberlistFacts{Reach: map[string]bool{"a": true, "b": false, "c": false}}, sevWarn, "the speakers on nodes b, c reach no majority"},
		{"blocked everywhere: degraded mode", memberlistFacts{Reach: map[string]bool{"a": false, "b": false, "c": false}}, sevFail, "they run in degraded mode"},
		{"Leases unreadable", memberlistFacts{ReachErr: errors.New("forbidden")}, sevWarn, "cannot list the speakers' Leases"},
		{"no speaker", memberlistFacts{Reach: map[string]bool{}}, sevOK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := reachFindings(c.m, 7946)
			if c.want == "" {
				if len(got) != 0 {
					t.Errorf("findings %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Severity != c.sev || !strings.Contains(got[0].Message, c.want) {
				t.Fatalf("findings %+v, want one %s containing %q", got, c.sev, c.want)
			}
			if c.sev != sevOK && !strings.Contains(got[0].Fix, "7946") && c.m.ReachErr == nil {
				t.Errorf("fix %q does not name the port", got[0].Fix)
			}
		})
	}
}
