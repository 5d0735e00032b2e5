package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// The errors below are what an operator reads in `kubectl describe svc`
// when a Service does not get the address it asked for, so each Error()
// is a whole statement naming the address, the services (namespace/name)
// and the pool involved. They are types rather than sentinel values so the
// controller can pick them apart with errors.As, for example to append the
// free ranges of the pool or to choose an event reason.

// ConflictError reports that Addr is held by services the requester may
// not share it with. Holders lists every holder that refuses (sorted);
// Reason says why, for the first of them: "no sharing key", "different
// sharing key", "in another namespace, and pool default does not allow
// sharing across namespaces", "port 80/TCP used by both",
// "externalTrafficPolicy Local with different selectors" or, for an
// address a service has given up but holds back (HoldBack), "being
// released".
type ConflictError struct {
	Addr    netip.Addr
	Holders []string
	Reason  string
	// OtherNamespace says the first refusal is the namespace rule (see
	// Sharing): the holder is of another namespace, and Addr's pool does
	// not allow sharing across namespaces. The controller then names the
	// fix, which is the pool's, not the Service's.
	OtherNamespace bool
}

// reasonBeingReleased is a ConflictError's Reason when a holder of the
// address only holds it back (HoldBack).
const reasonBeingReleased = "being released"

// Error returns, for example,
// "198.51.100.88 is already used by kubeflow/minio-service (no sharing key)".
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is already used by %s (%s)", e.Addr, strings.Join(e.Holders, ", "), e.Reason)
}

// otherNamespaceReason is a ConflictError's Reason for the namespace rule
// on an address of pool p (nil: in no pool, where no pool can allow it).
func otherNamespaceReason(p *pool) string {
	if p == nil {
		return reasonOtherNamespace + ", and the address is in no pool that allows sharing across namespaces"
	}
	return fmt.Sprintf("%s, and pool %s does not allow sharing across namespaces", reasonOtherNamespace, p.name)
}

// NotInPoolError reports a requested address that lies outside every pool.
// ironlb only hands out addresses the operator set aside, so it is refused
// rather than taken from the LAN at random.
type NotInPoolError struct {
	Addr netip.Addr
}

// Error returns, for example, "198.51.100.200 is not in any address pool".
func (e *NotInPoolError) Error() string {
	return fmt.Sprintf("%s is not in any address pool", e.Addr)
}

// BuggyIPError reports a requested IPv4 address ending in .0 or .255 in a
// pool that avoids them (AvoidBuggyIPs): the operator asked that such
// addresses never be used, because some clients cannot reach them.
type BuggyIPError struct {
	Addr netip.Addr
	Pool string
}

// Error returns, for example, "198.51.100.255 is not usable: pool default
// avoids IPv4 addresses ending in .0 or .255 (avoidBuggyIPs)".
func (e *BuggyIPError) Error() string {
	return fmt.Sprintf("%s is not usable: pool %s avoids IPv4 addresses ending in .0 or .255 (avoidBuggyIPs)", e.Addr, e.Pool)
}

// PoolNotAllowedError reports a requested address whose pool is not among
// the pools the Service is restricted to (for example by an address-pool
// annotation next to loadBalancerIP).
type PoolNotAllowedError struct {
	Addr    netip.Addr
	Pool    string
	Allowed []string
}

// Error returns, for example, "198.51.100.88 is in pool default, but this
// service may only use pool reserved".
func (e *PoolNotAllowedError) Error() string {
	return fmt.Sprintf("%s is in pool %s, but this service may only use %s", e.Addr, e.Pool, poolList(e.Allowed))
}

// PoolFullError reports that every pool that could serve the request has
// no free address of Family left. Pools lists them in the order tried.
type PoolFullError struct {
	Pools  []string
	Family Family
}

// Error returns, for example, "no free IPv4 address left in pool default".
func (e *PoolFullError) Error() string {
	return fmt.Sprintf("no free %s address left in %s", e.Family, poolList(e.Pools))
}

// NoPoolError reports that no pool may serve an automatic request of
// Family at all, as opposed to pools that are merely full. Pools is the
// list the caller asked for (nil: all pools); Reasons says, pool by pool,
// why each was passed over, so the operator can tell a typo in a pool name
// from a pool without IPv6 ranges or with autoAssign turned off.
type NoPoolError struct {
	Family  Family
	Pools   []string
	Reasons []string
}

// Error returns, for example, "no address pool can provide an IPv6
// address: pool default has no IPv6 range; pool lab has autoAssign
// disabled".
func (e *NoPoolError) Error() string {
	if len(e.Reasons) == 0 {
		return fmt.Sprintf("no address pool can provide an %s address: no pool is configured", e.Family)
	}
	return fmt.Sprintf("no address pool can provide an %s address: %s", e.Family, strings.Join(e.Reasons, "; "))
}

// poolList renders pool names as "pool a" or "pools a, b".
func poolList(names []string) string {
	if len(names) == 1 {
		return "pool " + names[0]
	}
	return "pools " + strings.Join(names, ", ")
}
