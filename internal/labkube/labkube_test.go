package labkube_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// realNodes is how many real nodes TestRealNodes runs: what a 2-core
// machine holds comfortably beside other tests (see logMemory's output).
const realNodes = 3

// TestRealNodes runs a Deployment of the lab's HTTP server, two replicas
// on different real nodes, behind a ClusterIP Service, and has a LAN
// client reach it through kube-proxy on node-1: both pods answer, so
// requests cross the LAN to another node's pod network and back. Then a
// host-network DaemonSet of it answers on every node's LAN address.
func TestRealNodes(t *testing.T) {
	labnet.Require(t)
	if reason := labkube.Missing(""); reason != "" {
		labkube.SkipOrFail(t, "labkube: "+reason)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := labnet.NewForTest(t, labnet.Options{Nodes: realNodes, Logger: log})

	start := time.Now()
	c, err := labkube.Start(ctx, l, labkube.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeStart := time.Now()
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		t.Logf("timing: cluster close %v", since(closeStart))
	})
	t.Logf("timing: control plane, controllers and %d ready nodes %v", len(c.Nodes), since(start))
	defer logMemory(t, c)

	// kube-proxy runs from the cluster's ConfigMap, in kubeadm's layout.
	cm, err := c.Kube.CoreV1().ConfigMaps(labkube.KubeProxyNamespace).Get(ctx, labkube.KubeProxyConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Errorf("kube-proxy's ConfigMap: %v", err)
	} else if conf := cm.Data[labkube.KubeProxyKey]; !strings.Contains(conf, "\nmode: nftables\n") {
		t.Errorf("ConfigMap %s/%s, %s: %q, want mode nftables", labkube.KubeProxyNamespace, labkube.KubeProxyConfigMap, labkube.KubeProxyKey, conf)
	}

	const ns = "default"
	if err := waitDefaultServiceAccount(ctx, c.Kube, ns); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, helloDeployment(2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Kube.CoreV1().Services(ns).Create(ctx, helloService(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := waitPodsReady(ctx, c.Kube, ns, "app=hello", 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: Deployment applied to 2 pods Ready %v", since(applied))
	// The API server reaches the kubelets too: what `kubectl logs` needs.
	for _, p := range pods {
		if _, err := c.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx); err != nil {
			t.Errorf("logs of pod %s on %s: %v", p.Name, p.Spec.NodeName, err)
		}
	}
	byName := map[string]string{}
	for _, p := range pods {
		byName[p.Name] = p.Spec.NodeName
		t.Logf("pod %s on %s at %s", p.Name, p.Spec.NodeName, p.Status.PodIP)
	}

	// The client reaches Service addresses through node-1, as a LAN
	// router to a node would send them.
	client := l.Client()
	if _, err := client.Run(ctx, "ip", "route", "replace", "10.0.0.0/16", "via", l.Node(1).IPv4.String()); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:80/", svc.Spec.ClusterIP)
	hc := client.HTTPClient()
	hc.Timeout = 2 * time.Second
	// Until every pod has answered: kube-proxy picks an endpoint at random
	// per connection, and may not have both yet when the first answer
	// comes.
	var first time.Time
	answered := map[string]int{}
	errs := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(answered) < len(byName) && time.Now().Before(deadline) {
		name, err := labkube.HelloName(ctx, hc, url)
		if err != nil {
			errs++
			if first.IsZero() && time.Since(applied) > 30*time.Second {
				diagnose(t, l, c, url, pods)
				t.Fatalf("GET %s from %s: %v", url, client.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if first.IsZero() {
			first = time.Now()
			t.Logf("timing: Service created to first answer from the client %v", since(applied))
		}
		if _, ok := byName[name]; !ok {
			t.Fatalf("GET %s answered %q, not one of the pods %v", url, name, slices.Sorted(mapKeys(byName)))
		}
		answered[name]++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("timing: Service created to every pod answered %v", since(applied))
	t.Logf("ClusterIP %s through node-1: answers per pod %v, %d failed requests", svc.Spec.ClusterIP, answered, errs)
	if len(answered) < len(byName) {
		t.Errorf("only pods %v answered of %v", answered, byName)
	}

	// A host-network DaemonSet, as ironlb's speaker is: one pod per node,
	// answering on the node's own LAN address.
	applied = time.Now()
	if _, err := c.Kube.AppsV1().DaemonSets(ns).Create(ctx, helloDaemonSet(hostPort), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsPods, err := waitPodsReady(ctx, c.Kube, ns, "app=hello-host", len(c.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: DaemonSet applied to %d host-network pods Ready %v", len(dsPods), since(applied))
	for _, p := range dsPods {
		node := l.Node(nodeIndex(t, p.Spec.NodeName))
		u := fmt.Sprintf("http://%s:%d/", node.IPv4, hostPort)
		name, err := labkube.HelloName(ctx, hc, u)
		if err != nil || name != p.Name {
			t.Errorf("GET %s from %s: %q, %v; want %q", u, client.Name, name, err, p.Name)
		}
	}
}

// hostPort is where the host-network DaemonSet's pods listen.
const hostPort = 8081

// nodeIndex is N of "node-N".
func nodeIndex(t *testing.T, name string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "node-"))
	if err != nil {
		t.Fatalf("node name %q: %v", name, err)
	}
	return i
}

func helloDaemonSet(port int) *appsv1.DaemonSet {
	labels := map[string]string{"app": "hello-host"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-host"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{
						Name:            "hello",
						Image:           labkube.HelloImage,
						ImagePullPolicy: corev1.PullNever,
						Env: []corev1.EnvVar{
							{Name: "PORT", Value: strconv.Itoa(port)},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
								FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
							}},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt(port)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

func helloDeployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "hello"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// One per node, so that the Service spans the LAN.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: corev1.LabelHostname,
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{
						Name:            "hello",
						Image:           labkube.HelloImage,
						ImagePullPolicy: corev1.PullNever,
						Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
							FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
						}}},
						Ports: []corev1.ContainerPort{{ContainerPort: labkube.HelloPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt(labkube.HelloPort)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

func helloService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "hello"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt(labkube.HelloPort)}},
		},
	}
}

// waitDefaultServiceAccount waits for the ServiceAccount controller to
// create ns's "default": until then ServiceAccount admission rejects pods.
func waitDefaultServiceAccount(ctx context.Context, kube kubernetes.Interface, ns string) error {
	for {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for ServiceAccount %s/default: %w (last: %v)", ns, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPodsReady waits until n pods match selector and all are Ready.
func waitPodsReady(ctx context.Context, kube kubernetes.Interface, ns, selector string, n int) ([]corev1.Pod, error) {
	var last string
	for {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil {
			var ready []corev1.Pod
			var states []string
			for _, p := range list.Items {
				if labkube.PodReady(&p) {
					ready = append(ready, p)
				}
				states = append(states, fmt.Sprintf("%s on %q: %s %s", p.Name, p.Spec.NodeName, p.Status.Phase, podWaiting(&p)))
			}
			if len(ready) == n && len(list.Items) == n {
				return ready, nil
			}
			last = strings.Join(states, "; ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d pods %s Ready: %w; last: %s", n, selector, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podWaiting says why a pod's containers wait, if they do.
func podWaiting(p *corev1.Pod) string {
	var s []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s = append(s, string(c.Type)+": "+c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s = append(s, cs.Name+" waiting: "+w.Reason+" "+w.Message)
		}
	}
	return strings.Join(s, ", ")
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// diagnose logs what each hop sees, for a Service that does not answer.
func diagnose(t *testing.T, l *labnet.Lab, c *labkube.Cluster, url string, pods []corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n1 := l.Node(1)
	for _, h := range []*labnet.Host{l.Client(), n1} {
		out, err := h.Run(ctx, "ip", "route")
		t.Logf("%s ip route: %s %v", h.Name, out, err)
	}
	out, err := n1.Run(ctx, "nft", "list", "ruleset")
	t.Logf("node-1 nft: %s %v", out, err)
	for _, h := range []*labnet.Host{n1, l.Client()} {
		hc := h.HTTPClient()
		hc.Timeout = 2 * time.Second
		name, err := labkube.HelloName(ctx, hc, url)
		t.Logf("from %s GET %s: %q %v", h.Name, url, name, err)
		for _, p := range pods {
			u := fmt.Sprintf("http://%s:%d/", p.Status.PodIP, labkube.HelloPort)
			name, err := labkube.HelloName(ctx, hc, u)
			t.Logf("from %s GET %s: %q %v", h.Name, u, name, err)
		}
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/eth0/rp_filter"} {
		v, err := n1.Sysctl(k)
		t.Logf("node-1 %s=%s %v", k, v, err)
	}
}

// logMemory logs the resident memory and CPU time used so far of each
// node's processes and the control plane's.
func logMemory(t *testing.T, c *labkube.Cluster) {
	for _, n := range c.Nodes {
		var parts []string
		for _, p := range []struct {
			name string
			proc *labnet.Process
		}{{"containerd", n.Containerd()}, {"kubelet", n.Kubelet()}, {"kube-proxy", n.KubeProxy()}} {
			parts = append(parts, fmt.Sprintf("%s %s", p.name, rss(p.proc.PID())))
		}
		t.Logf("resources: %s: %s", n.Name, strings.Join(parts, ", "))
	}
	for _, p := range []struct {
		name string
		proc *labnet.Process
	}{{"kube-apiserver", c.CP.APIServer}, {"etcd", c.CP.Etcd}, {"kube-controller-manager", c.ControllerManager}, {"kube-scheduler", c.Scheduler}} {
		t.Logf("resources: cp: %s %s", p.name, rss(p.proc.PID()))
	}
}

// rss is a process's resident memory and the CPU time it used, from /proc.
func rss(pid int) string {
	mem := "?"
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				mem = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	cpu := "?"
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// utime and stime are fields 14 and 15, after the parenthesized
		// command name, in clock ticks of 10 ms.
		if _, rest, ok := strings.Cut(string(b), ") "); ok {
			if f := strings.Fields(rest); len(f) > 12 {
				u, _ := strconv.Atoi(f[11])
				s, _ := strconv.Atoi(f[12])
				cpu = (time.Duration(u+s) * 10 * time.Millisecond).String()
			}
		}
	}
	return mem + " RSS, " + cpu + " CPU"
}
