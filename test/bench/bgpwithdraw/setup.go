package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The cluster's BGP configuration: eBGP over IPv4 between the router's
// and the nodes' LAN addresses, with BFD on both ends, and one Service
// whose address, from 203.0.113.112/28 (clear of the pod ranges and of
// the outside link), the router installs as an ECMP route via every node.
var serviceIP = netip.MustParseAddr("203.0.113.113")

// The objects' names, and the AS numbers.
const (
	namespace, serviceName      = "bgpwithdraw", "web"
	poolName, peerName, bfdName = "withdraw", "router", "fast"
	routerASN, nodeASN          = 64500, 64512
)

// configure creates the namespace, IPPool, BFDProfile, BGPPeer,
// BGPAnnouncement and the Service, and waits until the controller has
// given the Service its address.
func (b *bench) configure(ctx context.Context) error {
	interval, mult := uint32(b.opts.BFDInterval.Milliseconds()), uint32(b.opts.BFDMultiplier)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&v1alpha1.IPPool{
			ObjectMeta: metav1.ObjectMeta{Name: poolName},
			Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"203.0.113.112/28"}},
		},
		&v1alpha1.BFDProfile{
			ObjectMeta: metav1.ObjectMeta{Name: bfdName},
			Spec:       v1alpha1.BFDProfileSpec{ReceiveInterval: &interval, TransmitInterval: &interval, DetectMultiplier: &mult},
		},
		&v1alpha1.BGPPeer{
			ObjectMeta: metav1.ObjectMeta{Name: peerName},
			Spec: v1alpha1.BGPPeerSpec{MyASN: nodeASN, PeerASN: routerASN, PeerAddress: b.router.Host.IPv4.String(),
				BFDProfile: bfdName},
		},
		&v1alpha1.BGPAnnouncement{
			ObjectMeta: metav1.ObjectMeta{Name: poolName},
			Spec:       v1alpha1.BGPAnnouncementSpec{IPPools: []string{poolName}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceName},
			Spec: corev1.ServiceSpec{
				Type:                          corev1.ServiceTypeLoadBalancer,
				AllocateLoadBalancerNodePorts: new(bool),
				ExternalTrafficPolicy:         corev1.ServiceExternalTrafficPolicyCluster,
				LoadBalancerIP:                serviceIP.String(),
				Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
			},
		},
	}
	for _, o := range objs {
		if err := b.cl.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var svc corev1.Service
		err := b.cl.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: serviceName}, &svc)
		if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			if got := svc.Status.LoadBalancer.Ingress[0].IP; got != serviceIP.String() {
				return fmt.Errorf("the Service %s has address %s, want %s", serviceName, got, serviceIP)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Service %s has no address after a minute (error %v)", serviceName, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
