package kube

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// Serves reports whether svc is a LoadBalancer Service that ironlb serves
// under class: one that names class or no class at all.
func Serves(svc *corev1.Service, class string) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		(svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass == class)
}

// IngressIPs are the addresses in svc's status.loadBalancer.ingress, in
// their order there, unmapped; an entry that does not parse (a hostname,
// another tool's mistake) is left out.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// LocalTraffic reports whether svc has externalTrafficPolicy: Local:
// kube-proxy then forwards its external traffic only to endpoints on the
// node that received it, so only nodes holding a ready endpoint may
// announce its addresses.
func LocalTraffic(svc *corev1.Service) bool {
	return svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// EndpointReady reports whether ep is ready: a nil Ready condition is
// (EndpointSlice API: "nil should be interpreted as true"), as kube-proxy
// reads it.
func EndpointReady(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// SliceService is the Service an EndpointSlice belongs to (its
// kubernetes.io/service-name label), and whether it names one.
func SliceService(es *discoveryv1.EndpointSlice) (string, bool) {
	name, ok := es.Labels[discoveryv1.LabelServiceName]
	return name, ok
}

// NodeReady reports whether n's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Excluded reports whether a node with labels is kept from announcing any
// Service address (v1alpha1.LabelExcludeFromLoadBalancers).
func Excluded(labels map[string]string) bool {
	_, ok := labels[v1alpha1.LabelExcludeFromLoadBalancers]
	return ok
}

// Draining reports whether n is cordoned (spec.unschedulable, the first
// step of kubectl drain) or labelled v1alpha1.LabelMaintenance: its
// Layer 2 addresses are handed to other nodes by planned handovers, and
// it takes new ones only where no other node may.
func Draining(n *corev1.Node) bool {
	_, ok := n.Labels[v1alpha1.LabelMaintenance]
	return ok || n.Spec.Unschedulable
}

// InternalIP is n's first InternalIP, IPv4 preferred: the address the
// speakers gossip on and the default BGP router ID.
func InternalIP(n *corev1.Node) netip.Addr {
	var v6 netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		if ip.Is4() {
			return ip
		}
		if !v6.IsValid() {
			v6 = ip
		}
	}
	return v6
}
