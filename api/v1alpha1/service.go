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
	// when their ports do not collide: Services of one namespace, or of
	// any namespace in a pool that allows it
	// (IPPoolSpec.AllowSharingAcrossNamespaces).
	AnnotationAllowSharedIP = "ironlb.io/allow-shared-ip"

	// ServiceConditionIPAllocated is the condition the controller keeps in a
	// LoadBalancer Service's status.conditions: True when it has its IPs,
	// False with the reason, in words, when it does not.
	ServiceConditionIPAllocated = "ironlb.io/IPAllocated"

	// ServiceConditionAddressConflict is the condition the speaker that
	// owns a Service's address sets, True, while another host on the LAN
	// answers for that address (its ARP Probe or duplicate address
	// detection found the host), with reason ReasonAddressConflict and a
	// message naming the address, the other host's MAC and the interface;
	// the address is not announced meanwhile. The speaker removes the
	// condition once the address is free and announced.
	ServiceConditionAddressConflict = "ironlb.io/AddressConflict"

	// DefaultLoadBalancerClass is the spec.loadBalancerClass ironlb serves
	// besides Services that name no class.
	DefaultLoadBalancerClass = "ironlb.io/lb"
)

// AnnotationAliasPrefixes are the prefixes under which the annotation
// names above are also read, ours first. MetalLB's spellings are honoured so
// Services written for a MetalLB tutorial keep working unchanged.
var AnnotationAliasPrefixes = []string{"ironlb.io/", "metallb.universe.tf/", "metallb.io/"}

// LabelExcludeFromLoadBalancers on a Node keeps it from announcing any
// Service address, as Kubernetes' cloud load balancers read it.
const LabelExcludeFromLoadBalancers = "node.kubernetes.io/exclude-from-external-load-balancers"

// LabelMaintenance on a Node (any value) hands its Layer 2 addresses to
// other nodes, each by a planned handover that loses no traffic, as
// cordoning it does (spec.unschedulable: the first step of kubectl
// drain). Unlike LabelExcludeFromLoadBalancers it is a preference, not a
// ban: a node in maintenance still announces what no other node may.
const LabelMaintenance = "ironlb.io/maintenance"

// Reasons on a Service's IPAllocated condition and on the controller's
// events. They are stable API: alerts, dashboards and `ironlbctl status`
// and `doctor` match on them.
const (
	// ReasonAllocated: the Service has the addresses it asked for.
	ReasonAllocated = "Allocated"
	// ReasonInvalidRequest: its annotations or spec.loadBalancerIP do not
	// parse or contradict each other.
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonIPInUse: an address it requests is held by a Service it may
	// not share with.
	ReasonIPInUse = "IPInUse"
	// ReasonNotInPool: an address it requests is in no pool.
	ReasonNotInPool = "IPNotInAnyPool"
	// ReasonPoolNotAllowed: the pool it needs does not serve its
	// namespace or labels (the pool's serviceAllocation).
	ReasonPoolNotAllowed = "PoolNotAllowed"
	// ReasonUnknownPool: the pool it names does not exist or is being
	// deleted.
	ReasonUnknownPool = "UnknownPool"
	// ReasonBuggyIP: the address it requests ends in .0 or .255 in a pool
	// that avoids those.
	ReasonBuggyIP = "BuggyIP"
	// ReasonPoolExhausted: every address of its pools is taken.
	ReasonPoolExhausted = "PoolExhausted"
	// ReasonNoPool: no pool may give it an address automatically.
	ReasonNoPool = "NoPoolAvailable"
	// ReasonAllocationError: anything else; the message says what.
	ReasonAllocationError = "AllocationError"
)

// ReasonAddressConflict is the reason of the AddressConflict condition and
// of the speaker's AddressConflict events, and begins the reason of a
// ServiceAnnouncement's announcer entry for an address in conflict
// ("AddressConflict: " and the message). Stable API, like the reasons
// above.
const ReasonAddressConflict = "AddressConflict"
