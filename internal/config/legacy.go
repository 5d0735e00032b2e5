package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// LegacyConfigKey is the ConfigMap data key that holds the legacy
// MetalLB-style configuration.
const LegacyConfigKey = "config"

// legacyFile is the legacy MetalLB configuration format (MetalLB up to
// v0.12), field for field as operators write it. Unknown keys are errors.
type legacyFile struct {
	Peers          []legacyPeer       `json:"peers"`
	BGPCommunities map[string]string  `json:"bgp-communities"`
	AddressPools   []legacyPool       `json:"address-pools"`
	BFDProfiles    []legacyBFDProfile `json:"bfd-profiles"`
}

type legacyPeer struct {
	MyASN         uint32               `json:"my-asn"`
	PeerASN       uint32               `json:"peer-asn"`
	PeerAddress   string               `json:"peer-address"`
	PeerPort      uint16               `json:"peer-port"`
	SourceAddress string               `json:"source-address"`
	RouterID      string               `json:"router-id"`
	HoldTime      string               `json:"hold-time"`
	KeepaliveTime string               `json:"keepalive-time"`
	Password      string               `json:"password"`
	EBGPMultiHop  bool                 `json:"ebgp-multihop"`
	NodeSelectors []legacyNodeSelector `json:"node-selectors"`
	BFDProfile    string               `json:"bfd-profile"`
}

type legacyNodeSelector struct {
	MatchLabels      map[string]string           `json:"match-labels"`
	MatchExpressions []legacySelectorRequirement `json:"match-expressions"`
}

type legacySelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

type legacyPool struct {
	Name              string                   `json:"name"`
	Protocol          string                   `json:"protocol"`
	Addresses         []string                 `json:"addresses"`
	AutoAssign        *bool                    `json:"auto-assign"`
	AvoidBuggyIPs     bool                     `json:"avoid-buggy-ips"`
	BGPAdvertisements []legacyBGPAdvertisement `json:"bgp-advertisements"`
}

type legacyBGPAdvertisement struct {
	AggregationLength   *int32   `json:"aggregation-length"`
	AggregationLengthV6 *int32   `json:"aggregation-length-v6"`
	LocalPref           *uint32  `json:"localpref"`
	Communities         []string `json:"communities"`
}

type legacyBFDProfile struct {
	Name             string  `json:"name"`
	ReceiveInterval  *uint32 `json:"receive-interval"`
	TransmitInterval *uint32 `json:"transmit-interval"`
	DetectMultiplier *uint32 `json:"detect-multiplier"`
	EchoInterval     *uint32 `json:"echo-interval"`
	EchoMode         bool    `json:"echo-mode"`
	PassiveMode      bool    `json:"passive-mode"`
	MinimumTTL       *uint32 `json:"minimum-ttl"`
}

// parseLegacy reads the legacy ConfigMap into a fragment: its pools, one
// L2Announcement per layer2 pool, the BGPAnnouncements of each bgp pool, its
// peers, BFD profiles and community aliases. It is the same as writing the
// equivalent CRDs, and it is validated by the same code. It returns nil if
// anything is wrong: the ConfigMap is valid or not as a whole.
func parseLegacy(cm *corev1.ConfigMap, r *report) *fragment {
	data, ok := cm.Data[LegacyConfigKey]
	if !ok {
		keys := slices.Sorted(maps.Keys(cm.Data))
		have := "it has no data"
		if len(keys) > 0 {
			have = "it has " + quoteAll(keys)
		}
		r.invalid(crdPath("data"), "no %q key (%s): the legacy configuration (address-pools, peers, bgp-communities) goes in data.%s", LegacyConfigKey, have, LegacyConfigKey)
		return nil
	}
	var file legacyFile
	if !decodeStrict(data, &file, r) {
		return nil
	}
	f := &fragment{aliases: map[string]Community{}}
	root := legacyPath("")

	for _, name := range slices.Sorted(maps.Keys(file.BGPCommunities)) {
		at := root.child("bgp-communities").key(name)
		if name == "" || strings.Contains(name, ":") {
			r.invalid(at, "%q cannot be an alias name: it must be non-empty and contain no ':'", name)
			continue
		}
		c, err := parseCommunityValue(file.BGPCommunities[name])
		if err != nil {
			r.invalid(at, "%v", err)
			continue
		}
		f.aliases[name] = c
	}

	bfdNames := map[string]int{}
	for i, lp := range file.BFDProfiles {
		at := root.child("bfd-profiles").index(i)
		uniqueName(bfdNames, lp.Name, i, at, r, "every BFD profile needs a name", "bfd-profiles", "")
		spec := v1alpha1.BFDProfileSpec{
			ReceiveInterval:  lp.ReceiveInterval,
			TransmitInterval: lp.TransmitInterval,
			DetectMultiplier: lp.DetectMultiplier,
			EchoInterval:     lp.EchoInterval,
			EchoMode:         lp.EchoMode,
			PassiveMode:      lp.PassiveMode,
			MinimumTTL:       lp.MinimumTTL,
		}
		f.bfd = append(f.bfd, parseBFD(lp.Name, &spec, at, at.child("name"), r))
	}

	for i, lp := range file.Peers {
		at := root.child("peers").index(i)
		spec := v1alpha1.BGPPeerSpec{
			MyASN:         lp.MyASN,
			PeerASN:       lp.PeerASN,
			PeerAddress:   lp.PeerAddress,
			PeerPort:      lp.PeerPort,
			SourceAddress: lp.SourceAddress,
			RouterID:      lp.RouterID,
			HoldTime:      parseLegacyDuration(lp.HoldTime, at.child("holdTime"), r),
			KeepaliveTime: parseLegacyDuration(lp.KeepaliveTime, at.child("keepaliveTime"), r),
			EBGPMultiHop:  lp.EBGPMultiHop,
			BFDProfile:    lp.BFDProfile,
		}
		for _, ns := range lp.NodeSelectors {
			sel := metav1.LabelSelector{MatchLabels: ns.MatchLabels}
			for _, e := range ns.MatchExpressions {
				sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
					Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
				})
			}
			spec.NodeSelectors = append(spec.NodeSelectors, sel)
		}
		pi := parsePeer(fmt.Sprintf("peers[%d]", i), &spec, at, r)
		pi.peer.Password = lp.Password
		if len(lp.Password) > maxMD5PasswordLen {
			r.invalid(at.child("password"), "is %d bytes long; TCP MD5 passwords can be at most %d", len(lp.Password), maxMD5PasswordLen)
		}
		for _, o := range f.peers {
			if o.key() == pi.key() {
				r.invalid(at, "is the same session as %s (same peer address, port, source address and node selectors)", o.at)
				break
			}
		}
		f.peers = append(f.peers, pi)
	}

	poolNames := map[string]int{}
	for i, lp := range file.AddressPools {
		at := root.child("address-pools").index(i)
		uniqueName(poolNames, lp.Name, i, at, r, "every pool needs a name", "address-pools", "; pool names must be unique")
		spec := v1alpha1.IPPoolSpec{Addresses: lp.Addresses, AutoAssign: lp.AutoAssign, AvoidBuggyIPs: lp.AvoidBuggyIPs}
		pi := parsePool(lp.Name, nil, &spec, at, at.child("name"), r)
		pi.pool.Protocol = Protocol(lp.Protocol)
		for k, rg := range pi.pool.Ranges {
			for _, o := range f.pools {
				if j := slices.IndexFunc(o.pool.Ranges, rg.Overlaps); j >= 0 {
					r.invalid(pi.addressAt(k), "%s overlaps %s (%s) of pool %q; an address can belong to one pool only", pi.written[k], o.written[j], o.addressAt(j), o.pool.Name)
				}
			}
		}
		f.pools = append(f.pools, pi)

		switch pi.pool.Protocol {
		case Layer2:
			if len(lp.BGPAdvertisements) > 0 {
				r.invalid(at.child("bgp-advertisements"), "only bgp pools have bgp-advertisements, and this pool's protocol is layer2")
			}
			f.l2 = append(f.l2, &l2Item{ann: &L2Announcement{Source: r.ref, IPPools: []string{lp.Name}}, at: at})
		case BGP:
			ads := lp.BGPAdvertisements
			if len(ads) == 0 {
				// MetalLB announces a bgp pool without advertisements
				// with the defaults.
				ads = []legacyBGPAdvertisement{{}}
			}
			for j, ad := range ads {
				adAt := at.child("bgp-advertisements").index(j)
				// MetalLB refuses both repeats: an advertisement written
				// twice, a community listed twice in one advertisement.
				if k := slices.IndexFunc(ads[:j], ad.equal); k >= 0 {
					r.invalid(adAt, "is the same as bgp-advertisements[%d]; list each advertisement once", k)
				}
				for m, c := range ad.Communities {
					if k := slices.Index(ad.Communities[:m], c); k >= 0 {
						r.invalid(adAt.child("communities").index(m), "%q is already listed as communities[%d]", c, k)
					}
				}
				spec := v1alpha1.BGPAnnouncementSpec{
					IPPools:             []string{lp.Name},
					AggregationLength:   ad.AggregationLength,
					AggregationLengthV6: ad.AggregationLengthV6,
					LocalPref:           ad.LocalPref,
					Communities:         ad.Communities,
				}
				bi := parseBGPAnnouncement(&spec, f.aliases, adAt, r)
				if field, msg, ok := aggregationConflict(bi.ann, pi); !ok {
					r.invalid(adAt.child(field), "%s", msg)
				}
				f.bgp = append(f.bgp, bi)
			}
		case "":
			r.invalid(at.child("protocol"), "missing: must be layer2 or bgp")
		default:
			r.invalid(at.child("protocol"), "%q is not a protocol: must be layer2 or bgp", lp.Protocol)
		}
	}
	if !r.ok() {
		return nil
	}
	return f
}

// equal reports whether a and b are written the same, MetalLB's test for a
// repeated advertisement.
func (a legacyBGPAdvertisement) equal(b legacyBGPAdvertisement) bool {
	return ptrEqual(a.AggregationLength, b.AggregationLength) &&
		ptrEqual(a.AggregationLengthV6, b.AggregationLengthV6) &&
		ptrEqual(a.LocalPref, b.LocalPref) &&
		slices.Equal(a.Communities, b.Communities)
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// parseLegacyDuration parses a legacy duration ("90s"); empty means unset.
func parseLegacyDuration(s string, at fieldPath, r *report) *metav1.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		r.invalid(at, "%q is not a duration: write a number with a unit, such as \"90s\"", s)
		return nil
	}
	return &metav1.Duration{Duration: d}
}

// decodeStrict decodes YAML into v after checking its shape, so that an
// unknown key or a wrong type is reported with its full path
// ("address-pools[0]: unknown key ...") rather than encoding/json's.
func decodeStrict(data string, v any, r *report) bool {
	j, err := yaml.YAMLToJSONStrict([]byte(data))
	if err != nil {
		r.invalid(crdPath("data."+LegacyConfigKey), "not valid YAML: %s", cleanYAMLError(err))
		return false
	}
	if !checkShape(j, v, r) {
		return false
	}
	if err := yaml.UnmarshalStrict([]byte(data), v); err != nil {
		// checkShape should have caught everything; keep the decoder's word.
		r.invalid(crdPath("data."+LegacyConfigKey), "%s", cleanYAMLError(err))
		return false
	}
	return true
}

func cleanYAMLError(err error) string {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "yaml: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	s = strings.ReplaceAll(s, "unmarshal errors:\n", "")
	return strings.Join(strings.Fields(s), " ")
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// uniqueName reports a missing name or one already used earlier in the same
// list of the ConfigMap (section, e.g. "address-pools"), and records name at
// index i in seen. note is appended to the duplicate message.
func uniqueName(seen map[string]int, name string, i int, at fieldPath, r *report, missing, section, note string) {
	switch j, dup := seen[name]; {
	case name == "":
		r.invalid(at.child("name"), "missing: %s", missing)
	case dup:
		r.invalid(at.child("name"), "%q is already defined by %s[%d]%s", name, section, j, note)
	default:
		seen[name] = i
	}
}
