package config

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestLastGoodAcrossRestart saves what a Build of before put in force,
// then builds after as a freshly started daemon does (prev from LastGood
// of the saved data, no Config in memory), and saves again.
func TestLastGoodAcrossRestart(t *testing.T) {
	legacy := "address-pools:\n- {name: office, protocol: layer2, addresses: [192.168.1.87-192.168.1.97]}\n"
	typo := "address-pools:\n- {name: office, protocol: layer2, adresses: [192.168.1.87-192.168.1.97]}\n"
	recreated := ippool("lan", 1, "10.0.0.0/24 oops")
	recreated.UID = types.UID("uid-lan-2")
	tests := []struct {
		name          string
		before, after Input
		pools         []string // in force after the restart
		kept          []string // problems whose outcome is KeptLastGood
		saved         []string // keys saved after the restart
		unchanged     []string // keys whose entry is still the one saved before
	}{
		{
			name:      "a typo in the legacy ConfigMap keeps its pools",
			before:    Input{ConfigMap: configMap(0, legacy)},
			after:     Input{ConfigMap: configMap(0, typo)},
			pools:     []string{"office"},
			kept:      []string{"ConfigMap metallb-system/config"},
			saved:     []string{"ConfigMap.config"},
			unchanged: []string{"ConfigMap.config"},
		},
		{
			name:      "a pool edited to overlap an older one keeps its addresses",
			before:    Input{Pools: []v1alpha1.IPPool{ippool("old", 0, "10.0.0.0/25"), ippool("new", 1, "10.0.0.128/25")}},
			after:     Input{Pools: []v1alpha1.IPPool{ippool("old", 0, "10.0.0.0/25"), ippool("new", 1, "10.0.0.100-10.0.0.200")}},
			pools:     []string{"new", "old"},
			kept:      []string{"IPPool/new"},
			saved:     []string{"IPPool.new", "IPPool.old"},
			unchanged: []string{"IPPool.new", "IPPool.old"},
		},
		{
			name:   "an object recreated under the same name is another object",
			before: Input{Pools: []v1alpha1.IPPool{ippool("lan", 0, "10.0.0.0/24")}},
			after:  Input{Pools: []v1alpha1.IPPool{recreated}},
		},
		{
			name:   "a deleted object is forgotten",
			before: Input{Pools: []v1alpha1.IPPool{ippool("a", 0, "10.0.0.0/24"), ippool("b", 0, "10.0.1.0/24")}, L2: []v1alpha1.L2Announcement{l2ann("l2", 0, "a")}},
			after:  Input{Pools: []v1alpha1.IPPool{ippool("b", 0, "10.0.1.0/24")}},
			pools:  []string{"b"},
			saved:  []string{"IPPool.b"},
		},
		{
			name:   "a valid edit replaces the saved version",
			before: Input{Pools: []v1alpha1.IPPool{ippool("a", 0, "10.0.0.0/24")}},
			after:  Input{Pools: []v1alpha1.IPPool{ippool("a", 0, "10.0.9.0/24")}},
			pools:  []string{"a"},
			saved:  []string{"IPPool.a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := Build(tt.before, nil)
			saved, err := SaveLastGood(tt.before, problems, nil)
			if err != nil {
				t.Fatal(err)
			}

			prev, errs := LastGood(saved)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			cfg, problems := Build(tt.after, prev)
			if diff := cmp.Diff(tt.pools, poolNames(cfg)); diff != "" {
				t.Errorf("pools in force (-want +got):\n%s", diff)
			}
			var kept []string
			for _, p := range problems {
				if p.Outcome == KeptLastGood && !slices.Contains(kept, p.Object.String()) {
					kept = append(kept, p.Object.String())
				}
			}
			if diff := cmp.Diff(tt.kept, kept); diff != "" {
				t.Errorf("kept last good (-want +got):\n%s\nproblems: %v", diff, errorStrings(problems))
			}

			again, err := SaveLastGood(tt.after, problems, saved)
			if err != nil {
				t.Fatal(err)
			}
			keys := sortedKeys(again)
			if diff := cmp.Diff(tt.saved, keys); diff != "" {
				t.Errorf("saved after the restart (-want +got):\n%s", diff)
			}
			for _, key := range tt.unchanged {
				if again[key] != saved[key] {
					t.Errorf("%s: saved %s, want the version saved before, %s", key, again[key], saved[key])
				}
			}
		})
	}
}

// TestLastGoodUnreadableEntry leaves out an entry it cannot read and
// keeps the others.
func TestLastGoodUnreadableEntry(t *testing.T) {
	in := Input{Pools: []v1alpha1.IPPool{ippool("a", 0, "10.0.0.0/24")}}
	saved, err := SaveLastGood(in, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	saved["IPPool.b"] = "{not json"
	saved["Gadget.c"] = "{}"
	cfg, errs := LastGood(saved)
	if len(errs) != 2 {
		t.Errorf("errors %v, want one for IPPool.b and one for Gadget.c", errs)
	}
	if got := poolNames(cfg); !slices.Equal(got, []string{"a"}) {
		t.Errorf("pools %v, want [a]", got)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sortedCopy(out)
}
