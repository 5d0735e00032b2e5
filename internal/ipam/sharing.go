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
type Sharing struct {
	Key      string // allow-shared-ip key; "" means never share
	Ports    []Port
	Local    bool   // externalTrafficPolicy: Local
	Selector string // canonical pod selector; compared only when either side is Local
}

// equal reports whether s and o impose the same constraints.
func (s Sharing) equal(o Sharing) bool {
	return s.Key == o.Key && s.Local == o.Local && s.Selector == o.Selector && slices.Equal(s.Ports, o.Ports)
}

// compatible reports whether services with sharing a and b may hold the
// same address, and if not, why (the texts ConflictError documents).
func compatible(a, b Sharing) (reason string, ok bool) {
	if a.Key == "" || b.Key == "" {
		return "no sharing key", false
	}
	if a.Key != b.Key {
		return "different sharing key", false
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
