package controller

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

// TestWaitingFor checks which pending Services an address let go of wakes:
// those that may take it, by pool or by address, and no others.
func TestWaitingFor(t *testing.T) {
	cfg, problems := config.Build(config.Input{Pools: []v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.0/31"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.8/31"}}},
	}}, nil)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	s := newState()
	s.setConfig(cfg, nil)
	v4 := []ipam.Family{ipam.IPv4}
	inPool := func(p string) request { return request{families: v4, requireAll: true, pool: p} }
	decide := func(key string, req request, reqErr error) outcome {
		t.Helper()
		return s.decide(serviceInfo{key: "ns/" + key, namespace: "ns"}, req, reqErr)
	}
	// Fill both pools.
	for _, k := range []string{"a1", "a2"} {
		if out := decide(k, inPool("a"), nil); out.reason != v1alpha1.ReasonAllocated {
			t.Fatalf("%s: %+v", k, out)
		}
	}
	for _, k := range []string{"b1", "b2"} {
		if out := decide(k, inPool("b"), nil); out.reason != v1alpha1.ReasonAllocated {
			t.Fatalf("%s: %+v", k, out)
		}
	}
	// Then those that wait.
	held := netip.MustParseAddr("198.51.100.1") // a2's
	for _, p := range []struct {
		key    string
		req    request
		reqErr error
		reason string
	}{
		{"pool-a", inPool("a"), nil, v1alpha1.ReasonPoolExhausted},
		{"pool-b", inPool("b"), nil, v1alpha1.ReasonPoolExhausted},
		{"any-pool", request{families: v4, requireAll: true}, nil, v1alpha1.ReasonPoolExhausted},
		{"one-address", request{families: v4, requireAll: true, ips: []netip.Addr{held}}, nil, v1alpha1.ReasonIPInUse},
		{"unknown-pool", inPool("c"), nil, v1alpha1.ReasonUnknownPool},
		{"invalid", request{}, errors.New("not an address"), v1alpha1.ReasonInvalidRequest},
	} {
		if out := decide(p.key, p.req, p.reqErr); out.reason != p.reason {
			t.Fatalf("%s: %+v, want %s", p.key, out, p.reason)
		}
	}
	for _, tc := range []struct {
		name  string
		freed []string
		want  []string
	}{
		{"an address of pool a", []string{"198.51.100.0"}, []string{"ns/any-pool", "ns/pool-a"}},
		{"the address one waits for", []string{"198.51.100.1"}, []string{"ns/any-pool", "ns/one-address", "ns/pool-a"}},
		{"an address of pool b", []string{"198.51.100.9"}, []string{"ns/any-pool", "ns/pool-b"}},
		{"one of each", []string{"198.51.100.8", "198.51.100.1"}, []string{"ns/any-pool", "ns/one-address", "ns/pool-a", "ns/pool-b"}},
		{"an address in no pool", []string{"198.51.100.200"}, nil},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var freed []netip.Addr
			for _, a := range tc.freed {
				freed = append(freed, netip.MustParseAddr(a))
			}
			got := s.waitingFor(freed)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("woken %v, want %v", got, tc.want)
			}
		})
	}
}
