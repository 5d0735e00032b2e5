package ipam

import (
	"fmt"
	"slices"
	"strings"
)

// Port is one port a Service exposes. Two Services may share an address
// only if no Port appears in both, or traffic could not be told apart.
type Port struct {
	Protocol string // "TCP", "UDP" or "SCTP"; compared case-insensitively
	Port     int32
}

// Sharing describes what a Service needs to share an IP with others. The
// rules are MetalLB's, so that Services written for it keep working: both
// must carry the same non-empty allow-shared-ip key, expose disjoint ports,
// and, if either uses externalTrafficPolicy Local, select the same pods
// (with Local, only nodes running the selected pods may announce the
// address, and one address has one announcer).
//
// One rule is ironlb's own: a Service joins an address held by Services
// of another namespace only if the address's pool allows it
// (Pool.AllowSharingAcrossNamespaces). A sharing key is a plain string any
// namespace can write, so without the rule a Service in one namespace
// could join another team's address, take ports on it and, with
// externalTrafficPolicy Local and no ready endpoints, leave it with no node
// that may announce it.
type Sharing struct {
	Key       string // allow-shared-ip key; "" means never share
	Namespace string // the Service's namespace
	Ports     []Port
	Local     bool   // externalTrafficPolicy: Local
	Selector  string // canonical pod selector; compared only when either side is Local
}

// equal reports whether s and o impose the same constraints.
func (s Sharing) equal(o Sharing) bool {
	return s.Key == o.Key && s.Namespace == o.Namespace && s.Local == o.Local && s.Selector == o.Selector && slices.Equal(s.Ports, o.Ports)
}

// reasonOtherNamespace is compatible's reason when the namespaces differ
// and acrossNamespaces is false.
const reasonOtherNamespace = "in another namespace"

// compatible reports whether services with sharing a and b may hold the
// same address, and if not, why (the texts ConflictError documents).
// acrossNamespaces says whether a and b may be of different namespaces.
func compatible(a, b Sharing, acrossNamespaces bool) (reason string, ok bool) {
	if a.Key == "" || b.Key == "" {
		return "no sharing key", false
	}
	if a.Key != b.Key {
		return "different sharing key", false
	}
	if !acrossNamespaces && a.Namespace != b.Namespace {
		return reasonOtherNamespace, false
	}
	for _, p := range a.Ports {
		for _, q := range b.Ports {
			if p.Port == q.Port && strings.EqualFold(p.Protocol, q.Protocol) {
				return fmt.Sprintf("port %d/%s used by both", p.Port, strings.ToUpper(p.Protocol)), false
			}
		}
	}
	if (a.Local || b.Local) && a.Selector != b.Selector {
		return "externalTrafficPolicy Local with different selectors", false
	}
	return "", true
}
