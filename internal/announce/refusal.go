package announce

import (
	"fmt"
	"strings"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// Reason names the check a node fails for an address. The checks are
// made in the order of the constants, and a node is refused at the first
// it fails, so a node refused for a later reason passed every earlier
// check: ironlbctl relies on that to say how far the best node got.
type Reason uint8

// Reasons, in the order they are checked.
const (
	// Eligible: the node passed every check.
	Eligible Reason = iota
	// NotReady: the Node's Ready condition is not True, or there is no
	// such Node.
	NotReady
	// Excluded: the node is labelled v1alpha1.LabelExcludeFromLoadBalancers.
	Excluded
	// NotAlive (Layer 2): the node's speaker is not an alive member.
	NotAlive
	// NoDataPath: the node's speaker says its kube-proxy is not healthy
	// (View.DataPathDown), so the node may not forward what it receives.
	NoDataPath
	// NotSelected: no announcement covering the address's pool selects
	// the node.
	NotSelected
	// NoInterface (Layer 2): the node has none of the interfaces the
	// announcements name.
	NoInterface
	// NoEndpoint: the address belongs to externalTrafficPolicy: Local
	// Services, and the node holds no ready endpoint where one is needed.
	NoEndpoint
)

// Refusal says why a node may not announce an address; the zero Refusal
// means it may.
type Refusal struct {
	Reason Reason
	// Mode is the announcing mode, which names the kind of announcement
	// in a NotSelected refusal.
	Mode config.Protocol
	// Services are, for NoEndpoint, the Local Services ("namespace/name")
	// that lack a ready endpoint on the node.
	Services string
}

// Refused reports whether r refuses the node.
func (r Refusal) Refused() bool { return r.Reason != Eligible }

// String is the refusal as an operator reads it, after a node name:
// "node-1: not Ready".
func (r Refusal) String() string {
	switch r.Reason {
	case Eligible:
		return ""
	case NotReady:
		return "not Ready"
	case Excluded:
		return "labelled " + v1alpha1.LabelExcludeFromLoadBalancers
	case NotAlive:
		return "speaker not running or unreachable"
	case NoDataPath:
		return "kube-proxy's health endpoint fails"
	case NotSelected:
		kind := "L2Announcement"
		if r.Mode == config.BGP {
			kind = "BGPAnnouncement"
		}
		return "not selected by any " + kind + "'s nodeSelectors"
	case NoInterface:
		return "has none of the announced interfaces"
	case NoEndpoint:
		return "no ready endpoint of " + r.Services + " (externalTrafficPolicy: Local)"
	}
	return fmt.Sprintf("reason %d", r.Reason)
}

// refusals groups the nodes that may not announce an address by reason,
// for a message such as "no node may announce it (node-1, node-2: not
// Ready; node-3: labelled ...)". Reasons keep the order in which they
// were first added.
type refusals struct {
	reasons []string
	nodes   map[string][]string
}

func (r *refusals) add(why Refusal, node string) {
	reason := why.String()
	if r.nodes == nil {
		r.nodes = map[string][]string{}
	}
	if _, ok := r.nodes[reason]; !ok {
		r.reasons = append(r.reasons, reason)
	}
	r.nodes[reason] = append(r.nodes[reason], node)
}

func (r *refusals) String() string {
	if len(r.reasons) == 0 {
		return "no node may announce it: the cluster has no nodes"
	}
	parts := make([]string, 0, len(r.reasons))
	for _, reason := range r.reasons {
		nodes := r.nodes[reason]
		list := strings.Join(nodes, ", ")
		if len(nodes) > 3 {
			list = fmt.Sprintf("%s and %d more", strings.Join(nodes[:3], ", "), len(nodes)-3)
		}
		parts = append(parts, list+": "+reason)
	}
	return "no node may announce it (" + strings.Join(parts, "; ") + ")"
}
