package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// capNetRaw is CAP_NET_RAW's bit in /proc/<pid>/status (capability.h).
const capNetRaw = 1 << 13

// TestLeastPrivilege runs the speakers as the installed DaemonSet runs
// them: with the token of the speaker's ServiceAccount, so with the RBAC
// of config/rbac (labcluster.SpeakerKubeconfig), and with CAP_NET_RAW as
// their only capability, as a container that drops ALL and adds NET_RAW
// (setpriv limits the bounding, inheritable and ambient sets, so root's
// execve of the speaker gets NET_RAW alone). Each speaker answers ARP and
// NDP for a dual-stack Service, and announces another over BGP sessions
// signed with TCP MD5 (RFC 2385), the password read from a Secret, and
// watched by BFD (RFC 5880); no
// request of theirs is refused by the API server, and no system call by
// the kernel.
func TestLeastPrivilege(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ironlb")
	root, err := apiservertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/ironlb")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The controller runs as it does in every lab test; the speakers with
	// CAP_NET_RAW alone.
	wrapper := filepath.Join(dir, "ironlb-net-raw")
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = speaker ]; then
	exec %[1]s --bounding-set=-all,+net_raw --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw -- %[2]s "$@"
fi
exec %[2]s "$@"
`, setpriv, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	cl := labcluster.StartTest(t, 2, labcluster.Options{Bin: wrapper, NoSpeakers: true})
	c := &cluster{Cluster: cl, t: t, c: cl.Client}
	kubeconfig, err := cl.SpeakerKubeconfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// BGP: the router wants an MD5 signature from every node, and runs
	// BFD with it.
	const password = "ironlb-md5"
	r, frr := c.startFRR(func(n *labnet.RouterNeighbor) { n.Password, n.BFD = password, true })
	c.apply(&v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "bfd"}})
	c.apply(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: labnet.SystemNamespace, Name: "router-md5"},
		Data:       map[string][]byte{"password": []byte(password)},
	})
	c.apply(&v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: r.Host.IPv4.String(),
			PasswordSecret: &corev1.SecretReference{Namespace: labnet.SystemNamespace, Name: "router-md5"},
			BFDProfile:     "bfd"},
	})
	c.apply(&v1alpha1.BGPAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "routed"},
		Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}},
	})
	// Layer 2, IPv4 and IPv6.
	c.namespace("lab")
	c.applyDualPool()

	var speakers []*labnet.Process
	var nodeIPs []netip.Addr
	for _, h := range c.Lab.Nodes() {
		p, err := cl.StartSpeaker(h.Name, "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		speakers = append(speakers, p)
		nodeIPs = append(nodeIPs, h.IPv4)
	}
	slices.SortFunc(nodeIPs, netip.Addr.Compare)
	for _, p := range speakers {
		c.eventually(10*time.Second, "capabilities of the speaker on "+p.Host.Name, func() error {
			return onlyNetRaw(p.PID())
		})
	}

	v4, v6 := c.applyDualService()
	c.checkAnswer("lab", "dual", v4)
	c.checkAnswer("lab", "dual", v6)

	web := service("shop", "web", 80)
	web.Spec.LoadBalancerIP = "203.0.113.100"
	c.apply(web)
	c.waitIPs("shop", "web", "203.0.113.100")
	prefix := netip.MustParsePrefix("203.0.113.100/32")
	c.eventually(60*time.Second, "the router's next hops for "+prefix.String(), func() error {
		routes, err := frr.Routes(t.Context())
		if err != nil {
			return err
		}
		for _, rt := range routes {
			if rt.Prefix == prefix {
				if got := rt.NextHops(); !slices.Equal(got, nodeIPs) {
					return fmt.Errorf("next hops %v, want %v", got, nodeIPs)
				}
				return nil
			}
		}
		return fmt.Errorf("no route")
	})
	c.eventually(30*time.Second, "BGP session states", func() error {
		var list v1alpha1.BGPSessionStateList
		if err := c.c.List(c.ctx(), &list); err != nil {
			return err
		}
		up := 0
		for _, s := range list.Items {
			if s.Status.State == v1alpha1.BGPStateEstablished && s.Status.BFDState == v1alpha1.BFDStateUp {
				up++
			}
		}
		if up != len(nodeIPs) {
			return fmt.Errorf("%d of %d sessions Established with BFD Up: %+v", up, len(nodeIPs), list.Items)
		}
		return nil
	})

	for _, p := range speakers {
		if err := p.Stop(); err != nil {
			t.Errorf("stop the speaker on %s: %v", p.Host.Name, err)
		}
		log, err := p.Log()
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(log))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := strings.ToLower(sc.Text())
			for _, refused := range []string{"forbidden", "operation not permitted", "permission denied"} {
				if strings.Contains(line, refused) {
					t.Errorf("speaker on %s was refused (%s): %s", p.Host.Name, refused, sc.Text())
				}
			}
		}
	}
}

// onlyNetRaw checks that process pid (or, if it is still a wrapper, its
// child) holds CAP_NET_RAW and no other capability in its effective,
// permitted and bounding sets.
func onlyNetRaw(pid int) error {
	for range 3 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return err
		}
		fields := map[string]string{}
		for line := range strings.Lines(string(status)) {
			k, v, _ := strings.Cut(line, ":")
			fields[k] = strings.TrimSpace(v)
		}
		if fields["Name"] != "ironlb" {
			// `ip netns exec` or the wrapper, before its exec.
			children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
			if err != nil {
				return err
			}
			f := strings.Fields(string(children))
			if len(f) != 1 {
				return fmt.Errorf("process %d (%s) is not the speaker yet", pid, fields["Name"])
			}
			if pid, err = strconv.Atoi(f[0]); err != nil {
				return err
			}
			continue
		}
		for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
			v, err := strconv.ParseUint(fields[set], 16, 64)
			if err != nil {
				return fmt.Errorf("%s %q: %w", set, fields[set], err)
			}
			if v != capNetRaw {
				return fmt.Errorf("speaker (pid %d) %s is %#x, want CAP_NET_RAW alone (%#x)", pid, set, v, capNetRaw)
			}
		}
		return nil
	}
	return fmt.Errorf("no speaker under process %d", pid)
}
