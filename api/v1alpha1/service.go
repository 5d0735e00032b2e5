package v1alpha1

// Names ironlb reads and writes on core Services. They are part of ironlb's
// API: users and tools (ironlbctl, dashboards) depend on them.
const (
	// AnnotationLoadBalancerIPs requests addresses, comma-separated, at most
	// one per IP family. It wins over spec.loadBalancerIP.
	AnnotationLoadBalancerIPs = "ironlb.io/loadBalancerIPs"
	// AnnotationAddressPool requests a pool by name.
	AnnotationAddressPool = "ironlb.io/address-pool"
	// AnnotationAllowSharedIP lets Services with the same value share an IP
	// when their ports do not collide.
	AnnotationAllowSharedIP = "ironlb.io/allow-shared-ip"

	// ServiceConditionIPAllocated is the condition the controller keeps in a
	// LoadBalancer Service's status.conditions: True when it has its IPs,
	// False with the reason, in words, when it does not.
	ServiceConditionIPAllocated = "ironlb.io/IPAllocated"

	// DefaultLoadBalancerClass is the spec.loadBalancerClass ironlb serves
	// besides Services that name no class.
	DefaultLoadBalancerClass = "ironlb.io/lb"
)

// AnnotationAliasPrefixes are the prefixes under which the annotation
// names above are also read, ours first. MetalLB's spellings are honoured so
// Services written for a MetalLB tutorial keep working unchanged.
var AnnotationAliasPrefixes = []string{"ironlb.io/", "metallb.universe.tf/", "metallb.io/"}
