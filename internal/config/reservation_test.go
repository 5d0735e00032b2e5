package config

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func reservation(name string, age int, ns, svc string, addrs ...string) v1alpha1.IPReservation {
	return v1alpha1.IPReservation{ObjectMeta: meta(name, age), Spec: v1alpha1.IPReservationSpec{
		Addresses: addrs, Service: &v1alpha1.ReservedService{Namespace: ns, Name: svc}}}
}

// TestReservationRules: each IPReservation is checked on its own (the
// field named) and against the pools and the older reservations.
func TestReservationRules(t *testing.T) {
	pools := []v1alpha1.IPPool{ippool("lan", 0, "192.168.1.0/24", "2001:db8::/64")}
	buggy := ippool("buggy", 0, "10.0.0.0/24")
	buggy.Spec.AvoidBuggyIPs = true
	selector := reservation("sel", 1, "", "", "192.168.1.90")
	selector.Spec.Service = nil
	selector.Spec.ServiceSelector = &v1alpha1.ReservedServiceSelector{Namespace: "shop",
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	emptySel := selector
	emptySel.Spec.ServiceSelector = &v1alpha1.ReservedServiceSelector{Namespace: "shop"}
	both := reservation("both", 1, "shop", "web", "192.168.1.91")
	both.Spec.ServiceSelector = selector.Spec.ServiceSelector
	none := reservation("none", 1, "", "", "192.168.1.92")
	none.Spec.Service = nil

	tests := []struct {
		name     string
		pools    []v1alpha1.IPPool
		res      []v1alpha1.IPReservation
		inForce  []string // reservation names
		problems []string
	}{{
		name:    "one per family, by name or by selector",
		res:     []v1alpha1.IPReservation{reservation("web", 1, "shop", "web", "2001:db8::88", "192.168.1.88"), selector},
		inForce: []string{"sel", "web"},
	}, {
		name:     "outside every pool",
		res:      []v1alpha1.IPReservation{reservation("web", 1, "shop", "web", "192.168.1.88", "2001:db9::5")},
		problems: []string{"IPReservation/web: spec.addresses[1]: 2001:db9::5 is in no pool; a reserved address must lie in an IPPool (or a pool of the legacy ConfigMap)"},
	}, {
		name:     "an address its pool never hands out",
		pools:    []v1alpha1.IPPool{buggy},
		res:      []v1alpha1.IPReservation{reservation("web", 1, "shop", "web", "10.0.0.255")},
		problems: []string{`IPReservation/web: spec.addresses[0]: 10.0.0.255 ends in .0 or .255, which pool "buggy" avoids (avoidBuggyIPs): no Service could have it`},
	}, {
		name:    "the older of two reservations of one address wins",
		res:     []v1alpha1.IPReservation{reservation("newer", 2, "shop", "b", "192.168.1.88"), reservation("older", 1, "shop", "a", "192.168.1.88")},
		inForce: []string{"older"},
		problems: []string{"IPReservation/newer: spec.addresses[0]: 192.168.1.88 is already reserved by IPReservation/older (for Service shop/a), " +
			"which takes precedence because it was created first; an address can have one reservation only"},
	}, {
		name: "bad fields, each named",
		res: []v1alpha1.IPReservation{
			reservation("two-v4", 1, "shop", "web", "192.168.1.88", "192.168.1.89"),
			reservation("not-ip", 1, "shop", "web", "192.168.1.300"),
			reservation("bad-name", 1, "shop", "Web_1", "192.168.1.87"),
			emptySel, both, none,
		},
		problems: []string{
			`IPReservation/bad-name: spec.service.name: "Web_1" is not a Service name: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			"IPReservation/both: spec.serviceSelector: set service or serviceSelector, not both",
			"IPReservation/none: spec: names no Service: set service (namespace and name) or serviceSelector",
			`IPReservation/not-ip: spec.addresses[0]: "192.168.1.300" is not an IP address`,
			"IPReservation/sel: spec.serviceSelector.selector: empty: it would reserve the addresses for every Service of namespace shop; name the labels of the Services they are for",
			"IPReservation/two-v4: spec.addresses[1]: a second IPv4 address (the first is spec.addresses[0]): a Service has at most one address per family",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pools == nil {
				tt.pools = pools
			}
			cfg, problems := Build(Input{Pools: tt.pools, Reservations: tt.res}, nil)
			var names []string
			for _, r := range cfg.Reservations {
				names = append(names, r.Name)
			}
			if diff := cmp.Diff(tt.inForce, names); diff != "" {
				t.Errorf("reservations in force (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.problems, errorStrings(problems)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReservationsFor: who a reservation is for, and which address of a
// Config is reserved by which.
func TestReservationsFor(t *testing.T) {
	sel := reservation("by-label", 1, "", "", "192.168.1.90")
	sel.Spec.Service = nil
	sel.Spec.ServiceSelector = &v1alpha1.ReservedServiceSelector{Namespace: "shop",
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	cfg, problems := Build(Input{
		Pools:        []v1alpha1.IPPool{ippool("lan", 0, "192.168.1.0/24")},
		Reservations: []v1alpha1.IPReservation{sel, reservation("z-by-name", 2, "shop", "web", "192.168.1.88")},
	}, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	names := func(rs []*Reservation) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, tt := range []struct {
		ns, name string
		labels   map[string]string
		want     []string
	}{
		{"shop", "web", map[string]string{"app": "web"}, []string{"z-by-name", "by-label"}},
		{"shop", "web", nil, []string{"z-by-name"}},
		{"shop", "api", map[string]string{"app": "web"}, []string{"by-label"}},
		{"other", "web", map[string]string{"app": "web"}, nil},
	} {
		if diff := cmp.Diff(tt.want, names(cfg.ReservationsFor(tt.ns, tt.name, tt.labels))); diff != "" {
			t.Errorf("ReservationsFor(%s/%s, %v) (-want +got):\n%s", tt.ns, tt.name, tt.labels, diff)
		}
	}
	if r := cfg.ReservationOf(netip.MustParseAddr("192.168.1.88")); r == nil || r.Name != "z-by-name" || r.Whom() != "Service shop/web" {
		t.Errorf("ReservationOf(192.168.1.88) = %+v", r)
	}
	if r := cfg.ReservationOf(netip.MustParseAddr("192.168.1.90")); r == nil || r.Whom() != "the Services of shop matching app=web" {
		t.Errorf("ReservationOf(192.168.1.90) = %+v", r)
	}
}

// TestReservationLastGood: a reservation edited into a bad one keeps its
// last good version, also in a freshly started daemon; a reservation
// clashing with an older one keeps its own addresses.
func TestReservationLastGood(t *testing.T) {
	pools := []v1alpha1.IPPool{ippool("lan", 0, "192.168.1.0/24")}
	good := reservation("web", 1, "shop", "web", "192.168.1.88")
	bad := reservation("web", 1, "shop", "web", "192.168.7.88") // outside the pool
	before := Input{Pools: pools, Reservations: []v1alpha1.IPReservation{good}}
	after := Input{Pools: pools, Reservations: []v1alpha1.IPReservation{bad}}

	_, problems := Build(before, nil)
	saved, err := SaveLastGood(before, problems, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := saved["IPReservation.web"]; !ok {
		t.Fatalf("saved = %v, want an IPReservation.web entry", saved)
	}
	prev, errs := LastGood(saved)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, problems := Build(after, prev)
	if len(cfg.Reservations) != 1 || !slices.Equal(cfg.Reservations[0].Addrs, []netip.Addr{netip.MustParseAddr("192.168.1.88")}) {
		t.Errorf("reservations in force = %+v, want web's last good version (192.168.1.88)", cfg.Reservations)
	}
	want := []string{"IPReservation/web: spec.addresses[0]: 192.168.7.88 is in no pool; a reserved address must lie in an IPPool (or a pool of the legacy ConfigMap) (the last valid version stays in force)"}
	if diff := cmp.Diff(want, errorStrings(problems)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	again, err := SaveLastGood(after, problems, saved)
	if err != nil {
		t.Fatal(err)
	}
	if again["IPReservation.web"] != saved["IPReservation.web"] {
		t.Errorf("the saved good version was replaced by the bad one: %s", again["IPReservation.web"])
	}
}
