package config

import (
	"path/filepath"
	"testing"

	"github.com/ironlb/ironlb/internal/ipam"
)

// FuzzLegacyConfigMap feeds arbitrary text to the legacy ConfigMap parser.
// It must never panic, and whatever it accepts must be a sound Config: every
// range well formed, no two pools sharing an address, every announcement and
// peer consistent with the pools and profiles in force.
func FuzzLegacyConfigMap(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		cm := readConfigMap(f, filepath.Base(name))
		f.Add(cm.Data[LegacyConfigKey])
	}
	for _, s := range []string{
		"",
		"address-pools: [{name: a, protocol: layer2, addresses: ['10.0.0.0/8', '10.0.0.1']}]",
		"address-pools: [{name: a, protocol: bgp, addresses: ['fd00::/64', '::1-::ffff'], bgp-advertisements: [{aggregation-length-v6: 64}]}]",
		"address-pools: [{name: a, protocol: layer2, addresses: ['0.0.0.0/0']}, {name: b, protocol: layer2, addresses: ['255.255.255.255']}]",
		"peers: [{my-asn: 1, peer-asn: 2, peer-address: '::1', hold-time: 0s, keepalive-time: 0s}]",
		"bgp-communities: {a: 'large:1:2:3'}\naddress-pools: [{name: x, protocol: bgp, addresses: [1.2.3.4], bgp-advertisements: [{communities: [a]}]}]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, ps := Build(Input{ConfigMap: configMap(0, data)}, nil)
		for _, p := range ps {
			if p.Outcome != Warning && len(c.Pools)+len(c.BGPPeers)+len(c.BFDProfiles) > 0 {
				t.Fatalf("ConfigMap rejected (%v) but parts of it are in force", p)
			}
			if p.Message == "" {
				t.Fatalf("problem without a message: %#v", p)
			}
		}
		var all []ipam.Range
		for name, p := range c.Pools {
			if p.Name != name || len(p.Ranges) == 0 {
				t.Fatalf("pool %q: name %q, %d ranges", name, p.Name, len(p.Ranges))
			}
			for _, r := range p.Ranges {
				if !r.From.IsValid() || !r.To.IsValid() || r.From.Is4() != r.To.Is4() || r.To.Less(r.From) || r.From.Zone() != "" || r.From.Is4In6() {
					t.Fatalf("pool %q: malformed range %v", name, r)
				}
				for _, o := range all {
					if r.Overlaps(o) {
						t.Fatalf("pool %q: %v overlaps %v of another pool", name, r, o)
					}
				}
			}
			all = append(all, p.Ranges...)
		}
		for _, a := range c.L2 {
			for _, name := range a.Pools {
				if c.Pools[name] == nil {
					t.Fatalf("L2 announcement of unknown pool %q", name)
				}
			}
		}
		for _, a := range c.BGPAnnouncements {
			for _, name := range a.Pools {
				p := c.Pools[name]
				if p == nil {
					t.Fatalf("BGP announcement of unknown pool %q", name)
				}
				for _, r := range p.Ranges {
					if l := a.AggregationLength; r.From.Is6() {
						l = a.AggregationLengthV6
						if l < widestBlock(r) {
							t.Fatalf("pool %q announced with aggregation /%d wider than %v", name, l, r)
						}
					} else if l < widestBlock(r) {
						t.Fatalf("pool %q announced with aggregation /%d wider than %v", name, l, r)
					}
				}
			}
		}
		for _, p := range c.BGPPeers {
			if !p.PeerAddress.IsValid() || p.MyASN == 0 || p.PeerASN == 0 || p.PeerPort == 0 {
				t.Fatalf("peer accepted without address, ASNs or port: %+v", p)
			}
			if p.HoldTime != 0 && (p.KeepaliveTime <= 0 || p.KeepaliveTime >= p.HoldTime) {
				t.Fatalf("peer accepted with keepalive %s and hold %s", p.KeepaliveTime, p.HoldTime)
			}
			if p.BFDProfile != "" && c.BFDProfiles[p.BFDProfile] == nil {
				t.Fatalf("peer refers to missing BFD profile %q", p.BFDProfile)
			}
		}
	})
}
