package realnodes

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/internal/labkube"
)

// CheckPrivilege proves issue 15's point 5 in the running pods, as the
// install path left them: the speaker runs with CAP_NET_RAW alone and the
// controller with no capability (checkCapabilities), their metrics go to
// authorized callers only while the chart's ServiceMonitor still scrapes
// them (CheckMetricsAccess), and NET_RAW is enough for BGP with TCP MD5
// (CheckBGP). test/e2e's TestLeastPrivilege shows the same of processes
// started by hand; here it is what Kubernetes, containerd and runc make of
// the manifests.
func (e *Env) CheckPrivilege(ctx context.Context, prefix string) error {
	return errors.Join(e.checkCapabilities(ctx), e.CheckMetricsAccess(ctx, prefix), e.CheckBGP(ctx, prefix))
}

// capNetRaw is CAP_NET_RAW's bit in /proc/<pid>/status (linux/capability.h).
const capNetRaw = 1 << 13

// capNames are the capabilities by bit (linux/capability.h), for the log.
var capNames = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// capSet is a capability mask in hex and by name, e.g. 0x2000(net_raw).
func capSet(mask uint64) string {
	var names []string
	for bit := range 64 {
		if mask&(1<<bit) == 0 {
			continue
		}
		if bit < len(capNames) {
			names = append(names, capNames[bit])
		} else {
			names = append(names, "cap"+strconv.Itoa(bit))
		}
	}
	return fmt.Sprintf("%#x(%s)", mask, strings.Join(names, ","))
}

// procStatus is what /proc/<pid>/status says of a process' privileges.
type procStatus struct {
	PID                                    int
	Cmdline                                string
	Uid, Gid                               string // real, effective, saved, filesystem
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs, Seccomp                    string
}

func (s procStatus) String() string {
	return fmt.Sprintf("pid %d %q: Uid %s Gid %s CapEff %s CapPrm %s CapBnd %s CapInh %s CapAmb %s NoNewPrivs %s Seccomp %s",
		s.PID, s.Cmdline, s.Uid, s.Gid, capSet(s.CapEff), capSet(s.CapPrm), capSet(s.CapBnd), capSet(s.CapInh), capSet(s.CapAmb), s.NoNewPrivs, s.Seccomp)
}

// readProcStatus reads pid's /proc/<pid>/status and command line. The
// lab's nodes share the machine's PID namespace, so the test sees every
// container's processes under their own PIDs.
func readProcStatus(pid int) (procStatus, error) {
	s := procStatus{PID: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return s, err
	}
	s.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	caps := map[string]*uint64{"CapInh": &s.CapInh, "CapPrm": &s.CapPrm, "CapEff": &s.CapEff, "CapBnd": &s.CapBnd, "CapAmb": &s.CapAmb}
	seen := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.Join(strings.Fields(v), " ")
		switch {
		case caps[k] != nil:
			if *caps[k], err = strconv.ParseUint(v, 16, 64); err != nil {
				return s, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
			}
		case k == "Uid":
			s.Uid = v
		case k == "Gid":
			s.Gid = v
		case k == "NoNewPrivs":
			s.NoNewPrivs = v
		case k == "Seccomp":
			s.Seccomp = v
		default:
			continue
		}
		seen[k] = true
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid", "Gid", "NoNewPrivs"} {
		if !seen[k] {
			return s, fmt.Errorf("/proc/%d/status has no %s", pid, k)
		}
	}
	return s, nil
}

// allIDs is a Uid or Gid line whose four IDs are all id.
func allIDs(id int64) string {
	return strings.TrimSpace(strings.Repeat(strconv.FormatInt(id, 10)+" ", 4))
}

// wantSpeaker checks the speaker's privileges: CAP_NET_RAW alone in its
// effective, permitted and bounding sets (ARP and NDP's raw sockets; BGP
// with TCP MD5, BFD and memberlist need nothing), so neither NET_ADMIN nor
// anything else it could gain; none ambient; no new privileges through
// execve (allowPrivilegeEscalation: false); root, since Kubernetes gives
// added capabilities to root only.
func (s procStatus) wantSpeaker() error {
	const want = capNetRaw
	var errs []error
	for _, c := range []struct {
		name string
		got  uint64
	}{{"CapEff", s.CapEff}, {"CapPrm", s.CapPrm}, {"CapBnd", s.CapBnd}} {
		if c.got != want {
			errs = append(errs, fmt.Errorf("%s %s, want %s", c.name, capSet(c.got), capSet(want)))
		}
	}
	if s.CapAmb != 0 {
		errs = append(errs, fmt.Errorf("CapAmb %s, want none", capSet(s.CapAmb)))
	}
	if s.NoNewPrivs != "1" {
		errs = append(errs, fmt.Errorf("NoNewPrivs %s, want 1", s.NoNewPrivs))
	}
	if s.Uid != allIDs(0) {
		errs = append(errs, fmt.Errorf("user IDs (Uid) %s, want root", s.Uid))
	}
	return errors.Join(errs...)
}

// wantController checks the controller's privileges: no capability at
// all (it only talks to the API server), no new privileges, and the
// non-root user its manifest names (uid; the caller has checked it is not
// root).
func (s procStatus) wantController(uid int64) error {
	var errs []error
	for _, c := range []struct {
		name string
		got  uint64
	}{{"CapEff", s.CapEff}, {"CapPrm", s.CapPrm}, {"CapAmb", s.CapAmb}, {"CapBnd", s.CapBnd}} {
		if c.got != 0 {
			errs = append(errs, fmt.Errorf("%s %s, want none", c.name, capSet(c.got)))
		}
	}
	if s.NoNewPrivs != "1" {
		errs = append(errs, fmt.Errorf("NoNewPrivs %s, want 1", s.NoNewPrivs))
	}
	if s.Uid != allIDs(uid) {
		errs = append(errs, fmt.Errorf("user IDs (Uid) %s, want %d", s.Uid, uid))
	}
	return errors.Join(errs...)
}

// checkCapabilities reads, for every speaker and the controller, its
// container's main process as the node's containerd started it, and
// checks its privileges (wantSpeaker, wantController).
func (e *Env) checkCapabilities(ctx context.Context) error {
	pods, err := e.C.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=ironlb"})
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		component := p.Labels["app.kubernetes.io/component"]
		seen[component]++
		if err := e.checkPodCapabilities(ctx, &p, component); err != nil {
			errs = append(errs, fmt.Errorf("%s pod %s on %s: %w", component, p.Name, p.Spec.NodeName, err))
		}
	}
	if seen["speaker"] != len(e.C.Nodes) || seen["controller"] == 0 {
		errs = append(errs, fmt.Errorf("checked %v pods, want a speaker on each of %d nodes and a controller", seen, len(e.C.Nodes)))
	}
	return errors.Join(errs...)
}

// checkPodCapabilities checks the privileges of pod's ironlb container.
func (e *Env) checkPodCapabilities(ctx context.Context, p *corev1.Pod, component string) error {
	status, err := e.containerProcess(ctx, p, component)
	if err != nil {
		return err
	}
	e.Logf("privilege: %s pod %s on %s: %s", component, p.Name, p.Spec.NodeName, status)
	switch component {
	case "speaker":
		if !strings.Contains(status.Cmdline, " speaker ") {
			return fmt.Errorf("process %s is not the speaker", status)
		}
		return status.wantSpeaker()
	case "controller":
		uid := runAsUser(p, component)
		if uid == nil || *uid == 0 {
			return fmt.Errorf("the manifest runs the controller as user %v, want a non-root user", uid)
		}
		if !strings.Contains(status.Cmdline, " controller ") {
			return fmt.Errorf("process %s is not the controller", status)
		}
		return status.wantController(*uid)
	}
	return fmt.Errorf("unknown component %q", component)
}

// runAsUser is the user the pod's container runs as by its manifest: the
// container's securityContext, else the pod's.
func runAsUser(p *corev1.Pod, container string) *int64 {
	for _, c := range p.Spec.Containers {
		if c.Name == container && c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			return c.SecurityContext.RunAsUser
		}
	}
	if p.Spec.SecurityContext != nil {
		return p.Spec.SecurityContext.RunAsUser
	}
	return nil
}

// containerProcess finds the main process of pod's container named name:
// the pod's status names the container ("containerd://<id>"), and the
// containerd of the pod's node knows its task's PID.
func (e *Env) containerProcess(ctx context.Context, p *corev1.Pod, name string) (procStatus, error) {
	var id string
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			id, _ = strings.CutPrefix(c.ContainerID, "containerd://")
		}
	}
	if id == "" {
		return procStatus{}, fmt.Errorf("no containerd container %q in the pod's status", name)
	}
	node := e.node(p.Spec.NodeName)
	if node == nil {
		return procStatus{}, fmt.Errorf("no lab node %s", p.Spec.NodeName)
	}
	pid, err := taskPID(ctx, node, id)
	if err != nil {
		return procStatus{}, err
	}
	return readProcStatus(pid)
}

// node is the lab node named name, or nil.
func (e *Env) node(name string) *labkube.Node {
	for _, n := range e.C.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// taskPID asks node's containerd (`ctr tasks ls`, in the kubelet's
// namespace k8s.io) for the PID of container id's task.
func taskPID(ctx context.Context, node *labkube.Node, id string) (int, error) {
	out, err := exec.CommandContext(ctx, "ctr", "--address", node.Socket, "--namespace", "k8s.io", "tasks", "ls").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ctr tasks ls on %s: %w: %s", node.Name, err, out)
	}
	for line := range strings.Lines(string(out)) {
		// TASK PID STATUS
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			if f[2] != "RUNNING" {
				return 0, fmt.Errorf("task %s is %s", id, f[2])
			}
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("containerd of %s has no task %s:\n%s", node.Name, id, out)
}

// serviceMonitor is what a ServiceMonitor (prometheus-operator's
// monitoring.coreos.com/v1) says of the targets to scrape and how.
type serviceMonitor struct {
	Spec struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []scrapeEndpoint `json:"endpoints"`
	} `json:"spec"`
}

// scrapeEndpoint is one of a ServiceMonitor's endpoints.
type scrapeEndpoint struct {
	Port            string `json:"port"`
	Scheme          string `json:"scheme"`
	Path            string `json:"path"`
	BearerTokenFile string `json:"bearerTokenFile"`
	TLSConfig       struct {
		InsecureSkipVerify bool `json:"insecureSkipVerify"`
	} `json:"tlsConfig"`
}

// chartServiceMonitor renders the chart's ServiceMonitor (helm template,
// metrics.serviceMonitor.enabled=true) and returns it with its one
// endpoint, defaults filled in as Prometheus fills them (scheme http, path
// /metrics).
func (e *Env) chartServiceMonitor(ctx context.Context) (serviceMonitor, scrapeEndpoint, error) {
	var sm serviceMonitor
	out, err := e.Run(ctx, "helm", "template", "ironlb", "charts/ironlb", "--namespace", Namespace,
		"--set", "metrics.serviceMonitor.enabled=true", "--show-only", "templates/servicemonitor.yaml")
	if err != nil {
		return sm, scrapeEndpoint{}, err
	}
	if i := strings.Index(out, "---\n"); i > 0 {
		out = out[i:] // past anything helm said before the document
	}
	if err := yaml.Unmarshal([]byte(out), &sm); err != nil {
		return sm, scrapeEndpoint{}, fmt.Errorf("the chart's ServiceMonitor: %w", err)
	}
	if len(sm.Spec.Endpoints) != 1 {
		return sm, scrapeEndpoint{}, fmt.Errorf("the chart's ServiceMonitor has %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Scheme == "" {
		ep.Scheme = "http"
	}
	if ep.Path == "" {
		ep.Path = "/metrics"
	}
	return sm, ep, nil
}

// scrapeTarget is one address Prometheus would scrape: a metrics Service's
// endpoint and the pod behind it.
type scrapeTarget struct {
	Service, Component string
	Pod                *corev1.Pod
	Addr               netip.AddrPort // the endpoint's metrics port
	Health             netip.AddrPort // the pod's health port, plain HTTP
}

func (t scrapeTarget) String() string {
	return fmt.Sprintf("%s %s (pod %s on %s)", t.Service, t.Addr, t.Pod.Name, t.Pod.Spec.NodeName)
}

// scrapeTargets resolves sm's targets as prometheus-operator does: the
// Services its selector matches in its namespaces, then each one's
// EndpointSlices' addresses on the port named ep.Port. Each target's pod
// gives its component and health port.
func (e *Env) scrapeTargets(ctx context.Context, sm serviceMonitor, ep scrapeEndpoint) ([]scrapeTarget, error) {
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		return nil, err
	}
	kube := e.C.Kube
	var targets []scrapeTarget
	for _, ns := range sm.Spec.NamespaceSelector.MatchNames {
		svcs, err := kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs.Items {
			eps, err := kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
			if err != nil {
				return nil, err
			}
			for _, s := range eps.Items {
				for _, p := range s.Ports {
					if p.Name == nil || *p.Name != ep.Port || p.Port == nil {
						continue
					}
					for _, end := range s.Endpoints {
						t, err := e.scrapeTarget(ctx, svc.Name, end, uint16(*p.Port))
						if err != nil {
							return nil, err
						}
						targets = append(targets, t)
					}
				}
			}
		}
	}
	return targets, nil
}

// scrapeTarget is the target of endpoint end of Service svc on port.
func (e *Env) scrapeTarget(ctx context.Context, svc string, end discoveryv1.Endpoint, port uint16) (scrapeTarget, error) {
	t := scrapeTarget{Service: svc}
	if len(end.Addresses) == 0 || end.TargetRef == nil || end.TargetRef.Kind != "Pod" {
		return t, fmt.Errorf("service %s: endpoint %v names no address and pod", svc, end)
	}
	addr, err := netip.ParseAddr(end.Addresses[0])
	if err != nil {
		return t, err
	}
	t.Addr = netip.AddrPortFrom(addr, port)
	if t.Pod, err = e.C.Kube.CoreV1().Pods(end.TargetRef.Namespace).Get(ctx, end.TargetRef.Name, metav1.GetOptions{}); err != nil {
		return t, err
	}
	t.Component = t.Pod.Labels["app.kubernetes.io/component"]
	for _, c := range t.Pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "health" {
				t.Health = netip.AddrPortFrom(addr, uint16(p.ContainerPort))
			}
		}
	}
	if !t.Health.IsValid() {
		return t, fmt.Errorf("pod %s has no port named health", t.Pod.Name)
	}
	return t, nil
}

// The metrics callers: Prometheus' ServiceAccount, bound to the
// ClusterRole ironlb-metrics-reader with the README's command, and another
// ServiceAccount of its namespace, bound to nothing.
const (
	monitoringNamespace = "monitoring"
	prometheusAccount   = "prometheus-k8s"
	otherAccount        = "not-prometheus"
	prometheusBinding   = "prometheus-ironlb"
)

// metricsCallers creates the callers' namespace, ServiceAccounts and
// binding, waits until the API server's authorizer lets Prometheus' get
// /metrics (the daemons remember a refusal for 10 s), and returns a token
// of each (TokenRequest) and a function that removes them all.
func (e *Env) metricsCallers(ctx context.Context) (prometheus, other string, remove func(), err error) {
	kube := e.C.Kube
	remove = func() {
		ctx := context.WithoutCancel(ctx)
		if err := kube.RbacV1().ClusterRoleBindings().Delete(ctx, prometheusBinding, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			e.Logf("privilege: delete ClusterRoleBinding %s: %v", prometheusBinding, err)
		}
		if err := kube.CoreV1().Namespaces().Delete(ctx, monitoringNamespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			e.Logf("privilege: delete namespace %s: %v", monitoringNamespace, err)
		}
	}
	for _, args := range [][]string{
		{"create", "namespace", monitoringNamespace},
		{"-n", monitoringNamespace, "create", "serviceaccount", prometheusAccount},
		{"-n", monitoringNamespace, "create", "serviceaccount", otherAccount},
		{"create", "clusterrolebinding", prometheusBinding, "--clusterrole=ironlb-metrics-reader", "--serviceaccount=" + monitoringNamespace + ":" + prometheusAccount},
	} {
		if _, err := e.Run(ctx, "kubectl", args...); err != nil {
			return "", "", remove, err
		}
	}
	if err := e.waitAllowed(ctx, prometheusAccount); err != nil {
		return "", "", remove, err
	}
	if prometheus, err = e.token(ctx, prometheusAccount); err != nil {
		return "", "", remove, err
	}
	other, err = e.token(ctx, otherAccount)
	return prometheus, other, remove, err
}

// waitAllowed waits until a SubjectAccessReview says ServiceAccount
// account of the monitoring namespace may get /metrics: RBAC's authorizer
// learns of a new binding a moment after it is written.
func (e *Env) waitAllowed(ctx context.Context, account string) error {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:                  "system:serviceaccount:" + monitoringNamespace + ":" + account,
		Groups:                []string{"system:serviceaccounts", "system:serviceaccounts:" + monitoringNamespace, "system:authenticated"},
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}}
	return waitFor(ctx, account+" may get /metrics", 30*time.Second, func() error {
		r, err := e.C.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !r.Status.Allowed {
			return fmt.Errorf("not allowed: %s", r.Status.Reason)
		}
		return nil
	})
}

// token is a token of ServiceAccount account of the monitoring namespace,
// from the TokenRequest API, as the kubelet gives one to Prometheus' pod.
func (e *Env) token(ctx context.Context, account string) (string, error) {
	expiry := int64(600)
	tr, err := e.C.Kube.CoreV1().ServiceAccounts(monitoringNamespace).CreateToken(ctx, account,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of %s/%s: %w", monitoringNamespace, account, err)
	}
	return tr.Status.Token, nil
}

// routePodNetworks routes, in the LAN client, the pod CIDR of each node
// that holds one of addrs to that node, as a LAN router that knows the
// cluster's pod network does (the nodes route each other's so: Prometheus
// in a pod reaches the controller over that path), so that the client
// reaches the controller's pod address. It returns a function that
// removes the routes it added.
func (e *Env) routePodNetworks(ctx context.Context, addrs []netip.Addr) (func(), error) {
	client := e.Lab.Client()
	var added []string
	remove := func() {
		for _, cidr := range added {
			if _, err := client.Run(context.WithoutCancel(ctx), "ip", "route", "del", cidr); err != nil {
				e.Logf("privilege: remove the client's route to %s: %v", cidr, err)
			}
		}
	}
	for _, n := range e.C.Nodes {
		if !slices.ContainsFunc(addrs, n.PodCIDR.Contains) {
			continue
		}
		cidr := n.PodCIDR.String()
		out, err := client.Run(ctx, "ip", "route", "show", cidr)
		if err != nil {
			return remove, err
		}
		if strings.TrimSpace(string(out)) != "" {
			continue // routed already
		}
		if _, err := client.Run(ctx, "ip", "route", "add", cidr, "via", n.Host.IPv4.String(), "dev", client.IfName); err != nil {
			return remove, err
		}
		added = append(added, cidr)
		e.Logf("privilege: the client routes %s via %s (%s)", cidr, n.Host.IPv4, n.Name)
	}
	return remove, nil
}

// wantMetrics are series each component's metrics must hold
// (internal/speaker/metrics.go, internal/controller/metrics.go).
var wantMetrics = map[string][]string{
	"speaker":    {"ironlb_speaker_announced_addresses ", "ironlb_speaker_members "},
	"controller": {"ironlb_pool_addresses{", "ironlb_config_problems "},
}

// CheckMetricsAccess scrapes the controller and every speaker from the LAN
// client as Prometheus would with the chart's ServiceMonitor, whichever
// path installed them (dist/ironlb.yaml's metrics Services, from
// config/metrics, carry the labels and port names the chart's do):
// targets from the metrics Services' EndpointSlices (the speakers' are
// node addresses on the host network, the controller's a pod's, which the
// client reaches through routePodNetworks), scheme, path, TLS and bearer
// token as the
// ServiceMonitor says, with the token of a ServiceAccount bound to
// ironlb-metrics-reader, must give 200 and ironlb's series. Anyone else on
// the LAN gets no metrics: no token 401, a token of another ServiceAccount
// 403, plain HTTP on the metrics port no metrics; the health port answers
// /readyz and serves no /metrics. The statuses are recorded per component.
func (e *Env) CheckMetricsAccess(ctx context.Context, prefix string) error {
	sm, ep, err := e.chartServiceMonitor(ctx)
	if err != nil {
		return err
	}
	e.Logf("privilege: the chart's ServiceMonitor scrapes port %q, %s, path %s, bearerTokenFile %q, insecureSkipVerify %v",
		ep.Port, ep.Scheme, ep.Path, ep.BearerTokenFile, ep.TLSConfig.InsecureSkipVerify)
	targets, err := e.scrapeTargets(ctx, sm, ep)
	if err != nil {
		return err
	}
	if err := e.checkTargets(targets); err != nil {
		return err
	}
	var addrs []netip.Addr
	for _, t := range targets {
		addrs = append(addrs, t.Addr.Addr())
	}
	unroute, err := e.routePodNetworks(ctx, addrs)
	defer unroute()
	if err != nil {
		return err
	}
	prometheus, other, removeCallers, err := e.metricsCallers(ctx)
	defer removeCallers()
	if err != nil {
		return err
	}
	hc := e.httpClient(5 * time.Second)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: ep.TLSConfig.InsecureSkipVerify}
	// Prometheus sends its token only if the ServiceMonitor says so.
	scrapeToken := ""
	if ep.BearerTokenFile != "" {
		scrapeToken = prometheus
	}
	var errs []error
	recorded := map[string]bool{}
	for _, t := range targets {
		metricsURL := ep.Scheme + "://" + t.Addr.String() + ep.Path
		requests := []metricsRequest{
			{"scrape", metricsURL, scrapeToken, http.StatusOK, wantMetrics[t.Component]},
			{"no_token", metricsURL, "", http.StatusUnauthorized, nil},
			{"other_token", metricsURL, other, http.StatusForbidden, nil},
			{"plain_http", "http://" + t.Addr.String() + ep.Path, "", http.StatusBadRequest, nil},
			{"health_readyz", "http://" + t.Health.String() + "/readyz", "", http.StatusOK, nil},
			{"health_metrics", "http://" + t.Health.String() + ep.Path, "", http.StatusNotFound, nil},
		}
		for _, r := range requests {
			code, err := r.check(ctx, hc)
			e.Logf("privilege: %s: %s GET %s: %d", t, r.name, r.url, code)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", t, r.name, err))
			}
			if name := prefix + "_" + t.Component + "_metrics_" + r.name + "_status"; !recorded[name] {
				recorded[name] = true
				e.record(name, float64(code), "http_status")
			}
		}
	}
	return errors.Join(errs...)
}

// checkTargets checks that the ServiceMonitor finds both metrics Services,
// a controller and a speaker on every node.
func (e *Env) checkTargets(targets []scrapeTarget) error {
	count := map[string]int{}
	for _, t := range targets {
		count[t.Service]++
		e.Logf("privilege: target %s", t)
	}
	if count["ironlb-controller-metrics"] == 0 || count["ironlb-speaker-metrics"] != len(e.C.Nodes) || len(count) != 2 {
		return fmt.Errorf("the ServiceMonitor's targets by Service %v, want ironlb-controller-metrics' and ironlb-speaker-metrics' on each of %d nodes", count, len(e.C.Nodes))
	}
	return nil
}

// metricsRequest is one GET from the LAN client and what it must answer.
type metricsRequest struct {
	name, url, token string
	status           int
	series           []string // the body must hold them; any other answer must hold no ironlb series
}

// check sends the request and returns the status: an error if it is not
// r.status, if an answer of 200 lacks r.series, or if any other answer
// holds metrics.
func (r metricsRequest) check(ctx context.Context, hc *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return 0, err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	var errs []error
	if resp.StatusCode != r.status {
		errs = append(errs, fmt.Errorf("status %d, want %d (body %.200q)", resp.StatusCode, r.status, body))
	}
	for _, s := range r.series {
		if !bytes.Contains(body, []byte("\n"+s)) {
			errs = append(errs, fmt.Errorf("no %q in the metrics (%d bytes)", s, len(body)))
		}
	}
	if r.series == nil && bytes.Contains(body, []byte("ironlb_")) {
		errs = append(errs, fmt.Errorf("the answer holds ironlb's metrics (%d bytes)", len(body)))
	}
	return resp.StatusCode, errors.Join(errs...)
}
