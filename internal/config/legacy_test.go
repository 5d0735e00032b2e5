package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestLegacyGolden builds each testdata/*.yaml ConfigMap and compares the
// Config and problems with testdata/*.golden. Run with -update to rewrite
// them, then review the diff.
func TestLegacyGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, ps := Build(Input{ConfigMap: readConfigMap(t, name+".yaml")}, nil)
			got := dump(c, ps)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestLegacyRules(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{name: "empty", data: ""},
		{name: "only comments", data: "# nothing yet\n"},
		{name: "not yaml", data: "address-pools:\n- name: a\n  name: b\n",
			want: []string{`ConfigMap metallb-system/config: data.config: not valid YAML: line 3: key "name" already set in map`}},
		{name: "not a mapping", data: "- a\n",
			want: []string{`ConfigMap metallb-system/config: must be a mapping of keys to values, not a list`}},
		{name: "unknown top-level key", data: "adress-pools: []\n",
			want: []string{`ConfigMap metallb-system/config: unknown key "adress-pools"; did you mean "address-pools"?`}},
		{name: "unknown key far from any", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.1]\n  color: blue\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0]: unknown key "color"; valid keys here are addresses, auto-assign, avoid-buggy-ips, bgp-advertisements, name, protocol`}},
		{name: "CRD spelling", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.1]\n  avoidBuggyIPs: true\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0]: unknown key "avoidBuggyIPs"; did you mean "avoid-buggy-ips"?`}},
		{name: "wrong types", data: "address-pools:\n- name: [a]\n  auto-assign: maybe\n  addresses: 10.0.0.1\n  bgp-advertisements:\n  - localpref: -1\n",
			want: []string{
				`ConfigMap metallb-system/config: address-pools[0].addresses: must be a list, not "10.0.0.1"`,
				`ConfigMap metallb-system/config: address-pools[0].auto-assign: must be true or false, not "maybe"`,
				`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].localpref: must be a whole number from 0 to 4294967295, not -1`,
				`ConfigMap metallb-system/config: address-pools[0].name: must be a single value, not a list`,
			}},
		{name: "yes is true", data: "address-pools:\n- name: a\n  protocol: layer2\n  auto-assign: no\n  addresses: [10.0.0.1]\n"},
		{name: "pool without name or protocol", data: "address-pools:\n- addresses: [10.0.0.1]\n", want: []string{
			`ConfigMap metallb-system/config: address-pools[0].name: missing: every pool needs a name`,
			`ConfigMap metallb-system/config: address-pools[0].protocol: missing: must be layer2 or bgp`,
		}},
		{name: "duplicate pool name", data: "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.1]}\n- {name: a, protocol: layer2, addresses: [10.0.0.2]}\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[1].name: "a" is already defined by address-pools[0]; pool names must be unique`}},
		{name: "pools overlap", data: "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: bgp, addresses: [10.0.1.0/24, 10.0.0.128/25]}\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[1].addresses[1]: 10.0.0.128/25 overlaps 10.0.0.0/24 (address-pools[0].addresses[0]) of pool "a"; an address can belong to one pool only`}},
		{name: "no addresses", data: "address-pools:\n- {name: a, protocol: layer2}\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].addresses: no addresses: list at least one CIDR (192.168.1.0/24), range (192.168.1.87-192.168.1.97) or address`}},
		{name: "bad alias", data: "bgp-communities:\n  a: no-export\n  b: 1:2:3\n  \"x:y\": 1:2\n", want: []string{
			`ConfigMap metallb-system/config: bgp-communities.a: "no-export" is not a community: write ASN:value (65535:65282) or large:global:local1:local2`,
			`ConfigMap metallb-system/config: bgp-communities.b: "1:2:3" is not a community: write ASN:value (65535:65282) or large:global:local1:local2`,
			`ConfigMap metallb-system/config: bgp-communities["x:y"]: "x:y" cannot be an alias name: it must be non-empty and contain no ':'`,
		}},
		{name: "undefined alias", data: "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.1]\n  bgp-advertisements:\n  - communities: [no-adv]\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].communities[0]: "no-adv" is not a community: it is not a well-known name (such as no-export) or an alias from bgp-communities in the legacy ConfigMap`}},
		{name: "aggregation wider than the pool", data: "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/26, 'fd00::/64']\n  bgp-advertisements:\n  - aggregation-length: 24\n    aggregation-length-v6: 48\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].aggregation-length: 24 would announce addresses outside pool "a": its entry 10.0.0.0/26 (address-pools[0].addresses[0]) is made of blocks no wider than /26; use 26 or more`}},
		{name: "aggregation over 32", data: "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/26]\n  bgp-advertisements:\n  - aggregation-length: 33\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].aggregation-length: 33: must be from 0 to 32`}},
		{name: "layer2 with advertisements", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.1]\n  bgp-advertisements: [{}]\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements: only bgp pools have bgp-advertisements, and this pool's protocol is layer2`}},
		{name: "peer rules", data: "peers:\n- {peer-address: 10.0.0.1, hold-time: 2s, keepalive-time: forever, router-id: 'fd00::1'}\n", want: []string{
			`ConfigMap metallb-system/config: peers[0].keepalive-time: "forever" is not a duration: write a number with a unit, such as "90s"`,
			`ConfigMap metallb-system/config: peers[0].my-asn: missing: the AS number ironlb speaks as is required (1 to 4294967295)`,
			`ConfigMap metallb-system/config: peers[0].peer-asn: missing: the router's AS number is required (1 to 4294967295)`,
			`ConfigMap metallb-system/config: peers[0].router-id: fd00::1: must be a non-zero IPv4 address (a BGP identifier is 32 bits, RFC 6286)`,
			`ConfigMap metallb-system/config: peers[0].hold-time: 2s: must be 0 (no keepalives) or from 3s to 65535s (RFC 4271 section 4.2)`,
		}},
		{name: "peer selector", data: "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  node-selectors:\n  - match-expressions:\n    - {key: rack, operator: Within, values: ['1']}\n",
			want: []string{`ConfigMap metallb-system/config: peers[0].node-selectors[0]: invalid label selector: "Within" is not a valid label selector operator`}},
		{name: "duplicate peers", data: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, peer-port: 179}\n",
			want: []string{`ConfigMap metallb-system/config: peers[1]: is the same session as peers[0] (same peer address, port, source address and node selectors)`}},
		{name: "same router from different racks", data: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: '1'}}]}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {rack: '2'}}]}\n"},
		{name: "password too long", data: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, password: " + strings.Repeat("x", 81) + "}\n",
			want: []string{`ConfigMap metallb-system/config: peers[0].password: is 81 bytes long; TCP MD5 passwords can be at most 80`}},
		{name: "bfd profiles", data: "bfd-profiles:\n- {name: a, detect-multiplier: 1}\n- {name: a}\n- {}\n", want: []string{
			`ConfigMap metallb-system/config: bfd-profiles[0].detect-multiplier: 1: must be from 2 to 255`,
			`ConfigMap metallb-system/config: bfd-profiles[1].name: "a" is already defined by bfd-profiles[0]`,
			`ConfigMap metallb-system/config: bfd-profiles[2].name: missing: every BFD profile needs a name`,
		}},
		// Repeated entries: refused where MetalLB (v0.12) refused them,
		// accepted where it accepted them and they do no harm.
		{name: "same address twice in a pool", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [198.51.100.0/28, 198.51.100.64/28, ' 198.51.100.0/28']\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].addresses[2]: "198.51.100.0/28" is already listed as address-pools[0].addresses[0]`}},
		{name: "same range written two ways", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.1, 10.0.0.1/32]\n",
			want: []string{`ConfigMap metallb-system/config: address-pools[0].addresses[1]: 10.0.0.1/32 overlaps 10.0.0.1 (address-pools[0].addresses[0]) of the same pool`}},
		{name: "same bad address twice", data: "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.300, 10.0.0.300]\n", want: []string{
			`ConfigMap metallb-system/config: address-pools[0].addresses[0]: invalid IP address "10.0.0.300"`,
			`ConfigMap metallb-system/config: address-pools[0].addresses[1]: invalid IP address "10.0.0.300"`,
		}},
		{name: "same community twice", data: "bgp-communities: {lan: '64500:1'}\naddress-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.1]\n  bgp-advertisements:\n  - communities: [no-export, lan, '64500:2', lan, no-export]\n", want: []string{
			`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].communities[3]: "lan" is already listed as communities[1]`,
			`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[0].communities[4]: "no-export" is already listed as communities[0]`,
		}},
		{name: "one community written two ways", data: "bgp-communities: {lan: '64500:1'}\naddress-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.1]\n  bgp-advertisements:\n  - communities: [lan, '64500:1', no-export, '65535:65281']\n"},
		{name: "same advertisement twice", data: "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - {aggregation-length: 24, communities: [no-export]}\n  - {localpref: 100}\n  - {aggregation-length: 24, communities: [no-export]}\n  - {}\n  - {}\n", want: []string{
			`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[2]: is the same as bgp-advertisements[0]; list each advertisement once`,
			`ConfigMap metallb-system/config: address-pools[0].bgp-advertisements[4]: is the same as bgp-advertisements[3]; list each advertisement once`,
		}},
		{name: "advertisements that differ in writing", data: "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - {}\n  - {aggregation-length: 32}\n  - {communities: [no-export, no-advertise]}\n  - {communities: [no-advertise, no-export]}\n"},
		{name: "same node selector twice", data: "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 1\n  my-asn: 2\n  node-selectors:\n  - match-labels: {rack: '1'}\n  - match-labels: {rack: '1'}\n"},
		{name: "missing bfd profile is a warning", data: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, bfd-profile: fast}\n",
			want: []string{`warning: ConfigMap metallb-system/config: peers[0].bfd-profile: no BFD profile named "fast"; the session runs without BFD until one exists`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Build(Input{ConfigMap: configMap(0, tt.data)}, nil)
			if diff := cmp.Diff(tt.want, errorStrings(ps)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLegacyMissingKey(t *testing.T) {
	cm := configMap(0, "")
	cm.Data = map[string]string{"conifg": "address-pools: []"}
	_, ps := Build(Input{ConfigMap: cm}, nil)
	want := []string{`ConfigMap metallb-system/config: data: no "config" key (it has "conifg"): the legacy configuration (address-pools, peers, bgp-communities) goes in data.config`}
	if diff := cmp.Diff(want, errorStrings(ps)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	_, ps = Build(Input{ConfigMap: &corev1.ConfigMap{}}, nil)
	if len(ps) != 1 || !strings.Contains(ps[0].Message, "it has no data") {
		t.Errorf("empty ConfigMap: got %v", errorStrings(ps))
	}
}
