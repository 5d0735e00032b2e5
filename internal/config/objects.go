package config

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/ipam"
)

// This file validates one object (or one entry of the legacy ConfigMap) on
// its own. Each parse function checks what the CRDs' OpenAPI schema does
// and more (the CRDs carry no CEL rules, so that they install on every
// supported Kubernetes version), so the legacy ConfigMap and the CRDs get
// the same checks everywhere, and reports into r with paths built from at. Cross-object rules
// are in build.go.

// Unset fields take the defaults in api/v1alpha1 (defaults.go), the
// same for CRDs and the legacy ConfigMap.

// maxMD5PasswordLen is TCP_MD5SIG_MAXKEYLEN on Linux.
const maxMD5PasswordLen = 80

// poolItem is a parsed pool and what messages about it need.
type poolItem struct {
	pool   *Pool
	at     fieldPath // "spec", "address-pools[0]"
	nameAt fieldPath // "metadata.name", "address-pools[0].name"
	// written[i] is the entry pool.Ranges[i] was parsed from, as the
	// operator wrote it, and index[i] its position in the addresses list.
	written []string
	index   []int
}

func (pi *poolItem) addressAt(i int) fieldPath { return pi.at.child("addresses").index(pi.index[i]) }

func parsePool(name string, lbls map[string]string, spec *v1alpha1.IPPoolSpec, at, nameAt fieldPath, r *report) *poolItem {
	pi := &poolItem{
		pool: &Pool{
			Name:          name,
			Source:        r.ref,
			AutoAssign:    v1alpha1.DefaultAutoAssign,
			AvoidBuggyIPs: spec.AvoidBuggyIPs,
			Labels:        maps.Clone(lbls),

			AllowSharingAcrossNamespaces: spec.AllowSharingAcrossNamespaces,
		},
		at:     at,
		nameAt: nameAt,
	}
	if spec.AutoAssign != nil {
		pi.pool.AutoAssign = *spec.AutoAssign
	}
	if len(spec.Addresses) == 0 {
		r.invalid(at.child("addresses"), "no addresses: list at least one CIDR (192.168.1.0/24), range (192.168.1.87-192.168.1.97) or address")
	}
	for i, s := range spec.Addresses {
		rg, err := ipam.ParseRange(s)
		if err != nil {
			r.invalid(at.child("addresses").index(i), "%v", err)
			continue
		}
		if j := slices.IndexFunc(pi.pool.Ranges, rg.Overlaps); j >= 0 {
			if rg == pi.pool.Ranges[j] && strings.TrimSpace(s) == strings.TrimSpace(pi.written[j]) {
				// A repeat is simpler to see, and to fix, than an overlap.
				r.invalid(at.child("addresses").index(i), "%q is already listed as %s", strings.TrimSpace(s), pi.addressAt(j))
			} else {
				r.invalid(at.child("addresses").index(i), "%s overlaps %s (%s) of the same pool", s, pi.written[j], pi.addressAt(j))
			}
			continue
		}
		pi.pool.Ranges = append(pi.pool.Ranges, rg)
		pi.written = append(pi.written, s)
		pi.index = append(pi.index, i)
	}
	if sa := spec.ServiceAllocation; sa != nil {
		sat := at.child("serviceAllocation")
		a := &Allocation{Priority: int(sa.Priority), Namespaces: slices.Clone(sa.Namespaces)}
		if sa.Priority < 0 {
			r.invalid(sat.child("priority"), "%d: must be 0 (no priority) or more; lower positive numbers are tried first", sa.Priority)
		}
		for i, ns := range sa.Namespaces {
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				r.invalid(sat.child("namespaces").index(i), "%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
			}
		}
		a.NamespaceSelectors = parseSelectors(sa.NamespaceSelectors, sat.child("namespaceSelectors"), r)
		a.ServiceSelectors = parseSelectors(sa.ServiceSelectors, sat.child("serviceSelectors"), r)
		pi.pool.Allocation = a
	}
	return pi
}

func parseSelectors(sels []metav1.LabelSelector, at fieldPath, r *report) []labels.Selector {
	var out []labels.Selector
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err != nil {
			r.invalid(at.index(i), "invalid label selector: %v", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// selectorKey is a canonical text for a list of selectors (ORed), used to
// tell whether two peers select the same nodes. "" means every node.
func selectorKey(sels []labels.Selector) string {
	var keys []string
	for _, s := range sels {
		if s.Empty() {
			return ""
		}
		keys = append(keys, s.String())
	}
	slices.Sort(keys)
	return strings.Join(slices.Compact(keys), " | ")
}

// parseAddr parses an address the way the CRDs' isIP() does: no zone, no
// IPv4-mapped IPv6.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q: zones (%%%s) are not allowed", s, a.Zone())
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%q: IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address", s)
	}
	return a, nil
}

// peerItem is a parsed BGP peer and what messages about it need.
type peerItem struct {
	peer *BGPPeer
	at   fieldPath
}

// peerKey identifies the BGP session a peer makes on a node; two peers with
// the same key and node selectors would open the same session twice.
type peerKey struct {
	addr, src netip.Addr
	port      uint16
	nodes     string
}

func (pi *peerItem) key() peerKey {
	p := pi.peer
	return peerKey{p.PeerAddress, p.SourceAddress, p.PeerPort, selectorKey(p.NodeSelectors)}
}

func parsePeer(name string, spec *v1alpha1.BGPPeerSpec, at fieldPath, r *report) *peerItem {
	p := &BGPPeer{
		Name:         name,
		Source:       r.ref,
		MyASN:        spec.MyASN,
		PeerASN:      spec.PeerASN,
		PeerPort:     spec.PeerPort,
		EBGPMultiHop: spec.EBGPMultiHop,
		BFDProfile:   spec.BFDProfile,
	}
	if p.MyASN == 0 {
		r.invalid(at.child("myASN"), "missing: the AS number ironlb speaks as is required (1 to 4294967295)")
	}
	if p.PeerASN == 0 {
		r.invalid(at.child("peerASN"), "missing: the router's AS number is required (1 to 4294967295)")
	}
	if spec.EBGPMultiHop && p.MyASN != 0 && p.MyASN == p.PeerASN {
		r.invalid(at.child("ebgpMultiHop"), "only applies to eBGP sessions, and myASN equals peerASN (iBGP)")
	}
	if spec.PeerAddress == "" {
		r.invalid(at.child("peerAddress"), "missing: the router's IP address is required")
	} else if a, err := parseAddr(spec.PeerAddress); err != nil {
		r.invalid(at.child("peerAddress"), "%v", err)
	} else {
		p.PeerAddress = a
	}
	if p.PeerPort == 0 {
		p.PeerPort = v1alpha1.DefaultPeerPort
	}
	if spec.SourceAddress != "" {
		a, err := parseAddr(spec.SourceAddress)
		switch {
		case err != nil:
			r.invalid(at.child("sourceAddress"), "%v", err)
		case p.PeerAddress.IsValid() && a.Is4() != p.PeerAddress.Is4():
			r.invalid(at.child("sourceAddress"), "%s and the peer address %s are of different IP families", a, p.PeerAddress)
		default:
			p.SourceAddress = a
		}
	}
	if spec.RouterID != "" {
		a, err := parseAddr(spec.RouterID)
		switch {
		case err != nil:
			r.invalid(at.child("routerID"), "%v", err)
		case !a.Is4() || a.IsUnspecified():
			r.invalid(at.child("routerID"), "%s: must be a non-zero IPv4 address (a BGP identifier is 32 bits, RFC 6286)", a)
		default:
			p.RouterID = a
		}
	}
	p.HoldTime = v1alpha1.DefaultHoldTime
	if spec.HoldTime != nil {
		p.HoldTime = spec.HoldTime.Duration.Truncate(time.Second)
		if p.HoldTime < 0 || p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second) {
			r.invalid(at.child("holdTime"), "%s: must be 0 (no keepalives) or from 3s to 65535s (RFC 4271 section 4.2)", spec.HoldTime.Duration)
		}
	}
	p.KeepaliveTime = (p.HoldTime / 3).Truncate(time.Second)
	if spec.KeepaliveTime != nil {
		p.KeepaliveTime = spec.KeepaliveTime.Duration.Truncate(time.Second)
		switch {
		case p.HoldTime == 0 && p.KeepaliveTime != 0:
			r.invalid(at.child("keepaliveTime"), "%s: must be 0 when holdTime is 0 (RFC 4271 section 4.4)", spec.KeepaliveTime.Duration)
		case p.HoldTime != 0 && (p.KeepaliveTime < time.Second || p.KeepaliveTime >= p.HoldTime):
			r.invalid(at.child("keepaliveTime"), "%s: must be at least 1s and shorter than holdTime (%s)", spec.KeepaliveTime.Duration, p.HoldTime)
		}
	}
	if s := spec.PasswordSecret; s != nil {
		if s.Name == "" || s.Namespace == "" {
			r.invalid(at.child("passwordSecret"), "needs both name and namespace of the Secret holding the password")
		} else {
			p.PasswordSecret = &types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		}
	}
	p.NodeSelectors = parseSelectors(spec.NodeSelectors, at.child("nodeSelectors"), r)
	return &peerItem{peer: p, at: at}
}

// bfdItem is a parsed BFD profile and what messages about it need.
type bfdItem struct {
	profile *BFDProfile
	at      fieldPath
	nameAt  fieldPath // "metadata.name", "bfd-profiles[0].name"
}

func parseBFD(name string, spec *v1alpha1.BFDProfileSpec, at, nameAt fieldPath, r *report) *bfdItem {
	get := func(field string, v *uint32, def, lo, hi uint32) uint32 {
		if v == nil {
			return def
		}
		if *v < lo || *v > hi {
			r.invalid(at.child(field), "%d: must be from %d to %d", *v, lo, hi)
		}
		return *v
	}
	ms := func(n uint32) time.Duration { return time.Duration(n) * time.Millisecond }
	return &bfdItem{
		profile: &BFDProfile{
			Name:             name,
			Source:           r.ref,
			ReceiveInterval:  ms(get("receiveInterval", spec.ReceiveInterval, v1alpha1.DefaultBFDInterval, 10, 60000)),
			TransmitInterval: ms(get("transmitInterval", spec.TransmitInterval, v1alpha1.DefaultBFDInterval, 10, 60000)),
			EchoInterval:     ms(get("echoInterval", spec.EchoInterval, v1alpha1.DefaultBFDEchoInterval, 10, 60000)),
			DetectMultiplier: get("detectMultiplier", spec.DetectMultiplier, v1alpha1.DefaultBFDDetectMultiplier, 2, 255),
			MinimumTTL:       get("minimumTTL", spec.MinimumTTL, v1alpha1.DefaultBFDMinimumTTL, 1, 254),
			EchoMode:         spec.EchoMode,
			PassiveMode:      spec.PassiveMode,
		},
		at:     at,
		nameAt: nameAt,
	}
}

// l2Item is a parsed L2Announcement and what messages about it need.
type l2Item struct {
	ann *L2Announcement
	at  fieldPath
}

// interfaceName matches what Linux accepts as a network interface name.
var interfaceName = regexp.MustCompile(`^[^/:\s]{1,15}$`)

func parseL2(spec *v1alpha1.L2AnnouncementSpec, at fieldPath, r *report) *l2Item {
	a := &L2Announcement{
		Source:          r.ref,
		IPPools:         parseNames(spec.IPPools, at.child("ipPools"), r),
		IPPoolSelectors: parseSelectors(spec.IPPoolSelectors, at.child("ipPoolSelectors"), r),
		NodeSelectors:   parseSelectors(spec.NodeSelectors, at.child("nodeSelectors"), r),
		NodePreference:  parseSelectors(spec.NodePreference, at.child("nodePreference"), r),
	}
	for i, name := range spec.Interfaces {
		if !interfaceName.MatchString(name) || name == "." || name == ".." {
			r.invalid(at.child("interfaces").index(i), "%q is not a network interface name (1 to 15 characters, no '/', ':' or spaces)", name)
			continue
		}
		if !slices.Contains(a.Interfaces, name) {
			a.Interfaces = append(a.Interfaces, name)
		}
	}
	return &l2Item{ann: a, at: at}
}

// parseNames checks a list of object names and drops repeats.
func parseNames(names []string, at fieldPath, r *report) []string {
	var out []string
	for i, n := range names {
		switch {
		case n == "":
			r.invalid(at.index(i), "empty name")
		case !slices.Contains(out, n):
			out = append(out, n)
		}
	}
	return out
}

// bgpItem is a parsed BGPAnnouncement and what messages about it need.
type bgpItem struct {
	ann *BGPAnnouncement
	at  fieldPath
}

func parseBGPAnnouncement(spec *v1alpha1.BGPAnnouncementSpec, aliases map[string]Community, at fieldPath, r *report) *bgpItem {
	a := &BGPAnnouncement{
		Source:              r.ref,
		IPPools:             parseNames(spec.IPPools, at.child("ipPools"), r),
		IPPoolSelectors:     parseSelectors(spec.IPPoolSelectors, at.child("ipPoolSelectors"), r),
		AggregationLength:   v1alpha1.DefaultAggregationLength,
		AggregationLengthV6: v1alpha1.DefaultAggregationLengthV6,
		Peers:               parseNames(spec.Peers, at.child("peers"), r),
		NodeSelectors:       parseSelectors(spec.NodeSelectors, at.child("nodeSelectors"), r),
	}
	if l := spec.AggregationLength; l != nil {
		a.AggregationLength = int(*l)
		if *l < 0 || *l > 32 {
			r.invalid(at.child("aggregationLength"), "%d: must be from 0 to 32", *l)
		}
	}
	if l := spec.AggregationLengthV6; l != nil {
		a.AggregationLengthV6 = int(*l)
		if *l < 0 || *l > 128 {
			r.invalid(at.child("aggregationLengthV6"), "%d: must be from 0 to 128", *l)
		}
	}
	if spec.LocalPref != nil {
		a.LocalPref = new(*spec.LocalPref)
	}
	for i, s := range spec.Communities {
		c, err := resolveCommunity(s, aliases)
		if err != nil {
			r.invalid(at.child("communities").index(i), "%v", err)
			continue
		}
		if !slices.Contains(a.Communities, c) {
			a.Communities = append(a.Communities, c)
		}
	}
	return &bgpItem{ann: a, at: at}
}

// aggregationConflict checks that announcing pool pi with a's aggregation
// lengths stays within what the pool's entries allow, MetalLB's rule: the
// aggregation length may not be shorter than the widest CIDR block an entry
// is made of (an entry 10.0.0.0/28 allows 28 to 32). It returns the field
// and a message, or ok.
func aggregationConflict(a *BGPAnnouncement, pi *poolItem) (field string, msg string, ok bool) {
	for i, rg := range pi.pool.Ranges {
		length, name := a.AggregationLength, "aggregationLength"
		if rg.From.Is6() {
			length, name = a.AggregationLengthV6, "aggregationLengthV6"
		}
		if w := widestBlock(rg); length < w {
			return name, fmt.Sprintf("%d would announce addresses outside pool %q: its entry %s (%s) is made of blocks no wider than /%d; use %d or more", length, pi.pool.Name, pi.written[i], pi.addressAt(i), w, w), false
		}
	}
	return "", "", true
}

// widestBlock returns the shortest prefix length among the CIDR blocks that
// exactly cover r.
func widestBlock(r ipam.Range) int {
	best := r.From.BitLen()
	for a := r.From; ; {
		bits := a.BitLen()
		for b := 0; b < a.BitLen(); b++ {
			p := netip.PrefixFrom(a, b)
			if p.Masked().Addr() == a && !r.To.Less(lastAddr(p)) {
				bits = b
				break
			}
		}
		best = min(best, bits)
		end := lastAddr(netip.PrefixFrom(a, bits))
		if end == r.To {
			return best
		}
		a = end.Next()
	}
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
