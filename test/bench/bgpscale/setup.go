package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The cluster's BGP configuration. The sessions are eBGP over IPv6
// between the router's and the nodes' LAN addresses; the service
// addresses come from 2001:db8:3::/112, which no link holds (10,000
// addresses do not fit in the lab's IPv4 ranges, see design/LAB.md).
const (
	routerASN     = 64500
	nodeASN       = 64512
	poolName      = "scale"
	poolPrefix    = "2001:db8:3::/112"
	peerName      = "router"
	bfdName       = "fast"
	bfdIntervalMS = 300
	bfdMultiplier = 3
	namespace     = "scale"
	// assignTimeout bounds the wait for the controller to give every
	// Service an address.
	assignTimeout = 15 * time.Minute
)

// configure creates the IPPool, the BFDProfile, the BGPPeer and the
// BGPAnnouncement.
func (b *bench) configure(ctx context.Context) error {
	rh := b.router.Host
	peer := &v1alpha1.BGPPeer{
		ObjectMeta: metav1.ObjectMeta{Name: peerName},
		Spec:       v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: rh.IPv6.String()},
	}
	if b.opts.BFD {
		peer.Spec.BFDProfile = bfdName
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&v1alpha1.IPPool{
			ObjectMeta: metav1.ObjectMeta{Name: poolName},
			Spec:       v1alpha1.IPPoolSpec{Addresses: []string{poolPrefix}},
		},
		&v1alpha1.BFDProfile{
			ObjectMeta: metav1.ObjectMeta{Name: bfdName},
			Spec: v1alpha1.BFDProfileSpec{
				ReceiveInterval:  new(uint32(bfdIntervalMS)),
				TransmitInterval: new(uint32(bfdIntervalMS)),
				DetectMultiplier: new(uint32(bfdMultiplier)),
			},
		},
		peer,
		&v1alpha1.BGPAnnouncement{
			ObjectMeta: metav1.ObjectMeta{Name: poolName},
			Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{poolName}},
		},
	}
	for _, o := range objs {
		if err := b.cl.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// createServices creates the Services svc-00000... (and, with
// -endpoints, an EndpointSlice for each) from opts.Creators goroutines,
// and returns how long it took.
func (b *bench) createServices(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range b.opts.Creators {
		wg.Go(func() {
			for i := range idx {
				err := b.cl.Client.Create(ctx, scaleService(i))
				if err == nil && b.opts.Endpoints {
					err = b.cl.Client.Create(ctx, b.endpointSlice(i))
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("object %d: %w", i, err); cancel() })
					return
				}
			}
		})
	}
feed:
	for i := range b.opts.Services {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
		if (i+1)%2000 == 0 {
			fmt.Fprintf(b.diag, "# %d Services created after %.1f s\n", i+1, time.Since(start).Seconds())
		}
	}
	close(idx)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return time.Since(start), first
}

func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// scaleService is the i-th Service: single-stack IPv6, from the scale
// pool, externalTrafficPolicy Cluster (so every node announces it).
func scaleService(i int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceName(i)},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(bool),
			ExternalTrafficPolicy:         corev1.ServiceExternalTrafficPolicyCluster,
			IPFamilies:                    []corev1.IPFamily{corev1.IPv6Protocol},
			IPFamilyPolicy:                new(corev1.IPFamilyPolicySingleStack),
			Selector:                      map[string]string{"app": serviceName(i)},
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

// endpointSlice is the i-th Service's EndpointSlice: one ready endpoint on
// every node, as a three-replica Deployment has. The lab has no kubelet
// and no EndpointSlice controller; the addresses (2001:db8:4::/64, on no
// link) are never used, only stored and watched.
func (b *bench) endpointSlice(i int) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceName(i) + "-lab",
			Labels: map[string]string{discoveryv1.LabelServiceName: serviceName(i)}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(80)), Protocol: new(corev1.ProtocolTCP)}},
	}
	for n, h := range b.cl.Lab.Nodes() {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("2001:db8:4::%x:%x", n+1, i)},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			NodeName:   new(h.Name),
		})
	}
	return es
}

// waitAssigned waits until every Service has an address in its status and
// returns how long that took after since.
func (b *bench) waitAssigned(ctx context.Context, since time.Time) (time.Duration, error) {
	last := -1
	for {
		var list corev1.ServiceList
		if err := b.cl.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return 0, err
		}
		n := 0
		for _, s := range list.Items {
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				n++
			}
		}
		if n >= b.opts.Services {
			return time.Since(since), nil
		}
		if n != last {
			fmt.Fprintf(b.diag, "# %d of %d Services have an address after %.1f s\n", n, b.opts.Services, time.Since(since).Seconds())
			last = n
		}
		if time.Since(since) > assignTimeout {
			return 0, fmt.Errorf("%d of %d Services have an address after %s", n, b.opts.Services, assignTimeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
