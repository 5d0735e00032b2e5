package main

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	apiversion "k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestDoctor runs doctor against a real API server set up with the
// tutorial's mistakes: kube-proxy in IPVS mode without strictARP, a pool
// holding a node's address, a node without a speaker and a Service whose
// address is taken. Then --fix --yes repairs strictARP.
func TestDoctor(t *testing.T) {
	ctx := context.Background()
	const ns = "ironlb-doctor"
	startController(t, ns)
	ensureNamespace(t, "doctor")

	conf, err := os.ReadFile(filepath.Join("testdata", "doctor", "kube-proxy-ipvs.conf"))
	if err != nil {
		t.Fatal(err)
	}
	kp := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data:       map[string]string{"config.conf": string(conf), "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"},
	}
	mustCreate(t, kp)

	for i, ip := range []string{"203.0.113.10", "203.0.113.30"} {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: []string{"doctor-node-1", "doctor-node-2"}[i]},
			Spec:       corev1.NodeSpec{PodCIDRs: []string{[]string{"10.244.1.0/24", "10.244.2.0/24"}[i]}},
		}
		mustCreate(t, n)
		n.Status = corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: n.Name}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}
		if err := env.Client.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// The pool holds doctor-node-1's address.
	mustCreate(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"},
		Data:       map[string]string{"config": "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 203.0.113.8-203.0.113.15\n"},
	})
	// A speaker runs and is ready on doctor-node-1 only.
	speaker := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "speaker-abcde", Labels: map[string]string{componentLabel: speakerComponent}},
		Spec:       corev1.PodSpec{NodeName: "doctor-node-1", Containers: []corev1.Container{{Name: "speaker", Image: "ironlb"}}},
	}
	mustCreate(t, speaker)
	speaker.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := env.Client.Status().Update(ctx, speaker); err != nil {
		t.Fatal(err)
	}
	// Two Services ask for one address: the second is pending. The first
	// must hold it before the second asks (until the controller has read
	// the ConfigMap, both are pending, and then either may win).
	for _, name := range []string{"first", "second"} {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "doctor", Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: "203.0.113.12",
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}},
			},
		}
		mustCreate(t, s)
		if name == "first" {
			waitAllocated(t, s)
		}
		waitCondition(t, s)
	}

	args := []string{"--kubeconfig", env.Kubeconfig, "-n", ns, "doctor"}
	out, _, err := run(t, "", args...)
	if testing.Verbose() {
		t.Logf("ironlbctl doctor:\n%s", out)
	}
	var code exitCode
	if !errors.As(err, &code) || code != 1 {
		t.Errorf("doctor: error %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{
		"OK    kubernetes  v1.37.", // the version bin/kube-apiserver reports, from hack/tools
		"FAIL  kube-proxy  mode ipvs with ipvs.strictARP: false: every node answers ARP",
		"fix: ironlbctl doctor --fix (sets ipvs.strictARP: true in ConfigMap kube-system/kube-proxy), then restart kube-proxy: kubectl -n kube-system rollout restart daemonset kube-proxy",
		"FAIL  pools       pool default (ConfigMap ironlb-doctor/config): 203.0.113.8-203.0.113.15 contains node addresses: 203.0.113.10 (InternalIP of node doctor-node-1)",
		"fix: take them out of the pool: write 203.0.113.8-203.0.113.9, 203.0.113.11-203.0.113.15 instead of 203.0.113.8-203.0.113.15: kubectl -n ironlb-doctor edit configmap config",
		"FAIL  speakers    node doctor-node-2 has no speaker pod: ironlb cannot announce addresses from it",
		"FAIL  controller  controller not running", // it runs in the test process, not as a pod
		"OK    config      1 configuration object, all valid",
		"FAIL  services    doctor/second is pending (IPInUse): 203.0.113.12 is already used by doctor/first (no sharing key); free in pool default: 203.0.113.8-203.0.113.11, 203.0.113.13-203.0.113.15",
		"fix: ask for a free address (see above): ironlbctl expose svc/second -n doctor --ip ADDRESS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "doctor-node-1 has no speaker") {
		t.Errorf("report says doctor-node-1, which runs a ready speaker, has none:\n%s", out)
	}

	// envtest's API server serves ServiceCIDR objects for its default
	// --service-cluster-ip-range.
	cidrs, guess, err := serviceCIDRs(ctx, env.Client)
	if err != nil || guess || !slices.Contains(cidrs, netip.MustParsePrefix("10.0.0.0/24")) {
		t.Errorf("serviceCIDRs = %v, guess %v, error %v; want 10.0.0.0/24 from the ServiceCIDR objects", cidrs, guess, err)
	}

	// --fix asks first; "n" changes nothing.
	out, _, _ = run(t, "n\n", append(args, "--fix")...)
	if !strings.Contains(out, "Apply this change? [y/N]") || !strings.Contains(out, "not changed") {
		t.Errorf("--fix did not ask, or did not take no for an answer:\n%s", out)
	}
	if got := strictARPOf(t); got {
		t.Fatalf("strictARP is true after answering no")
	}

	out, _, _ = run(t, "", append(args, "--fix", "--yes")...)
	for _, want := range []string{
		"--- kube-system/kube-proxy config.conf\n+++ kube-system/kube-proxy config.conf (fixed)\n@@ -27,7 +27,7 @@\n",
		"   scheduler: \"\"\n-  strictARP: false\n+  strictARP: true\n   syncPeriod: 0s\n",
		"kubectl -n kube-system rollout restart daemonset kube-proxy",
		"OK    kube-proxy  mode ipvs with ipvs.strictARP: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--fix --yes output lacks %q:\n%s", want, out)
		}
	}
	if !strictARPOf(t) {
		t.Errorf("ConfigMap kube-system/kube-proxy does not have strictARP: true after --fix --yes")
	}
	var got corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(kp), &got); err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(string(conf), "strictARP: false", "strictARP: true", 1); got.Data["config.conf"] != want {
		t.Errorf("--fix changed more than strictARP (-want +got):\n%s", cmp.Diff(want, got.Data["config.conf"]))
	}
	if got.Data["kubeconfig.conf"] != kp.Data["kubeconfig.conf"] {
		t.Errorf("--fix changed the ConfigMap's other key")
	}
	out, _, _ = run(t, "", append(args, "--fix", "--yes")...)
	if !strings.Contains(out, "fix: nothing to do for kube-proxy: mode ipvs with ipvs.strictARP: true") {
		t.Errorf("a second --fix should find nothing to do:\n%s", out)
	}
}

func strictARPOf(t *testing.T) bool {
	t.Helper()
	var cm corev1.ConfigMap
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: "kube-system", Name: "kube-proxy"}, &cm); err != nil {
		t.Fatal(err)
	}
	kp, err := parseKubeProxyConfig(cm.Data["config.conf"])
	if err != nil {
		t.Fatal(err)
	}
	return kp.IPVS.StrictARP
}

// mustCreate creates o and deletes it when the test ends.
func mustCreate(t *testing.T, o client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), o); err != nil {
		t.Fatalf("create %s: %v", o.GetName(), err)
	}
	t.Cleanup(func() { deleteAndWait(t, o) })
}

// TestDiagnose checks verdicts that the cluster test does not reach.
func TestDiagnose(t *testing.T) {
	readyNode := func(name, ip, podCIDR string) corev1.Node {
		return corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.NodeSpec{PodCIDRs: []string{podCIDR}},
			Status: corev1.NodeStatus{
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
	}
	readyPod := func(component, name, node string) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{componentLabel: component}},
			Spec:       corev1.PodSpec{NodeName: node},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
	}
	legacy := func(addresses string) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "config"},
			Data:       map[string]string{"config": "address-pools:\n- name: lan\n  protocol: layer2\n  addresses: [" + addresses + "]\n"},
		}
	}
	kubeProxy := func(conf string) *corev1.ConfigMap {
		return &corev1.ConfigMap{Data: map[string]string{"config.conf": conf}}
	}
	healthy := func() clusterFacts {
		f := clusterFacts{
			Namespace: "ironlb-system", ConfigMap: types.NamespacedName{Namespace: "ironlb-system", Name: "config"}, CLI: "ironlbctl",
			Version:      &apiversion.Info{GitVersion: "v1.37.2"},
			KubeProxy:    kubeProxy("mode: iptables\n"),
			Nodes:        []corev1.Node{readyNode("n1", "192.168.1.11", "10.244.1.0/24"), readyNode("n2", "192.168.1.12", "10.244.2.0/24")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
			Speakers:     []corev1.Pod{readyPod(speakerComponent, "s1", "n1"), readyPod(speakerComponent, "s2", "n2")},
			Controllers:  []corev1.Pod{readyPod(controllerComponent, "c1", "n1")},
			Services:     []statusRow{{Namespace: "kubeflow", Name: "minio-service", State: "Allocated"}},
		}
		f.Input.ConfigMap = legacy("192.168.1.87-192.168.1.97")
		f.Memberlist.Secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "ironlb-memberlist"},
			Data:       map[string][]byte{"secretkey": make([]byte, 32)},
		}
		return f
	}

	tests := []struct {
		name  string
		edit  func(*clusterFacts)
		check string
		want  string // "SEVERITY message fragment"
	}{
		{"healthy", func(*clusterFacts) {}, "pools", "OK 1 pool clear of 2 node addresses, 2 pod CIDRs and the service CIDR 10.96.0.0/12"},
		{"healthy speakers", func(*clusterFacts) {}, "speakers", "OK a ready speaker on each of the 2 nodes"},
		{"healthy services", func(*clusterFacts) {}, "services", "OK 1 LoadBalancer Service, all with their addresses"},
		{"no kube-proxy", func(f *clusterFacts) { f.KubeProxy = nil }, "kube-proxy", "WARN kube-proxy not found (another CNI replaces it?)"},
		{"iptables default", func(f *clusterFacts) { f.KubeProxy = kubeProxy("ipvs:\n  strictARP: false\n") }, "kube-proxy", "OK mode not set (iptables, the Linux default): strictARP does not apply"},
		{"nftables", func(f *clusterFacts) { f.KubeProxy = kubeProxy("mode: nftables\n") }, "kube-proxy", "OK mode nftables: strictARP does not apply"},
		{"ipvs strict", func(f *clusterFacts) { f.KubeProxy = kubeProxy("mode: ipvs\nipvs:\n  strictARP: true\n") }, "kube-proxy", "OK mode ipvs with ipvs.strictARP: true"},
		{"ipvs not strict", func(f *clusterFacts) { f.KubeProxy = kubeProxy("mode: ipvs\n") }, "kube-proxy", "FAIL mode ipvs with ipvs.strictARP: false"},
		{"no speakers", func(f *clusterFacts) { f.Speakers = nil }, "speakers", "FAIL speaker not installed: no pod labelled app.kubernetes.io/component=speaker in namespace ironlb-system"},
		{"speaker crashing", func(f *clusterFacts) {
			f.Speakers[1].Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
				{Name: "speaker", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}
		}, "speakers", "FAIL speaker pod s2 on node n2 is not ready (speaker: CrashLoopBackOff)"},
		{"node not ready", func(f *clusterFacts) {
			f.Speakers = f.Speakers[:1]
			f.Nodes[1].Status.Conditions[0].Status = corev1.ConditionFalse
		}, "speakers", "WARN node n2 has no speaker pod; the node is not Ready"},
		{"no controller", func(f *clusterFacts) { f.Controllers = nil }, "controller", "FAIL controller not running"},
		{"pod CIDR", func(f *clusterFacts) { f.Input.ConfigMap = legacy("10.244.0.0/16") }, "pools",
			"FAIL pool lan (ConfigMap ironlb-system/config): 10.244.0.0-10.244.255.255 overlaps pod CIDRs: 10.244.1.0/24 (node n1), 10.244.2.0/24 (node n2)"},
		{"service CIDR", func(f *clusterFacts) { f.Input.ConfigMap = legacy("10.96.0.0/28") }, "pools",
			"FAIL pool lan (ConfigMap ironlb-system/config): 10.96.0.0-10.96.0.15 overlaps the service CIDR 10.96.0.0/12; kube-proxy"},
		{"service CIDR guessed", func(f *clusterFacts) { f.Input.ConfigMap = legacy("10.96.0.0/28"); f.ServiceCIDRGuess = true }, "pools",
			"WARN pool lan (ConfigMap ironlb-system/config): 10.96.0.0-10.96.0.15 overlaps the service CIDR 10.96.0.0/12 (a guess: the API server serves no ServiceCIDR objects"},
		{"IPPool holding a node address", func(f *clusterFacts) {
			f.Input.ConfigMap = nil
			f.Input.Pools = []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"192.168.1.0/28"}}}}
		}, "pools", "FAIL IPPool/lan: 192.168.1.0/28 contains node addresses: 192.168.1.11 (InternalIP of node n1)"},
		{"no pools", func(f *clusterFacts) { f.Input.ConfigMap = nil }, "pools", "WARN no address pool is configured"},
		{"invalid config", func(f *clusterFacts) { f.Input.ConfigMap = legacy("192.168.1.97-192.168.1.87") }, "config",
			"FAIL ConfigMap ironlb-system/config: address-pools[0].addresses[0]: invalid range"},
		{"metallb running", func(f *clusterFacts) {
			f.MetalLBPods = []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "speaker-x"}}}
		}, "metallb",
			"FAIL MetalLB is running (speaker-x in namespace metallb-system)"},
		{"metallb config left", func(f *clusterFacts) { f.MetalLBConfig = true }, "metallb",
			"WARN ConfigMap metallb-system/config holds MetalLB configuration, which ironlb does not read (it reads ironlb-system/config)"},
		{"service unknown", func(f *clusterFacts) { f.Services[0].State = "Unknown" }, "services", "WARN kubeflow/minio-service has no answer from the ironlb controller yet"},
		{"healthy memberlist", func(*clusterFacts) {}, "memberlist", "OK Secret ironlb-system/ironlb-memberlist holds a 32-byte key (AES-256)"},
		{"no speaker DaemonSet", func(*clusterFacts) {}, "memberlist", "OK port 7946 (the speaker's default; no speaker DaemonSet in namespace ironlb-system): no other pod takes it as a host port"},
		{"memberlist key unreadable", func(f *clusterFacts) { f.Memberlist.Secret, f.Memberlist.SecretErr = nil, errors.New("forbidden") }, "memberlist",
			"WARN cannot read Secret ironlb-system/ironlb-memberlist, so the memberlist key was not checked: forbidden"},
		{"memberlist key missing from the Secret", func(f *clusterFacts) { f.Memberlist.Secret.Data = nil }, "memberlist",
			`FAIL Secret ironlb-system/ironlb-memberlist has no key "secretkey"`},
		{"memberlist pods unreadable", func(f *clusterFacts) { f.Memberlist.HostPodsErr = errors.New("forbidden") }, "memberlist",
			"WARN cannot list pods, so port 7946 was not checked: forbidden"},
		{"hostNetwork pod on memberlist's port", func(f *clusterFacts) {
			// No hostPort: the API server's defaulting sets it to the
			// containerPort under hostNetwork, but the check does not count on it.
			f.Memberlist.HostPods = []corev1.Pod{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "consul", Name: "consul-abcde"},
				Spec: corev1.PodSpec{NodeName: "n2", HostNetwork: true, Containers: []corev1.Container{
					{Name: "consul", Ports: []corev1.ContainerPort{{Name: "serflan", ContainerPort: 7946}}},
				}},
			}}
		}, "memberlist", "FAIL pod consul/consul-abcde on node n2 (no owner) takes host port 7946 (TCP)"},
		{"reservation outside every pool", func(f *clusterFacts) {
			f.Input.Reservations = []v1alpha1.IPReservation{{ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: v1alpha1.IPReservationSpec{Addresses: []string{"10.9.9.9"}, Service: &v1alpha1.ReservedService{Namespace: "shop", Name: "web"}}}}
		}, "config", "FAIL IPReservation/web: spec.addresses[0]"},
		{"layer2 spread", func(f *clusterFacts) {
			f.Services = layer2Rows(map[string]string{"192.168.1.87": "n1", "192.168.1.88": "n2"})
		}, "layer2", "OK Layer 2 addresses per node: n1 1, n2 1"},
		{"layer2 uneven", func(f *clusterFacts) {
			f.Services = layer2Rows(map[string]string{"192.168.1.87": "n1", "192.168.1.88": "n1"})
		}, "layer2", "OK Layer 2 addresses per node: n1 2, n2 0; the speakers move one address at a time"},
		{"layer2 cordoned node announcing", func(f *clusterFacts) {
			f.Nodes[1].Spec.Unschedulable = true
			f.Services = layer2Rows(map[string]string{"192.168.1.87": "n1", "192.168.1.88": "n2"})
		}, "layer2", "WARN node n2 is cordoned or in maintenance but still announces 1 address"},
		{"memberlist bind from an env var", func(f *clusterFacts) {
			f.Memberlist.DaemonSet = &appsv1.DaemonSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "ironlb-speaker"},
				Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "speaker", Args: []string{"speaker", "--memberlist-bind", "$(POD_IP):7946"}},
				}}}},
			}
		}, "memberlist", "WARN DaemonSet ironlb-system/ironlb-speaker: cannot tell memberlist's port from --memberlist-bind=$(POD_IP):7946"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := healthy()
			tt.edit(&f)
			var got []string
			for _, fd := range diagnose(f) {
				if fd.Check == tt.check {
					got = append(got, fd.Severity.String()+" "+fd.Message)
				}
			}
			found := false
			for _, g := range got {
				found = found || strings.HasPrefix(g, tt.want)
			}
			if !found {
				t.Errorf("%s findings:\n  %s\nwant one starting with %q", tt.check, strings.Join(got, "\n  "), tt.want)
			}
		})
	}

	var b strings.Builder
	if fails := printFindings(&b, diagnose(healthy())); fails != 0 || !strings.Contains(b.String(), "all checks passed") {
		t.Errorf("healthy cluster: %d failures:\n%s", fails, b.String())
	}
}

func TestSetStrictARP(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"value", "mode: ipvs\nipvs:\n  scheduler: rr\n  strictARP: false # set by hand\n", "mode: ipvs\nipvs:\n  scheduler: rr\n  strictARP: true # set by hand\n"},
		{"key missing", "mode: ipvs\nipvs:\n    scheduler: rr\nkind: KubeProxyConfiguration\n", "mode: ipvs\nipvs:\n    strictARP: true\n    scheduler: rr\nkind: KubeProxyConfiguration\n"},
		{"empty block", "mode: ipvs\nipvs: {}\n", "mode: ipvs\nipvs:\n  strictARP: true\n"},
		{"no block", "mode: ipvs\n\n", "mode: ipvs\nipvs:\n  strictARP: true\n"},
		{"nested key of the same name elsewhere", "mode: ipvs\nother:\n  strictARP: false\nipvs:\n  strictARP: false\n", "mode: ipvs\nother:\n  strictARP: false\nipvs:\n  strictARP: true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setStrictARP(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := setStrictARP("mode: ipvs\nipvs: {scheduler: rr}\n"); err == nil || !strings.Contains(err.Error(), "set ipvs.strictARP: true by hand") {
		t.Errorf("a flow-style ipvs block: error %v, want a refusal", err)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n"
	b := "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\nseventeen\n"
	want := `--- a
+++ b
@@ -2,7 +2,7 @@
 2
 3
 4
-5
+five
 6
 7
 8
@@ -14,3 +14,4 @@
 14
 15
 16
+seventeen
`
	if diff := cmp.Diff(want, unifiedDiff("a", "b", a, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := unifiedDiff("a", "b", a, a); got != "" {
		t.Errorf("equal texts give %q", got)
	}
}

// layer2Rows are one Allocated Layer 2 Service per address, announced by
// the node given.
func layer2Rows(owners map[string]string) []statusRow {
	var out []statusRow
	for _, ip := range slices.Sorted(maps.Keys(owners)) {
		out = append(out, statusRow{Namespace: "lab", Name: "s-" + ip, IPs: []string{ip}, State: "Allocated", Mode: "layer2",
			Announcers: []v1alpha1.Announcer{{IP: ip, Node: owners[ip], Interface: "eth0"}}})
	}
	return out
}
