package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// The Services live in svcNamespace and take their addresses from one
// Layer 2 pool in the lab's LAN prefix, clear of the hosts' own
// 2001:db8:1::N (internal/labnet, names.go), so that the client resolves
// them with NDP like any neighbour.
const (
	svcNamespace = "manynodes"
	legacyConfig = `address-pools:
- name: manynodes
  protocol: layer2
  addresses:
  - 2001:db8:1::1:0/112
`
)

const (
	// creators is how many goroutines create the Services.
	creators = 16
	// announceTimeout bounds the wait for every Service to be announced.
	announceTimeout = 10 * time.Minute
)

// setUp applies the pool, creates the Services and waits until a node
// announces each; it returns how long that took from the first creation.
func (b *bench) setUp(ctx context.Context) (time.Duration, error) {
	c := b.cl.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: svcNamespace}}); err != nil {
		return 0, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: labnet.SystemNamespace, Name: "config"},
		Data:       map[string]string{"config": legacyConfig},
	}
	if err := c.Create(ctx, cm); err != nil {
		return 0, err
	}
	fmt.Fprintf(b.diag, "# creating %d IPv6 LoadBalancer Services\n", b.opts.Services)
	start := time.Now()
	if err := b.createServices(ctx); err != nil {
		return 0, err
	}
	fmt.Fprintf(b.diag, "# created in %.1f s; waiting until every one is announced\n", time.Since(start).Seconds())
	err := labcluster.Eventually(ctx, announceTimeout, func() error {
		v, err := b.announcements(ctx)
		if err == nil && v.announced < b.opts.Services {
			err = fmt.Errorf("%d of %d Services announced", v.announced, b.opts.Services)
		}
		return err
	})
	return time.Since(start), err
}

// createServices creates the Services svc-0000... from creators
// goroutines.
func (b *bench) createServices(ctx context.Context) error {
	idx := make(chan int)
	errs := make([]error, creators)
	var wg sync.WaitGroup
	for w := range creators {
		wg.Go(func() {
			for i := range idx {
				if errs[w] != nil {
					continue // drain
				}
				if err := b.create(ctx, service(i)); err != nil {
					errs[w] = fmt.Errorf("create Service %d: %w", i, err)
				}
			}
		})
	}
	for i := range b.opts.Services {
		idx <- i
	}
	close(idx)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// createAttempts bounds the tries of one creation.
const createAttempts = 5

// create creates svc, trying again after an error that may pass: an API
// server short of CPU times requests out (60 s), and a timed-out creation
// may still have been stored, so AlreadyExists on a later try is success.
func (b *bench) create(ctx context.Context, svc *corev1.Service) error {
	var err error
	for attempt := range createAttempts {
		err = b.cl.Client.Create(ctx, svc.DeepCopy())
		switch {
		case err == nil, attempt > 0 && apierrors.IsAlreadyExists(err):
			return nil
		case apierrors.IsInvalid(err), apierrors.IsAlreadyExists(err), apierrors.IsForbidden(err), ctx.Err() != nil:
			return err
		}
		fmt.Fprintf(b.diag, "# creating %s/%s (try %d of %d): %v\n", svc.Namespace, svc.Name, attempt+1, createAttempts, err)
		time.Sleep(time.Second)
	}
	return err
}

// service is the i-th Service: single-stack IPv6, no node ports.
func service(i int) *corev1.Service {
	policy := corev1.IPFamilyPolicySingleStack
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: svcNamespace, Name: fmt.Sprintf("svc-%04d", i)},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(bool),
			IPFamilies:                    []corev1.IPFamily{corev1.IPv6Protocol},
			IPFamilyPolicy:                &policy,
			Selector:                      map[string]string{"app": "manynodes"},
			Ports:                         []corev1.ServicePort{{Name: "udp", Port: labcluster.UDPPort, Protocol: corev1.ProtocolUDP}},
		},
	}
}

// view is who announces what, as the ServiceAnnouncements say.
type view struct {
	// announced counts the Services with a node for each of their
	// addresses.
	announced int
	// byNode lists each node's addresses, sorted.
	byNode map[string][]netip.Addr
}

// announcements lists the ServiceAnnouncements of svcNamespace.
func (b *bench) announcements(ctx context.Context) (view, error) {
	var list v1alpha1.ServiceAnnouncementList
	if err := b.cl.Client.List(ctx, &list, client.InNamespace(svcNamespace)); err != nil {
		return view{}, err
	}
	return viewOf(list.Items), nil
}

// viewOf sums up announcements.
func viewOf(as []v1alpha1.ServiceAnnouncement) view {
	v := view{byNode: map[string][]netip.Addr{}}
	for _, a := range as {
		all := len(a.Status.Announcers) > 0
		for _, e := range a.Status.Announcers {
			ip, err := netip.ParseAddr(e.IP)
			if e.Node == "" || err != nil {
				all = false
				continue
			}
			v.byNode[e.Node] = append(v.byNode[e.Node], ip)
		}
		if all {
			v.announced++
		}
	}
	for _, ips := range v.byNode {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	return v
}
