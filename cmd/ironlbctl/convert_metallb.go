package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// MetalLB's CRDs (group metallb.io), field for field as MetalLB v0.13 to
// v0.15 define them, read with our own structs so that ironlb does not
// depend on MetalLB's module. Fields convert does not carry over are found
// by comparing an object's keys with these structs' JSON names.

type mlbIPAddressPoolSpec struct {
	Addresses     []string `json:"addresses"`
	AutoAssign    *bool    `json:"autoAssign"`
	AvoidBuggyIPs bool     `json:"avoidBuggyIPs"`
	// MetalLB's serviceAllocation has the same fields and meaning as ours:
	// priority (lowest first, unset last), namespaces, namespaceSelectors,
	// serviceSelectors.
	ServiceAllocation *v1alpha1.ServiceAllocation `json:"serviceAllocation"`
}

type mlbL2AdvertisementSpec struct {
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	Interfaces             []string               `json:"interfaces"`
}

type mlbBGPAdvertisementSpec struct {
	AggregationLength      *int32                 `json:"aggregationLength"`
	AggregationLengthV6    *int32                 `json:"aggregationLengthV6"`
	LocalPref              uint32                 `json:"localPref"` // 0: not set
	Communities            []string               `json:"communities"`
	IPAddressPools         []string               `json:"ipAddressPools"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors"`
	Peers                  []string               `json:"peers"`
}

// mlbBGPPeerSpec covers v1beta1 and v1beta2. v1beta1's nodeSelectors
// ({matchLabels, matchExpressions}) has the JSON shape of a LabelSelector.
type mlbBGPPeerSpec struct {
	MyASN          uint32                  `json:"myASN"`
	PeerASN        uint32                  `json:"peerASN"`
	PeerAddress    string                  `json:"peerAddress"`
	SourceAddress  string                  `json:"sourceAddress"`
	PeerPort       uint16                  `json:"peerPort"`
	HoldTime       string                  `json:"holdTime"`
	KeepaliveTime  string                  `json:"keepaliveTime"`
	RouterID       string                  `json:"routerID"`
	NodeSelectors  []metav1.LabelSelector  `json:"nodeSelectors"`
	Password       string                  `json:"password"`
	PasswordSecret *corev1.SecretReference `json:"passwordSecret"`
	BFDProfile     string                  `json:"bfdProfile"`
	EBGPMultiHop   bool                    `json:"ebgpMultiHop"`
}

// mlbBGPPeerUnsupported are BGPPeer fields with no ironlb equivalent, and
// what that means for the session.
var mlbBGPPeerUnsupported = map[string]string{
	"dynamicASN":             "ironlb needs the peer's AS number in peerASN",
	"interface":              "ironlb has no unnumbered BGP; it needs peerAddress",
	"connectTime":            "ironlb has no setting for the time between connection attempts",
	"enableGracefulRestart":  "ironlb has no BGP graceful restart setting",
	"vrf":                    "ironlb has no VRF setting; sessions use the node's default routing table",
	"disableMP":              "ironlb has no such setting",
	"dualStackAddressFamily": "ironlb has no such setting",
}

type mlbBFDProfileSpec struct {
	ReceiveInterval  *uint32 `json:"receiveInterval"`
	TransmitInterval *uint32 `json:"transmitInterval"`
	DetectMultiplier *uint32 `json:"detectMultiplier"`
	EchoInterval     *uint32 `json:"echoInterval"`
	EchoMode         *bool   `json:"echoMode"`
	PassiveMode      *bool   `json:"passiveMode"`
	MinimumTTL       *uint32 `json:"minimumTtl"`
}

type mlbCommunitySpec struct {
	Communities []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"communities"`
}

// metallbObject is one metallb.io object as read.
type metallbObject struct {
	kind    string
	version string
	id      string // "IPAddressPool metallb-system/public"
	meta    metav1.ObjectMeta
	spec    json.RawMessage
}

// readMetalLB keeps a metallb.io object for conversion, or says why not.
func (c *converter) readMetalLB(where, id, version, kind string, j []byte) error {
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     json.RawMessage   `json:"spec"`
	}
	if err := json.Unmarshal(j, &o); err != nil {
		return fmt.Errorf("%s: %s: %w", where, id, err)
	}
	switch kind {
	case "IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "BFDProfile", "Community":
		c.metallb = append(c.metallb, metallbObject{kind: kind, version: version, id: id, meta: o.Metadata, spec: o.Spec})
	case "ServiceL2Status", "ServiceBGPStatus", "ConfigurationState":
		// Status MetalLB writes; nothing to convert.
	case "AddressPool":
		c.warnf("%s: skipped: AddressPool is the pool kind MetalLB removed in v0.14; write it as an IPAddressPool and an L2Advertisement or BGPAdvertisement, then convert those", id)
	default:
		c.warnf("%s: skipped: metallb.io %s has no ironlb equivalent", id, kind)
	}
	return nil
}

// fromMetalLBObjects converts the metallb.io objects read.
func (c *converter) fromMetalLBObjects() {
	aliases := c.communityAliases()
	seen := map[string]string{} // "kind/name" -> first source
	unique := func(kind string, o metallbObject) bool {
		key := kind + "/" + o.meta.Name
		if first, dup := seen[key]; dup {
			c.warnf("%s: skipped: ironlb's %s objects are cluster-wide, and %s already becomes %s", o.id, kind, first, key)
			return false
		}
		seen[key] = o.id
		return true
	}
	gv := v1alpha1.GroupVersion.String()
	for _, o := range c.metallb {
		switch o.kind {
		case "IPAddressPool":
			var s mlbIPAddressPoolSpec
			if !c.decodeSpec(o, &s, nil) || !unique("IPPool", o) {
				continue
			}
			pool := &v1alpha1.IPPool{
				TypeMeta: typeMetaOf(gv, "IPPool"),
				// Labels are kept: ipAddressPoolSelectors select pools by them.
				ObjectMeta: metav1.ObjectMeta{Name: o.meta.Name, Labels: o.meta.Labels},
				Spec: v1alpha1.IPPoolSpec{
					Addresses:         s.Addresses,
					AvoidBuggyIPs:     s.AvoidBuggyIPs,
					ServiceAllocation: s.ServiceAllocation,
				},
			}
			if s.AutoAssign != nil && !*s.AutoAssign {
				pool.Spec.AutoAssign = new(false)
			}
			c.add(pool, o.id)
		case "L2Advertisement":
			var s mlbL2AdvertisementSpec
			if !c.decodeSpec(o, &s, nil) || !unique("L2Announcement", o) {
				continue
			}
			c.add(&v1alpha1.L2Announcement{
				TypeMeta:   typeMetaOf(gv, "L2Announcement"),
				ObjectMeta: objectMeta("", o.meta.Name),
				Spec: v1alpha1.L2AnnouncementSpec{
					IPPools:         s.IPAddressPools,
					IPPoolSelectors: s.IPAddressPoolSelectors,
					NodeSelectors:   s.NodeSelectors,
					Interfaces:      s.Interfaces,
				},
			}, o.id)
		case "BGPAdvertisement":
			var s mlbBGPAdvertisementSpec
			if !c.decodeSpec(o, &s, nil) || !unique("BGPAnnouncement", o) {
				continue
			}
			ann := &v1alpha1.BGPAnnouncement{
				TypeMeta:   typeMetaOf(gv, "BGPAnnouncement"),
				ObjectMeta: objectMeta("", o.meta.Name),
				Spec: v1alpha1.BGPAnnouncementSpec{
					IPPools:         s.IPAddressPools,
					IPPoolSelectors: s.IPAddressPoolSelectors,
					NodeSelectors:   s.NodeSelectors,
					Peers:           s.Peers,
				},
			}
			if s.AggregationLength != nil && *s.AggregationLength != v1alpha1.DefaultAggregationLength {
				ann.Spec.AggregationLength = s.AggregationLength
			}
			if s.AggregationLengthV6 != nil && *s.AggregationLengthV6 != v1alpha1.DefaultAggregationLengthV6 {
				ann.Spec.AggregationLengthV6 = s.AggregationLengthV6
			}
			if s.LocalPref != 0 {
				ann.Spec.LocalPref = new(s.LocalPref)
			}
			// Community aliases are resolved to their values: ironlb's
			// CRDs have no alias objects.
			for _, cm := range s.Communities {
				ann.Spec.Communities = append(ann.Spec.Communities, resolveAlias(aliases, cm))
			}
			c.add(ann, o.id)
		case "BGPPeer":
			var s mlbBGPPeerSpec
			if !c.decodeSpec(o, &s, mlbBGPPeerUnsupported) {
				continue
			}
			if s.PeerAddress == "" || s.PeerASN == 0 {
				c.warnf("%s: skipped: ironlb needs spec.peerAddress and spec.peerASN (dynamicASN and unnumbered peering have no ironlb equivalent)", o.id)
				continue
			}
			if !unique("BGPPeer", o) {
				continue
			}
			c.add(c.peer(o, s), o.id)
		case "BFDProfile":
			var s mlbBFDProfileSpec
			if !c.decodeSpec(o, &s, nil) || !unique("BFDProfile", o) {
				continue
			}
			c.add(&v1alpha1.BFDProfile{
				TypeMeta:   typeMetaOf(gv, "BFDProfile"),
				ObjectMeta: objectMeta("", o.meta.Name),
				Spec: v1alpha1.BFDProfileSpec{
					ReceiveInterval:  s.ReceiveInterval,
					TransmitInterval: s.TransmitInterval,
					DetectMultiplier: s.DetectMultiplier,
					EchoInterval:     s.EchoInterval,
					EchoMode:         s.EchoMode != nil && *s.EchoMode,
					PassiveMode:      s.PassiveMode != nil && *s.PassiveMode,
					MinimumTTL:       s.MinimumTTL,
				},
			}, o.id)
		}
	}
}

// peer converts a BGPPeer; an inline password becomes a Secret.
func (c *converter) peer(o metallbObject, s mlbBGPPeerSpec) *v1alpha1.BGPPeer {
	p := &v1alpha1.BGPPeer{
		TypeMeta:   typeMetaOf(v1alpha1.GroupVersion.String(), "BGPPeer"),
		ObjectMeta: objectMeta("", o.meta.Name),
		Spec: v1alpha1.BGPPeerSpec{
			MyASN:         s.MyASN,
			PeerASN:       s.PeerASN,
			PeerAddress:   s.PeerAddress,
			SourceAddress: s.SourceAddress,
			RouterID:      s.RouterID,
			NodeSelectors: s.NodeSelectors,
			BFDProfile:    s.BFDProfile,
			EBGPMultiHop:  s.EBGPMultiHop,
		},
	}
	if s.PeerPort != 0 && s.PeerPort != v1alpha1.DefaultPeerPort {
		p.Spec.PeerPort = s.PeerPort
	}
	p.Spec.HoldTime = c.duration(o, "holdTime", s.HoldTime)
	p.Spec.KeepaliveTime = c.duration(o, "keepaliveTime", s.KeepaliveTime)
	if s.EBGPMultiHop && s.MyASN == s.PeerASN {
		p.Spec.EBGPMultiHop = false
		c.warnf("%s: spec.ebgpMultiHop: left out: it only applies to eBGP, and this session is iBGP (myASN = peerASN = %d)", o.id, s.MyASN)
	}
	switch {
	case s.PasswordSecret != nil && s.PasswordSecret.Name != "":
		// MetalLB reads the Secret from its own namespace; ironlb's
		// speaker may read Secrets only in ironlb's namespace, so the
		// reference moves there and the Secret has to be copied.
		from := cmp.Or(s.PasswordSecret.Namespace, o.meta.Namespace, "metallb-system")
		p.Spec.PasswordSecret = &corev1.SecretReference{Namespace: c.secretNamespace, Name: s.PasswordSecret.Name}
		c.warnf("%s: spec.passwordSecret: now refers to Secret %s/%s, as ironlb reads Secrets only in its own namespace: copy MetalLB's there: "+
			"kubectl -n %s create secret generic %s --type=kubernetes.io/basic-auth --from-literal=password=\"$(kubectl -n %s get secret %s -o jsonpath='{.data.password}' | base64 -d)\"",
			o.id, c.secretNamespace, s.PasswordSecret.Name, c.secretNamespace, s.PasswordSecret.Name, from, s.PasswordSecret.Name)
		if s.Password != "" {
			c.warnf("%s: spec.password: left out: passwordSecret is set too (MetalLB rejects both)", o.id)
		}
	case s.Password != "":
		p.Spec.PasswordSecret = c.passwordSecret(o.meta.Name, s.Password, o.id, o.id+": spec.password")
	}
	return p
}

// duration parses a BGP timer. Zero is MetalLB's "unset" (v1beta1 writes
// an unset timer as "0s"), so it is left out too.
func (c *converter) duration(o metallbObject, field, s string) *metav1.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.warnf("%s: spec.%s: %q is not a duration; left out (ironlb's default applies)", o.id, field, s)
		return nil
	}
	if d == 0 {
		return nil
	}
	return &metav1.Duration{Duration: d}
}

// communityAliases collects the aliases of every Community object.
func (c *converter) communityAliases() map[string]string {
	aliases := map[string]string{}
	for _, o := range c.metallb {
		if o.kind != "Community" {
			continue
		}
		var s mlbCommunitySpec
		if !c.decodeSpec(o, &s, nil) {
			continue
		}
		for _, a := range s.Communities {
			if old, ok := aliases[a.Name]; ok && old != a.Value {
				c.warnf("%s: community alias %q is %q here but %q in an earlier Community; the first wins", o.id, a.Name, a.Value, old)
				continue
			}
			aliases[a.Name] = a.Value
		}
	}
	return aliases
}

func resolveAlias(aliases map[string]string, community string) string {
	if v, ok := aliases[community]; ok {
		return v
	}
	return community
}

// decodeSpec decodes o's spec into v (a pointer to one of the mlb*Spec
// structs) and warns, naming object and field, about every field that is
// set but not carried over: those in unsupported with the reason, and
// those v does not know.
func (c *converter) decodeSpec(o metallbObject, v any, unsupported map[string]string) bool {
	if len(o.spec) == 0 || string(o.spec) == "null" {
		return true
	}
	if err := json.Unmarshal(o.spec, v); err != nil {
		c.warnf("%s: skipped: spec: %v", o.id, err)
		return false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(o.spec, &fields); err != nil {
		c.warnf("%s: skipped: spec is not an object", o.id)
		return false
	}
	known := jsonNames(v)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if slices.Contains(known, k) || zeroJSON(fields[k]) {
			continue
		}
		if why, ok := unsupported[k]; ok {
			c.warnf("%s: spec.%s (%s): not carried over: %s", o.id, k, compactJSON(fields[k]), why)
		} else {
			c.warnf("%s: spec.%s: not carried over: ironlbctl convert does not know this %s field", o.id, k, o.kind)
		}
	}
	return true
}

// jsonNames lists the JSON field names of the struct v points to.
func jsonNames(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

// zeroJSON reports whether a field holds its zero value, which MetalLB's
// own serialization writes for unset fields ("passwordSecret: {}").
func zeroJSON(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	return false
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
