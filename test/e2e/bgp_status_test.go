package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/labnet"
)

// TestBGPSessionStatus checks what a user sees of BGP sessions: FRR peers
// with node-1 and node-2 without a password and wants a TCP MD5 password
// from node-3, whose BGPPeer has the wrong one. `kubectl get bgpsess`
// shows the two Established sessions with the prefixes each node
// announces, and node-3's session with the reason; `ironlbctl status`
// lists them under the Services. A peer no longer selecting a node takes
// its object away, a stopped speaker marks its session Idle, and the
// object of a deleted node is removed by another speaker.
func TestBGPSessionStatus(t *testing.T) {
	c := newCluster(t, 3)
	var node3 netip.Addr
	for _, h := range c.Lab.Nodes() {
		if h.Name == "node-3" {
			node3 = h.IPv4
		}
	}
	r, _ := c.startFRR(func(n *labnet.RouterNeighbor) {
		if n.Address == node3 {
			n.Password = "ironlb-md5"
		}
	})
	hostIn := func(names ...string) []metav1.LabelSelector {
		return []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpIn, Values: names},
		}}}
	}
	c.apply(&v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: r.Host.IPv4.String(),
			NodeSelectors: hostIn("node-1", "node-2")},
	})
	c.apply(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: labnet.SystemNamespace, Name: "router-md5"},
		Data:       map[string][]byte{"password": []byte("wrong")},
	})
	c.apply(&v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "router-md5"},
		Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: r.Host.IPv4.String(),
			NodeSelectors:  hostIn("node-3"),
			PasswordSecret: &corev1.SecretReference{Namespace: labnet.SystemNamespace, Name: "router-md5"}},
	})
	c.apply(&v1alpha1.BGPAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "routed"},
		Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{"routed"}},
	})
	// web is announced by every node, local only by node-2, where its
	// endpoint is: node-1 sends 1 prefix, node-2 sends 2.
	web := service("shop", "web", 80)
	web.Spec.LoadBalancerIP = "203.0.113.100"
	c.apply(web)
	local := service("shop", "local", 80)
	local.Spec.LoadBalancerIP = "203.0.113.101"
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	c.apply(local)
	c.waitIPs("shop", "web", "203.0.113.100")
	c.waitIPs("shop", "local", "203.0.113.101")
	c.endpoints("shop", "local", "node-2")

	// sessions returns the BGPSessionStates by "node/peer".
	sessions := func() (map[string]v1alpha1.BGPSessionStateStatus, error) {
		var list v1alpha1.BGPSessionStateList
		if err := c.c.List(c.ctx(), &list, client.InNamespace(labnet.SystemNamespace)); err != nil {
			return nil, err
		}
		out := map[string]v1alpha1.BGPSessionStateStatus{}
		for _, s := range list.Items {
			if s.Labels[v1alpha1.LabelNode] != s.Status.Node || s.Labels[v1alpha1.LabelPeer] != s.Status.Peer {
				return nil, fmt.Errorf("%s: labels %v do not name node %s and peer %s", s.Name, s.Labels, s.Status.Node, s.Status.Peer)
			}
			out[s.Status.Node+"/"+s.Status.Peer] = s.Status
		}
		return out, nil
	}
	c.eventually(60*time.Second, "BGP session states", func() error {
		got, err := sessions()
		if err != nil {
			return err
		}
		if len(got) != 3 {
			return fmt.Errorf("%d sessions, want 3: %+v", len(got), got)
		}
		for key, prefixes := range map[string]int32{"node-1/router": 1, "node-2/router": 2} {
			s := got[key]
			if s.State != v1alpha1.BGPStateEstablished || s.PrefixesSent != prefixes || s.LastError != "" ||
				s.PeerAddress != r.Host.IPv4.String() || s.LastTransitionTime.IsZero() {
				return fmt.Errorf("%s: %+v, want Established with %d prefixes", key, s, prefixes)
			}
		}
		if s := got["node-3/router-md5"]; s.State == v1alpha1.BGPStateEstablished ||
			!strings.Contains(s.LastError, "i/o timeout") || !strings.Contains(s.LastError, "MD5") {
			return fmt.Errorf("node-3/router-md5: %+v, want down with the MD5 hint", s)
		}
		return nil
	})

	// What the user types.
	kubectl := c.tool("kubectl", "get", "bgpsess", "-n", labnet.SystemNamespace, "-o", "wide")
	t.Logf("kubectl get bgpsess -n %s -o wide:\n%s", labnet.SystemNamespace, kubectl)
	lines := strings.Split(strings.TrimSpace(kubectl), "\n")
	if h := strings.Fields(lines[0]); !slices.Equal(h, []string{"NAME", "NODE", "PEER", "ADDRESS", "STATE", "BFD", "PREFIXES", "SINCE", "AGE", "ERROR"}) {
		t.Errorf("kubectl's columns: %v", h)
	}
	var established int
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch {
		case len(f) >= 7 && f[4] == "Established":
			established++
		case len(f) >= 10 && f[2] == "router-md5":
			if !strings.Contains(l, "MD5") {
				t.Errorf("node-3's line does not say why: %q", l)
			}
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	if established != 2 {
		t.Errorf("%d Established sessions, want 2", established)
	}
	status := c.tool("ironlbctl", "status")
	t.Logf("ironlbctl status:\n%s", status)
	if !strings.Contains(status, "\nBGP sessions:\n") || !strings.Contains(status, "node-3's session with router-md5 is ") {
		t.Errorf("ironlbctl status lacks the BGP sessions or node-3's reason:\n%s", status)
	}

	// node-3's peer goes: node-3's speaker deletes its object.
	if err := c.c.Delete(c.ctx(), &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router-md5"}}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "node-3's session state deleted", func() error {
		got, err := sessions()
		if err == nil && len(got) != 2 {
			err = fmt.Errorf("sessions %v, want node-1's and node-2's", slices.Sorted(func(yield func(string) bool) {
				for k := range got {
					if !yield(k) {
						return
					}
				}
			}))
		}
		return err
	})

	// node-2's speaker stops: its session reads Idle; node-2 is deleted:
	// node-1's speaker (the first Ready node's) deletes the object.
	if err := c.speaker("node-2").Stop(); err != nil {
		t.Logf("stop node-2's speaker: %v", err)
	}
	got, err := sessions()
	if err != nil {
		t.Fatal(err)
	}
	if s := got["node-2/router"]; s.State != v1alpha1.BGPStateIdle || s.PrefixesSent != 0 || !strings.Contains(s.LastError, "stopped") {
		t.Errorf("node-2's session after its speaker stopped: %+v", s)
	}
	if err := c.c.Delete(c.ctx(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "the deleted node's session state removed", func() error {
		got, err := sessions()
		if err == nil && (len(got) != 1 || got["node-1/router"].State != v1alpha1.BGPStateEstablished) {
			err = fmt.Errorf("sessions %+v, want node-1's alone", got)
		}
		return err
	})
}

// tool runs bin/NAME (kubectl, ironlbctl) with args in the cp host, as a
// user at the control plane would, and returns its output.
func (c *cluster) tool(name string, args ...string) string {
	c.t.Helper()
	root, err := apiservertest.RepoRoot()
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--kubeconfig", c.CP.Kubeconfig)
	if name == "kubectl" {
		args = append(args, "--cache-dir", filepath.Join(c.Lab.Dir(), "kubectl-cache"))
	}
	out, err := c.Lab.CP().Run(ctx, filepath.Join(root, "bin", name), args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}
