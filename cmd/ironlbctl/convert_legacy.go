package main

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// convert leaves a field out when it holds the default that ironlb's CRDs
// and config.Build fill in (api/v1alpha1's Default constants), so the
// output says only what the operator chose.

// fromLegacy converts the legacy ConfigMap. It is parsed and validated by
// config.Build, the controller's own parser, and the resulting Config is
// written back out as CRDs: the output means exactly what ironlb made of
// the ConfigMap. A ConfigMap ironlb would reject is an error: there is
// nothing faithful to convert.
func (c *converter) fromLegacy(cm *corev1.ConfigMap) error {
	src := "ConfigMap " + qualified(cm.Namespace, cm.Name)
	cfg, problems := config.Build(config.Input{ConfigMap: cm}, nil)
	var bad []string
	for _, p := range problems {
		if p.Outcome == config.Warning {
			c.warnf("%s", p.Error())
			continue
		}
		bad = append(bad, p.Error())
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s is not valid, so there is nothing faithful to convert; fix it first:\n  %s", src, strings.Join(bad, "\n  "))
	}

	// Pool names become object names; MetalLB accepted any string.
	poolName := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		poolName[name] = c.objectName("IPPool", name, fmt.Sprintf("%s: address-pools %q", src, name))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		p := cfg.Pools[name]
		pool := &v1alpha1.IPPool{
			TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "IPPool"),
			ObjectMeta: objectMeta("", poolName[name]),
			Spec:       v1alpha1.IPPoolSpec{AvoidBuggyIPs: p.AvoidBuggyIPs},
		}
		for _, r := range p.Ranges {
			pool.Spec.Addresses = append(pool.Spec.Addresses, rangeString(r))
		}
		if !p.AutoAssign {
			pool.Spec.AutoAssign = new(false)
		}
		c.add(pool, fmt.Sprintf("%s: address-pools %q (protocol %s)", src, name, p.Protocol))
	}

	for _, a := range cfg.L2 {
		pools := mapNames(a.IPPools, poolName)
		l2 := &v1alpha1.L2Announcement{
			TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "L2Announcement"),
			ObjectMeta: objectMeta("", strings.Join(pools, "-")),
			Spec: v1alpha1.L2AnnouncementSpec{
				IPPools:       pools,
				NodeSelectors: c.labelSelectors(a.NodeSelectors, src),
				Interfaces:    a.Interfaces,
			},
		}
		c.add(l2, fmt.Sprintf("%s: address-pools %s with protocol layer2", src, quoteJoin(a.IPPools)))
	}

	bfdName := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(cfg.BFDProfiles)) {
		p := cfg.BFDProfiles[name]
		bfdName[name] = c.objectName("BFDProfile", name, fmt.Sprintf("%s: bfd-profiles %q", src, name))
		c.add(&v1alpha1.BFDProfile{
			TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "BFDProfile"),
			ObjectMeta: objectMeta("", bfdName[name]),
			Spec: v1alpha1.BFDProfileSpec{
				ReceiveInterval:  msUnlessDefault(p.ReceiveInterval, v1alpha1.DefaultBFDInterval),
				TransmitInterval: msUnlessDefault(p.TransmitInterval, v1alpha1.DefaultBFDInterval),
				EchoInterval:     msUnlessDefault(p.EchoInterval, v1alpha1.DefaultBFDEchoInterval),
				DetectMultiplier: unlessDefault(p.DetectMultiplier, v1alpha1.DefaultBFDDetectMultiplier),
				MinimumTTL:       unlessDefault(p.MinimumTTL, v1alpha1.DefaultBFDMinimumTTL),
				EchoMode:         p.EchoMode,
				PassiveMode:      p.PassiveMode,
			},
		}, fmt.Sprintf("%s: bfd-profiles %q", src, name))
	}

	usedPeerNames := map[string]bool{}
	for _, p := range cfg.BGPPeers {
		name := peerObjectName(p.PeerAddress, usedPeerNames)
		peer := &v1alpha1.BGPPeer{
			TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "BGPPeer"),
			ObjectMeta: objectMeta("", name),
			Spec: v1alpha1.BGPPeerSpec{
				MyASN:         p.MyASN,
				PeerASN:       p.PeerASN,
				PeerAddress:   p.PeerAddress.String(),
				SourceAddress: addrString(p.SourceAddress),
				RouterID:      addrString(p.RouterID),
				EBGPMultiHop:  p.EBGPMultiHop,
				NodeSelectors: c.labelSelectors(p.NodeSelectors, src+": "+p.Name),
				BFDProfile:    bfdName[p.BFDProfile],
			},
		}
		if p.PeerPort != v1alpha1.DefaultPeerPort {
			peer.Spec.PeerPort = p.PeerPort
		}
		if p.HoldTime != v1alpha1.DefaultHoldTime || p.KeepaliveTime != v1alpha1.DefaultHoldTime/3 {
			peer.Spec.HoldTime = &metav1.Duration{Duration: p.HoldTime}
			peer.Spec.KeepaliveTime = &metav1.Duration{Duration: p.KeepaliveTime}
		}
		source := fmt.Sprintf("%s: %s (peer-address %s)", src, p.Name, p.PeerAddress)
		if p.Password != "" {
			peer.Spec.PasswordSecret = c.passwordSecret(name, p.Password, source, src+": "+p.Name+".password")
		}
		c.add(peer, source)
	}

	// A bgp pool with several bgp-advertisements gives several
	// announcements; name them after the pool and the entry's index.
	perPool := map[string]int{}
	for _, a := range cfg.BGPAnnouncements {
		perPool[strings.Join(a.IPPools, "-")]++
	}
	index := map[string]int{}
	for _, a := range cfg.BGPAnnouncements {
		key := strings.Join(a.IPPools, "-")
		pools := mapNames(a.IPPools, poolName)
		name := strings.Join(pools, "-")
		source := fmt.Sprintf("%s: address-pools %s with protocol bgp", src, quoteJoin(a.IPPools))
		if perPool[key] > 1 {
			name = fmt.Sprintf("%s-%d", name, index[key])
			source += fmt.Sprintf(", bgp-advertisements[%d]", index[key])
		}
		index[key]++
		ann := &v1alpha1.BGPAnnouncement{
			TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "BGPAnnouncement"),
			ObjectMeta: objectMeta("", name),
			Spec: v1alpha1.BGPAnnouncementSpec{
				IPPools:       pools,
				LocalPref:     a.LocalPref,
				Peers:         a.Peers,
				NodeSelectors: c.labelSelectors(a.NodeSelectors, src),
			},
		}
		if a.AggregationLength != v1alpha1.DefaultAggregationLength {
			ann.Spec.AggregationLength = new(int32(a.AggregationLength))
		}
		if a.AggregationLengthV6 != v1alpha1.DefaultAggregationLengthV6 {
			ann.Spec.AggregationLengthV6 = new(int32(a.AggregationLengthV6))
		}
		// Aliases from bgp-communities are resolved: ironlb's CRDs have
		// no alias table of their own.
		for _, cm := range a.Communities {
			ann.Spec.Communities = append(ann.Spec.Communities, cm.String())
		}
		c.add(ann, source)
	}
	return nil
}

// passwordSecret writes an inline BGP password into a Secret in ironlb's
// namespace, under the "password" key (MetalLB's convention, type
// basic-auth, so one Secret serves both), and returns the reference.
func (c *converter) passwordSecret(peer, password, source, field string) *corev1.SecretReference {
	name := peer + "-password"
	c.add(&corev1.Secret{
		TypeMeta:   typeMetaOf("v1", "Secret"),
		ObjectMeta: objectMeta(c.secretNamespace, name),
		Type:       corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"password": password},
	}, source+": its password")
	c.warnf("%s: the inline password is written, in clear text, to Secret %s/%s in the output: keep the output file as safe as the password", field, c.secretNamespace, name)
	return &corev1.SecretReference{Namespace: c.secretNamespace, Name: name}
}

// objectName returns name if it is a valid object name, or a cleaned-up
// version of it with a warning (MetalLB's legacy format took any string).
func (c *converter) objectName(kind, name, where string) string {
	if len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	clean := sanitizeName(name)
	c.warnf("%s: %q is not a valid object name; the %s is named %q (update Services that name it in an address-pool annotation)", where, name, kind, clean)
	return clean
}

// sanitizeName turns s into a DNS-1123 label: lower case, runs of other
// characters replaced by '-'.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" {
		out = "unnamed"
	}
	return out
}

// peerObjectName names a legacy peer, which has no name, after its address:
// "peer-10-0-0-1", "peer-fd00--1"; a second session to the same address
// (other node selectors) gets "-2", and so on.
func peerObjectName(addr netip.Addr, used map[string]bool) string {
	base := "peer-" + strings.NewReplacer(".", "-", ":", "-").Replace(addr.String())
	name := base
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	used[name] = true
	return name
}

// rangeString writes a pool entry the shortest way: a CIDR when the range
// is exactly one ("198.51.100.0/24"), else an address or "a-b".
func rangeString(r ipam.Range) string {
	for bits := 0; bits < r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked().Addr() != r.From {
			continue
		}
		if pr, err := ipam.ParseRange(p.String()); err == nil && pr == r {
			return p.String()
		}
	}
	return r.String()
}

// labelSelectors turns parsed selectors back into the API form. Every
// selector config.Build accepts should round-trip, as it was parsed from
// this form; one that does not is named in a warning and left out.
func (c *converter) labelSelectors(sels []labels.Selector, where string) []metav1.LabelSelector {
	var out []metav1.LabelSelector
	for _, s := range sels {
		ls, err := metav1.ParseToLabelSelector(s.String())
		if err != nil {
			c.warnf("%s: node selector %q could not be carried over (%v); add it by hand", where, s, err)
			continue
		}
		out = append(out, *ls)
	}
	return out
}

func mapNames(names []string, m map[string]string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = cmp.Or(m[n], n)
	}
	return out
}

func quoteJoin(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// msUnlessDefault is d in milliseconds, nil when that is defMs.
func msUnlessDefault(d time.Duration, defMs uint32) *uint32 {
	ms := uint32(d / time.Millisecond)
	if ms == defMs {
		return nil
	}
	return new(ms)
}

func unlessDefault(v, def uint32) *uint32 {
	if v == def {
		return nil
	}
	return new(v)
}

func typeMetaOf(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func objectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
