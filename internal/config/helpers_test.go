package config

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// base is the creation time of the oldest test object; objects made with
// age n were created n minutes later.
var base = time.Date(2023, 11, 29, 8, 38, 45, 0, time.UTC)

func meta(name string, age int) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              name,
		UID:               types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(base.Add(time.Duration(age) * time.Minute)),
	}
}

func ippool(name string, age int, addrs ...string) v1alpha1.IPPool {
	return v1alpha1.IPPool{ObjectMeta: meta(name, age), Spec: v1alpha1.IPPoolSpec{Addresses: addrs}}
}

func l2ann(name string, age int, pools ...string) v1alpha1.L2Announcement {
	return v1alpha1.L2Announcement{ObjectMeta: meta(name, age), Spec: v1alpha1.L2AnnouncementSpec{IPPools: pools}}
}

func bgpann(name string, age int, pools ...string) v1alpha1.BGPAnnouncement {
	return v1alpha1.BGPAnnouncement{ObjectMeta: meta(name, age), Spec: v1alpha1.BGPAnnouncementSpec{IPPools: pools}}
}

func bgppeer(name string, age int, addr string) v1alpha1.BGPPeer {
	return v1alpha1.BGPPeer{ObjectMeta: meta(name, age), Spec: v1alpha1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: addr}}
}

func bfdprofile(name string, age int) v1alpha1.BFDProfile {
	return v1alpha1.BFDProfile{ObjectMeta: meta(name, age)}
}

// configMap returns the legacy ConfigMap metallb-system/config holding data.
func configMap(age int, data string) *corev1.ConfigMap {
	m := meta("config", age)
	m.Namespace = "metallb-system"
	return &corev1.ConfigMap{ObjectMeta: m, Data: map[string]string{LegacyConfigKey: data}}
}

// readConfigMap reads a ConfigMap manifest from testdata.
func readConfigMap(t testing.TB, name string) *corev1.ConfigMap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &cm
}

// errorStrings formats problems for comparison: the operator reads these.
func errorStrings(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		s := p.Error()
		if p.Outcome == Warning {
			s = "warning: " + s
		}
		out = append(out, s)
	}
	return out
}

// selectorComparer compares label selectors by their canonical text; they
// hold unexported fields cmp cannot see.
var selectorComparer = cmp.Comparer(func(a, b labels.Selector) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
})

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// dump renders a Config and its problems as text for golden files.
func dump(c *Config, ps []Problem) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format+"\n", args...) }
	sels := func(ss []labels.Selector) string {
		if len(ss) == 0 {
			return "all"
		}
		var out []string
		for _, s := range ss {
			out = append(out, "{"+s.String()+"}")
		}
		return strings.Join(out, " or ")
	}
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return "unset"
		}
		return a.String()
	}
	list := func(ss []string, empty string) string {
		if len(ss) == 0 {
			return empty
		}
		return strings.Join(ss, ",")
	}
	p("pools:")
	for _, name := range slices.Sorted(maps.Keys(c.Pools)) {
		pl := c.Pools[name]
		p("  %s (from %s) protocol=%q auto-assign=%v avoid-buggy-ips=%v labels=%v", pl.Name, pl.Source, pl.Protocol, pl.AutoAssign, pl.AvoidBuggyIPs, pl.Labels)
		for _, r := range pl.Ranges {
			p("    %s", r)
		}
		if a := pl.Allocation; a != nil {
			p("    allocation: priority=%d namespaces=%s namespace-selectors=%s service-selectors=%s", a.Priority, list(a.Namespaces, "any"), sels(a.NamespaceSelectors), sels(a.ServiceSelectors))
		}
	}
	p("l2 announcements:")
	for _, a := range c.L2 {
		p("  %s: pools=%s nodes=%s interfaces=%s", a.Source, list(a.Pools, "none"), sels(a.NodeSelectors), list(a.Interfaces, "all"))
	}
	p("bgp peers:")
	for _, b := range c.BGPPeers {
		p("  %s %s: my-asn=%d peer=%s peer-asn=%d port=%d source=%v router-id=%v hold=%s keepalive=%s multihop=%v password=%q secret=%v nodes=%s bfd=%q",
			b.Source, b.Name, b.MyASN, b.PeerAddress, b.PeerASN, b.PeerPort, addr(b.SourceAddress), addr(b.RouterID), b.HoldTime, b.KeepaliveTime, b.EBGPMultiHop, b.Password, b.PasswordSecret, sels(b.NodeSelectors), b.BFDProfile)
	}
	p("bgp announcements:")
	for _, a := range c.BGPAnnouncements {
		lp := "unset"
		if a.LocalPref != nil {
			lp = fmt.Sprint(*a.LocalPref)
		}
		var comms []string
		for _, c := range a.Communities {
			comms = append(comms, c.String())
		}
		p("  %s: pools=%s aggregation=%d/%d localpref=%s communities=%s peers=%s nodes=%s",
			a.Source, list(a.Pools, "none"), a.AggregationLength, a.AggregationLengthV6, lp, list(comms, "none"), list(a.Peers, "all"), sels(a.NodeSelectors))
	}
	p("bfd profiles:")
	for _, name := range slices.Sorted(maps.Keys(c.BFDProfiles)) {
		b := c.BFDProfiles[name]
		p("  %s (from %s): receive=%s transmit=%s echo=%s multiplier=%d echo-mode=%v passive=%v min-ttl=%d",
			b.Name, b.Source, b.ReceiveInterval, b.TransmitInterval, b.EchoInterval, b.DetectMultiplier, b.EchoMode, b.PassiveMode, b.MinimumTTL)
	}
	p("problems:")
	if len(ps) == 0 {
		p("  none")
	}
	for _, s := range errorStrings(ps) {
		p("  %s", s)
	}
	return sb.String()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
