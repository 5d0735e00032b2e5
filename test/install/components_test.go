package install

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestComponentsRunWithTheirServiceAccounts runs `ironlb controller` and
// `ironlb speaker` with tokens of the ServiceAccounts that dist/ironlb.yaml
// creates, and checks that each does its job (the controller assigns an
// address, takes its Lease and protects the pool; the speaker creates the
// memberlist Secret and reports who announces the address) without any
// request being refused: the RBAC is enough. The speaker answers on no
// interface (--interfaces names none), so it needs no raw sockets here.
func TestComponentsRunWithTheirServiceAccounts(t *testing.T) {
	install(t)
	ctx := context.Background()
	c := env.Client
	// The controller's Deployment runs the controller-only build.
	bin := buildIronlb(t, "ironlb")
	controllerBin := buildIronlb(t, "ironlb-controller", "ironlb_controller")

	const ns, pool, node = "rbac-run", "rbac-run", "rbac-node"
	prefix := netip.MustParsePrefix("198.51.100.16/28")
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: pool}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{prefix.String()}}},
		&v1alpha1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: pool}, Spec: v1alpha1.L2AnnouncementSpec{IPPools: []string{pool}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: map[string]string{v1alpha1.AnnotationAddressPool: pool}},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	t.Cleanup(func() {
		for i := len(objs) - 1; i >= 0; i-- {
			_ = c.Delete(ctx, objs[i])
		}
	})
	n := objs[3].(*corev1.Node)
	n.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
	}
	if err := c.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}

	// The speaker connects to every BGPPeer: none may point off this machine.
	var peers v1alpha1.BGPPeerList
	if err := c.List(ctx, &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers.Items) > 0 {
		t.Fatalf("%d BGPPeers exist (%s, ...); the speaker would connect to them", len(peers.Items), peers.Items[0].Spec.PeerAddress)
	}

	dir := t.TempDir()
	for _, sa := range []string{"ironlb-controller", "ironlb-speaker"} {
		writeKubeconfig(t, serviceAccountConfig(t, sa), filepath.Join(dir, sa+".kubeconfig"))
	}
	common := []string{"--namespace", systemNamespace, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
	controller := start(t, controllerBin, append([]string{"controller", "--kubeconfig", filepath.Join(dir, "ironlb-controller.kubeconfig"), "--leader-elect=true"}, common...)...)
	speaker := start(t, bin, append([]string{"speaker", "--kubeconfig", filepath.Join(dir, "ironlb-speaker.kubeconfig"),
		"--node-name", node, "--memberlist-bind", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--interfaces", "ironlb-test-none"}, common...)...)

	eventually(t, time.Minute, "controller assigns an address from the pool", func() error {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &svc); err != nil {
			return err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && prefix.Contains(a) {
				return nil
			}
		}
		return fmt.Errorf("status %+v, conditions %+v", svc.Status.LoadBalancer, svc.Status.Conditions)
	})
	eventually(t, time.Minute, "controller holds its Lease", func() error {
		var l coordinationv1.Lease
		if err := c.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: "ironlb-controller"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	eventually(t, time.Minute, "controller protects and reports the pool", func() error {
		var p v1alpha1.IPPool
		if err := c.Get(ctx, client.ObjectKey{Name: pool}, &p); err != nil {
			return err
		}
		if len(p.Finalizers) == 0 || len(p.Status.Conditions) == 0 {
			return fmt.Errorf("finalizers %v, conditions %+v", p.Finalizers, p.Status.Conditions)
		}
		return nil
	})
	eventually(t, time.Minute, "controller creates the memberlist Secret", func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: "ironlb-memberlist"}, &corev1.Secret{})
	})
	eventually(t, time.Minute, "speaker reports who announces the address", func() error {
		var sa v1alpha1.ServiceAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &sa); err != nil {
			return err
		}
		if len(sa.Status.Announcers) == 0 {
			return fmt.Errorf("no announcers in %+v", sa.Status)
		}
		return nil
	})

	for _, p := range []*process{controller, speaker} {
		log := p.stop(t)
		if strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("%s was refused a request:\n%s", p.name, log)
		}
	}
}

// buildIronlb builds cmd/ironlb from this tree with the build tags tags,
// as `make build` and the Dockerfile do (a stale bin/ironlb would prove
// nothing about the RBAC this tree generates).
func buildIronlb(t *testing.T, name string, tags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	args := []string{"build", "-trimpath", "-o", out} // -trimpath as `make build`, to share its cache
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "./cmd/ironlb")...)
	cmd.Dir = repo(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(tags, ","), err, b)
	}
	return out
}

// freePort is a port free on 127.0.0.1 for both TCP and UDP, as memberlist
// needs.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// process is a component started by start; its output is kept for the test.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: "ironlb " + args[0], cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.log())
		}
	})
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after 15 s) and returns its
// output.
func (p *process) stop(t *testing.T) string {
	select {
	case <-p.done:
		return p.log()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15 s of SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.log()
}
