// Package e2e runs ironlb end to end in the lab (internal/labcluster): a
// real kube-apiserver and etcd in the cp namespace, `ironlb controller`
// beside them, `ironlb speaker` in every node namespace, and a client on
// the LAN that resolves and reaches Service addresses the way a user's
// machine does.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// cluster is labcluster.Cluster with failures reported to a test.
type cluster struct {
	*labcluster.Cluster
	t *testing.T
	c client.Client
}

// newCluster starts ironlb in a lab of n nodes, its speakers with
// speakerArgs; the test's end removes it.
func newCluster(t *testing.T, n int, speakerArgs ...string) *cluster {
	t.Helper()
	cl := labcluster.StartTest(t, n, labcluster.Options{SpeakerArgs: speakerArgs})
	return &cluster{Cluster: cl, t: t, c: cl.Client}
}

// startSpeaker starts the speaker of node name.
func (c *cluster) startSpeaker(name string, args ...string) {
	c.t.Helper()
	if _, err := c.StartSpeaker(name, args...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) speaker(name string) *labnet.Process { return c.Speaker(name) }

func (c *cluster) host(name string) *labnet.Host {
	c.t.Helper()
	h, err := c.Host(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c *cluster) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	c.t.Cleanup(cancel)
	return ctx
}

// apply creates o, or replaces the object of its name.
func (c *cluster) apply(o client.Object) {
	c.t.Helper()
	err := c.c.Create(c.ctx(), o)
	if apierrors.IsAlreadyExists(err) {
		old := o.DeepCopyObject().(client.Object)
		if err = c.c.Get(c.ctx(), client.ObjectKeyFromObject(o), old); err == nil {
			o.SetResourceVersion(old.GetResourceVersion())
			err = c.c.Update(c.ctx(), o)
		}
	}
	if err != nil {
		c.t.Fatalf("apply %T %s: %v", o, o.GetName(), err)
	}
}

// edit changes a Service the way kubectl edit does: read, change, write.
func (c *cluster) edit(ns, name string, f func(*corev1.Service)) {
	c.t.Helper()
	var svc corev1.Service
	if err := c.c.Get(c.ctx(), types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		c.t.Fatal(err)
	}
	f(&svc)
	if err := c.c.Update(c.ctx(), &svc); err != nil {
		c.t.Fatalf("edit %s/%s: %v", ns, name, err)
	}
}

func (c *cluster) namespace(name string) {
	c.t.Helper()
	err := c.c.Create(c.ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		c.t.Fatal(err)
	}
}

// legacyConfig applies the legacy ConfigMap with this config text.
func (c *cluster) legacyConfig(text string) {
	c.apply(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: labnet.SystemNamespace, Name: "config"},
		Data:       map[string]string{"config": text},
	})
}

// service returns a LoadBalancer Service of TCP ports, with no node ports
// (nothing here would serve them).
func service(ns, name string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(bool),
			Selector:                      map[string]string{"app": name},
		},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", p), Port: p, Protocol: corev1.ProtocolTCP})
	}
	return svc
}

// eventually polls f until it returns nil or timeout passes, then fails
// with its last error.
func (c *cluster) eventually(timeout time.Duration, what string, f func() error) {
	c.t.Helper()
	if err := labcluster.Eventually(c.ctx(), timeout, f); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// waitIPs waits until the Service has exactly the addresses want.
func (c *cluster) waitIPs(ns, name string, want ...string) {
	c.t.Helper()
	c.eventually(30*time.Second, "addresses of "+ns+"/"+name, func() error {
		var svc corev1.Service
		if err := c.c.Get(c.ctx(), types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
			return err
		}
		var got []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			got = append(got, in.IP)
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			return fmt.Errorf("have %v, want %v", got, w)
		}
		return nil
	})
}

func (c *cluster) announcer(ns, name string, ip netip.Addr) (v1alpha1.Announcer, error) {
	return c.Announcer(c.ctx(), ns, name, ip)
}

func (c *cluster) waitAnnouncer(ns, name string, ip netip.Addr) v1alpha1.Announcer {
	c.t.Helper()
	a, err := c.WaitAnnouncer(c.ctx(), ns, name, ip, 30*time.Second)
	if err != nil {
		c.t.Fatalf("announcer of %s: %v", ip, err)
	}
	return a
}

func (c *cluster) resolve(ip netip.Addr) []string {
	c.t.Helper()
	macs, err := c.Resolve(c.ctx(), ip)
	if err != nil {
		c.t.Fatal(err)
	}
	return macs
}

func (c *cluster) nodeMAC(node string) string { return c.NodeMAC(node) }

func (c *cluster) backends(ip netip.Addr) {
	c.t.Helper()
	if err := c.Backends(c.ctx(), ip); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) get(ip netip.Addr) (string, error) { return c.Get(ip) }
