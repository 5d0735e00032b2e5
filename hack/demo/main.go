// Command demo is `make demo`: the user's scenario (SCENARIO.md, the tutorial)
// end to end, on this machine, from nothing. It builds a lab LAN of network
// namespaces (internal/lab) with a real control plane and ironlb in it
// (internal/labcluster), applies the user's legacy ConfigMap, switches the
// user's three Services to LoadBalancer with the addresses they asked for,
// reaches them from a client on the LAN, shows why a fourth Service that
// asks for a taken address stays pending, and kills the node announcing an
// address while the client probes it.
//
// It needs root, for the network namespaces. Everything it starts is
// stopped by PID and every namespace deleted when it ends, also on an error
// or Ctrl-C. Process logs go to a temporary directory that is kept, and
// named, only when the demo fails.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// configYAML is the user's ConfigMap from SCENARIO.md, word for word, with
// the namespace ironlb runs in and the range moved into the lab's LAN
// (198.51.100.0/24, a documentation range that exists only in the lab).
const configYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: ironlb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 198.51.100.87-198.51.100.97 # IP range
`

// scenarioService is one of the user's Services (SCENARIO.md, step 4).
type scenarioService struct {
	ns, name string
	what     string // what the user reaches through it
	ports    []corev1.ServicePort
	ip       netip.Addr // the spec.loadBalancerIP the user chooses
}

func (s scenarioService) key() string { return s.ns + "/" + s.name }

func tcp(port, target int32) corev1.ServicePort {
	p := corev1.ServicePort{Name: fmt.Sprint("tcp-", port), Port: port, Protocol: corev1.ProtocolTCP}
	if target != 0 {
		p.TargetPort = intstr.FromInt32(target)
	}
	return p
}

var services = []scenarioService{
	{"istio-system", "istio-ingressgateway", "Kubeflow dashboard",
		[]corev1.ServicePort{tcp(15021, 0), tcp(80, 0), tcp(443, 0), tcp(31400, 0), tcp(15443, 0)},
		netip.MustParseAddr("198.51.100.88")},
	{"kubeflow", "minio-service", "MinIO",
		[]corev1.ServicePort{tcp(9000, 0)}, netip.MustParseAddr("198.51.100.89")},
	{"seldon-system", "seldon-core-analytics-grafana", "Grafana",
		[]corev1.ServicePort{tcp(80, 3000)}, netip.MustParseAddr("198.51.100.90")},
}

// The conflict: a fourth Service asks for the dashboard's address.
const conflictNS, conflictName = "kubeflow", "dashboard-copy"

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "make demo needs root: it builds a LAN of network namespaces on this machine "+
			"(run `sudo make demo`, or as root)")
		os.Exit(1)
	}
	// The demo handles Ctrl-C itself (NoSignalHandler below): every step
	// stops at the signal and the cleanup runs as after an error.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx))
}

// run runs the demo and cleans up; it returns the exit status.
func run(ctx context.Context) int {
	logDir, err := os.MkdirTemp("", "ironlb-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	d := &demo{logDir: logDir}
	defer d.close() // also on a panic: no namespace outlives the demo
	err = d.run(ctx)
	interrupted := ctx.Err() != nil
	switch {
	case interrupted:
		d.abort("interrupted")
		if !d.unmute() { // else startLab has said it
			fmt.Println("\ninterrupted: cleaning up")
		}
	case err != nil:
		d.abort("failed")
		fmt.Printf("\ndemo failed: %v\n", err)
		printLogTails(logDir, d.c == nil)
	}
	fmt.Println()
	d.close()
	if err != nil && !interrupted {
		fmt.Printf("\ndemo failed: %v\nprocess logs are kept in %s\n", err, logDir)
		return 1
	}
	os.RemoveAll(logDir)
	if interrupted {
		return 130
	}
	return 0
}

// demo is one run: the cluster once started, and the progress line open.
type demo struct {
	logDir  string
	repo    string
	c       *labcluster.Cluster
	closed  bool
	started time.Time

	// The progress line: mu guards it, as the lab's logger and a Ctrl-C
	// during labcluster.Start write to it from other goroutines.
	mu        sync.Mutex
	stepStart time.Time // of the open progress line; zero if none
	muted     bool      // interrupted in labcluster.Start: print no more progress
}

func (d *demo) close() {
	if d.c == nil || d.closed {
		return
	}
	d.closed = true
	// labcluster's Close stops ironlb first, while the API server still
	// runs (as when its Deployment and DaemonSet are deleted).
	d.begin("cleaning up: stopping ironlb, then the control plane, deleting the namespaces")
	if err := d.c.Close(); err != nil {
		d.abort("failed")
		fmt.Printf("   cleanup: %v\n", err)
		return
	}
	d.end()
}

func (d *demo) run(ctx context.Context) error {
	d.started = time.Now()
	repo, err := apiservertest.RepoRoot()
	if err != nil {
		return err
	}
	d.repo = repo
	fmt.Println("ironlb demo: the user's scenario (a Kubeflow cluster on bare metal, Layer 2 mode)")
	fmt.Println("on a LAN of network namespaces on this machine: cp, node-1..3 and a client on one bridge")

	for _, step := range []func(context.Context) error{
		d.startLab, d.install, d.configure, d.createServices, d.listServices,
		d.reachServices, d.conflict, d.failover,
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(ctx); err != nil {
			return err
		}
	}
	heading("Done")
	say("the whole scenario took %s", seconds(time.Since(d.started)))
	return nil
}

// startLab builds the lab, the control plane and ironlb in it.
func (d *demo) startLab(ctx context.Context) error {
	heading("1. The lab: a bare-metal cluster on one machine")
	d.begin("building the LAN (bridge 198.51.100.0/24; cp, node-1..3, client)")
	// Say at once that Ctrl-C was heard; labcluster.Start then gives up.
	stop := context.AfterFunc(ctx, func() {
		d.abort("interrupted")
		d.mute()
		say("interrupted: cleaning up")
	})
	c, err := labcluster.Start(ctx, labcluster.Options{Lab: labnet.Options{
		Nodes:           3,
		Dir:             d.logDir,
		Logger:          slog.New(progressHandler{d}),
		NoSignalHandler: true,
		StopGrace:       3 * time.Second,
	}})
	stop()
	if err != nil {
		return err
	}
	d.c = c
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.end()
	say("network namespaces ironlb-%s-{lan,cp,node-1,node-2,node-3,client}", c.Lab.Suffix())
	say("the API server is %s; kubectl and ironlbctl below run in cp with its kubeconfig", c.CP.URL)
	return nil
}

// progressHandler turns the lab's progress messages into the demo's
// progress lines: labcluster.Start builds the LAN, then the control plane,
// then starts ironlb, and says so only in its log. Any other message is
// left out; if these ones changed, the steps would just share one line.
type progressHandler struct{ d *demo }

func (h progressHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h progressHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h progressHandler) WithGroup(string) slog.Handler                { return h }
func (h progressHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "lab ready":
		h.d.end()
		h.d.begin("starting the control plane (etcd, kube-apiserver, ironlb's CRDs, 3 Node objects)")
	case "control plane ready":
		h.d.end()
		h.d.begin("starting ironlb's controller in cp and a speaker on each node (step 2)")
	}
	return nil
}

// install says what "installing ironlb" came to: labcluster.Start ran the
// two daemons the user's manifests would have deployed.
func (d *demo) install(ctx context.Context) error {
	heading("2. Install ironlb")
	say("the tutorial applies two manifests: a controller Deployment and a speaker DaemonSet;")
	say("in the lab, labcluster started the same binary (bin/ironlb) as those pods would run:")
	say("  controller  in cp      pid %d", d.c.Controller.PID())
	for _, h := range d.c.Lab.Nodes() {
		say("  speaker     on %-6s  pid %d  (%s, MAC %s)", h.Name, d.c.Speaker(h.Name).PID(), h.IPv4, h.MAC)
	}
	say("the nodes stand in for IPVS kube-proxy with strictARP: only ironlb answers ARP for service IPs")
	return d.checkDaemons()
}

// daemons are ironlb's processes by what they are: the controller and the
// speaker of each node.
func (d *demo) daemons() map[string]*labnet.Process {
	procs := map[string]*labnet.Process{"controller": d.c.Controller}
	for _, h := range d.c.Lab.Nodes() {
		procs["speaker on "+h.Name] = d.c.Speaker(h.Name)
	}
	return procs
}

// eventually is labcluster.Eventually that gives up at once, saying so, if
// one of ironlb's daemons exits meanwhile.
func (d *demo) eventually(ctx context.Context, timeout time.Duration, f func() error) error {
	var dead error
	err := labcluster.Eventually(ctx, timeout, func() error {
		if dead = d.checkDaemons(); dead != nil {
			return nil
		}
		return f()
	})
	return cmp.Or(dead, err)
}

// checkDaemons fails if the controller or a speaker has exited.
func (d *demo) checkDaemons() error {
	for name, p := range d.daemons() {
		select {
		case <-p.Done():
			return fmt.Errorf("the %s exited: %v (log %s)", name, p.Wait(), p.LogPath)
		default:
		}
	}
	return nil
}

// configure applies the user's ConfigMap with kubectl, as the tutorial does.
func (d *demo) configure(ctx context.Context) error {
	heading("3. Configure: the user's legacy ConfigMap, range moved into the lab")
	path := filepath.Join(d.c.Lab.Dir(), "config.yaml")
	if err := os.WriteFile(path, []byte(configYAML), 0o644); err != nil {
		return err
	}
	indent(configYAML)
	say("$ kubectl apply -f config.yaml   # the YAML above")
	out, err := d.tool(ctx, "kubectl", "apply", "-f", path)
	indent(out)
	return err
}

// createServices creates the three Services as ClusterIP, then switches
// each to LoadBalancer with its address, as the user's `kubectl edit` does.
func (d *demo) createServices(ctx context.Context) error {
	heading("4. The user's three Services: ClusterIP, then `kubectl edit` to LoadBalancer")
	for _, s := range services {
		if err := d.ensureNamespace(ctx, s.ns); err != nil {
			return err
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: map[string]string{"app": s.name},
				Ports:    s.ports,
			},
		}
		if err := d.c.Client.Create(ctx, svc); err != nil {
			return fmt.Errorf("create %s: %w", s.key(), err)
		}
		say("created %s (%s): type ClusterIP, cluster IP %s, ports %s",
			s.key(), s.what, svc.Spec.ClusterIP, portList(s.ports))
	}
	for _, s := range services {
		fmt.Println()
		say("$ kubectl edit svc/%s -n %s", s.name, s.ns)
		indent(fmt.Sprintf(`  spec:
-   type: ClusterIP
+   type: LoadBalancer
+   loadBalancerIP: %s
+   allocateLoadBalancerNodePorts: false   # nothing in the lab serves node ports
`, s.ip))
		if err := d.editService(ctx, s); err != nil {
			return err
		}
		indent(fmt.Sprintf("service/%s edited\n", s.name))
	}

	fmt.Println()
	d.begin("backends: each node puts .88-.90 on its lo and answers HTTP :80 and UDP :9000 with its name")
	for _, s := range services {
		if err := d.c.Backends(ctx, s.ip); err != nil {
			return fmt.Errorf("backends on %s: %w", s.ip, err)
		}
	}
	d.end()

	d.begin("waiting for ironlb to assign the addresses and elect a node to announce each")
	for _, s := range services {
		if err := d.waitAddress(ctx, s); err != nil {
			return err
		}
		err := d.eventually(ctx, 20*time.Second, func() error {
			a, err := d.c.Announcer(ctx, s.ns, s.name, s.ip)
			if err == nil && a.Node == "" {
				err = fmt.Errorf("no node announces it: %s", a.Reason)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("announcer of %s: %w", s.ip, err)
		}
	}
	d.end()
	return d.checkDaemons()
}

// editService does what the user does in `kubectl edit`: read, change,
// write back (again, should the object have changed meanwhile).
func (d *demo) editService(ctx context.Context, s scenarioService) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := d.service(ctx, s.ns, s.name)
		if err != nil {
			return err
		}
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerIP = s.ip.String()
		svc.Spec.AllocateLoadBalancerNodePorts = new(bool)
		return d.c.Client.Update(ctx, svc)
	})
	if err != nil {
		return fmt.Errorf("edit %s: %w", s.key(), err)
	}
	return nil
}

// waitAddress waits until the Service's status holds exactly its address.
func (d *demo) waitAddress(ctx context.Context, s scenarioService) error {
	err := d.eventually(ctx, 20*time.Second, func() error {
		svc, err := d.service(ctx, s.ns, s.name)
		if err != nil {
			return err
		}
		ing := svc.Status.LoadBalancer.Ingress
		if len(ing) != 1 || ing[0].IP != s.ip.String() {
			return fmt.Errorf("status %+v, conditions %+v", ing, svc.Status.Conditions)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("address of %s: %w", s.key(), err)
	}
	return nil
}

// listServices prints what the user checks: kubectl and ironlbctl.
func (d *demo) listServices(ctx context.Context) error {
	heading("5. EXTERNAL-IP, and who announces it")
	if err := d.kubectl(ctx, "get", "svc", "-A"); err != nil {
		return err
	}
	fmt.Println()
	return d.ironlbctl(ctx, "status")
}

// reachServices fetches a page from each address from the client, after
// showing that exactly one node answers ARP for it.
func (d *demo) reachServices(ctx context.Context) error {
	heading("6. From the client (198.51.100.100 on the LAN): ARP, then HTTP")
	for _, s := range services {
		a, err := d.c.Announcer(ctx, s.ns, s.name, s.ip)
		if err != nil {
			return err
		}
		macs, err := d.c.Resolve(ctx, s.ip)
		if err != nil {
			return err
		}
		var page string
		err = d.eventually(ctx, 10*time.Second, func() (err error) {
			page, err = d.c.Get(s.ip)
			return err
		})
		if err != nil {
			return fmt.Errorf("GET http://%s/: %w", s.ip, err)
		}
		say("%-14s %-20s ARP: %s; GET http://%s/ answered by %s",
			s.ip, s.what, d.describeMACs(macs), s.ip, page)
		if page != a.Node {
			return fmt.Errorf("http://%s/ answered by %s, but %s announces it", s.ip, page, a.Node)
		}
	}
	return nil
}

// describeMACs names the nodes whose MACs answered an ARP request.
func (d *demo) describeMACs(macs []string) string {
	if len(macs) == 0 {
		return "no answer"
	}
	var parts []string
	for _, m := range macs {
		name := "?"
		for _, h := range d.c.Lab.Nodes() {
			if h.MAC.String() == m {
				name = h.Name
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", m, name))
	}
	n := "1 answer"
	if len(macs) > 1 {
		n = fmt.Sprintf("%d answers", len(macs))
	}
	return n + ", " + strings.Join(parts, ", ")
}

// conflict shows the tutorial's pain point: a Service asking for a taken
// address, and where ironlb says why it stays pending.
func (d *demo) conflict(ctx context.Context) error {
	heading("7. The pain point: a fourth Service asks for 198.51.100.88, which is taken")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: conflictNS, Name: conflictName},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			LoadBalancerIP:                "198.51.100.88",
			AllocateLoadBalancerNodePorts: new(bool),
			Selector:                      map[string]string{"app": conflictName},
			Ports:                         []corev1.ServicePort{tcp(80, 0)},
		},
	}
	if err := d.c.Client.Create(ctx, svc); err != nil {
		return fmt.Errorf("create %s/%s: %w", conflictNS, conflictName, err)
	}
	say("created %s/%s: type LoadBalancer, loadBalancerIP 198.51.100.88", conflictNS, conflictName)
	var cond *metav1.Condition
	err := d.eventually(ctx, 20*time.Second, func() error {
		svc, err := d.service(ctx, conflictNS, conflictName)
		if err != nil {
			return err
		}
		cond = meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated)
		if cond == nil || cond.Status != metav1.ConditionFalse {
			return fmt.Errorf("conditions %+v", svc.Status.Conditions)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s/%s pending with a reason: %w", conflictNS, conflictName, err)
	}
	// The event follows the condition by a moment; describe shows it.
	err = d.eventually(ctx, 5*time.Second, func() error {
		var list eventsv1.EventList
		if err := d.c.Client.List(ctx, &list, client.InNamespace(conflictNS)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == conflictName && e.Reason == "AllocationFailed" {
				return nil
			}
		}
		return errors.New("no AllocationFailed event yet")
	})
	if err != nil {
		return fmt.Errorf("event on %s/%s: %w", conflictNS, conflictName, err)
	}
	fmt.Println()
	if err := d.kubectl(ctx, "get", "svc", "-n", conflictNS, conflictName); err != nil {
		return err
	}
	fmt.Println()
	say("its condition %s: %s", cond.Type, cond.Reason)
	indent(cond.Message + "\n")
	fmt.Println()
	say("$ kubectl describe svc %s -n %s   (the end of it)", conflictName, conflictNS)
	out, err := d.tool(ctx, "kubectl", "describe", "svc", conflictName, "-n", conflictNS)
	if err != nil {
		return err
	}
	if i := strings.Index(out, "Events:"); i >= 0 {
		out = out[i:]
	}
	indent(out)
	return nil
}

// failover kills the node announcing .88 while the client probes it.
func (d *demo) failover(ctx context.Context) error {
	s := services[0]
	a, err := d.c.Announcer(ctx, s.ns, s.name, s.ip)
	if err != nil {
		return err
	}
	owner := a.Node
	heading(fmt.Sprintf("8. Unplanned failover: %s, which announces %s, dies", owner, s.ip))
	host, err := d.c.Host(owner)
	if err != nil {
		return err
	}
	speaker := d.c.Speaker(owner)
	p, err := d.c.Lab.Client().ProbeUDP(ctx, netip.AddrPortFrom(s.ip, labcluster.UDPPort), labnet.DefaultProbeInterval)
	if err != nil {
		return err
	}
	defer p.Stop() // on an early return; Stop is idempotent
	say("the client sends a UDP probe to %s:%d every 10 ms; each answer names the node", s.ip, labcluster.UDPPort)
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	say("killing %s: SIGKILL to its speaker (pid %d), then its link to the LAN cut", owner, speaker.PID())
	killed := time.Now()
	if err := speaker.Kill(); err != nil {
		return err
	}
	if err := host.LinkDown(); err != nil {
		return err
	}
	d.begin("waiting for another node to announce " + s.ip.String())
	var next string
	err = labcluster.Eventually(ctx, 15*time.Second, func() error {
		a, err := d.c.Announcer(ctx, s.ns, s.name, s.ip)
		if err == nil && (a.Node == owner || a.Node == "") {
			err = fmt.Errorf("announced by %q", a.Node)
		}
		next = a.Node
		return err
	})
	if err != nil {
		return fmt.Errorf("failover of %s: %w", s.ip, err)
	}
	took := time.Since(killed)
	d.end()
	// Let the client see the new owner for a second before the tally.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	res := p.Stop()
	say("%s took over %s (its status updated %s after the kill)", next, s.ip, seconds(took))
	say("the client saw no answer for %s at the longest; %d of %d probes answered (%s)",
		seconds(res.LongestGap), res.Received, res.Sent, byNode(res.ByNode))
	if res.ByNode[next] == 0 {
		return fmt.Errorf("no probe answered by %s, the new owner of %s", next, s.ip)
	}
	fmt.Println()
	return d.ironlbctl(ctx, "status")
}

func byNode(m map[string]int) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", n, m[n]))
	}
	return "by " + strings.Join(parts, ", ")
}

// service reads a Service.
func (d *demo) service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	var svc corev1.Service
	err := d.c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc)
	return &svc, err
}

func (d *demo) ensureNamespace(ctx context.Context, name string) error {
	err := d.c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// kubectl runs bin/kubectl in cp and prints the command and its output.
func (d *demo) kubectl(ctx context.Context, args ...string) error {
	say("$ kubectl %s", strings.Join(args, " "))
	out, err := d.tool(ctx, "kubectl", args...)
	indent(out)
	return err
}

// ironlbctl runs bin/ironlbctl in cp and prints the command and its output.
func (d *demo) ironlbctl(ctx context.Context, args ...string) error {
	say("$ ironlbctl %s", strings.Join(args, " "))
	out, err := d.tool(ctx, "ironlbctl", args...)
	indent(out)
	return err
}

// tool runs bin/<tool> in the cp host with the lab's kubeconfig.
func (d *demo) tool(ctx context.Context, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	flags := []string{"--kubeconfig", d.c.CP.Kubeconfig}
	if tool == "kubectl" {
		// Not the invoking user's ~/.kube/cache.
		flags = append(flags, "--cache-dir", filepath.Join(d.c.Lab.Dir(), "kubectl-cache"))
	}
	out, err := d.c.Lab.CP().Run(ctx, filepath.Join(d.repo, "bin", tool), append(args, flags...)...)
	if err != nil {
		return "", err // Run's error carries the output
	}
	return string(out), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func portList(ports []corev1.ServicePort) string {
	var s []string
	for _, p := range ports {
		if p.TargetPort.IntVal != 0 {
			s = append(s, fmt.Sprintf("%d->%d", p.Port, p.TargetPort.IntVal))
		} else {
			s = append(s, fmt.Sprint(p.Port))
		}
	}
	return strings.Join(s, ",") + "/TCP"
}
