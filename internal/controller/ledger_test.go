package controller

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/ipam"
)

var v4 = []ipam.Family{ipam.IPv4}

func inPool(p string) request { return request{families: v4, requireAll: true, pool: p} }

// waitingLedger is a ledger whose pools a (198.51.100.0/31) and b
// (198.51.100.8/31) are full, held by ns/a1, ns/a2, ns/b1 and ns/b2, and
// whose pool gone (198.51.100.16/32), held by ns/g1, is being deleted if
// deleting; and whose pending Services wait for: an address of pool a
// (ns/pool-a), of pool b (ns/pool-b), of any pool (ns/any-pool),
// 198.51.100.1 (ns/one-address), and nothing they could be woken for
// (ns/unknown-pool, ns/invalid).
func waitingLedger(t *testing.T, deleting bool) *ledger {
	t.Helper()
	in := config.Input{Pools: []v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.0/31"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.8/31"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gone"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.16/32"}}},
	}}
	l := newLedger()
	if problems := l.setConfig(in); len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	// Fill the pools.
	for _, h := range []struct{ key, pool string }{{"a1", "a"}, {"a2", "a"}, {"b1", "b"}, {"b2", "b"}, {"g1", "gone"}} {
		if out := decideIn(l, h.key, inPool(h.pool), nil); out.reason != v1alpha1.ReasonAllocated {
			t.Fatalf("%s: %+v", h.key, out)
		}
	}
	if deleting {
		now := metav1.Now()
		in.Pools[2].DeletionTimestamp = &now
		if problems := l.setConfig(in); len(problems) > 0 {
			t.Fatalf("config problems: %v", problems)
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
		if out := decideIn(l, p.key, p.req, p.reqErr); out.reason != p.reason {
			t.Fatalf("%s: %+v, want %s", p.key, out, p.reason)
		}
	}
	l.poolUsage() // usage read: its next change is news
	return l
}

// decideIn decides the Service ns/key, new (its status shows nothing).
func decideIn(l *ledger, key string, req request, reqErr error) outcome {
	out, _, _ := l.decide(serviceInfo{key: "ns/" + key, namespace: "ns"}, req, reqErr, nil)
	return out
}

// TestWaitingFor checks which pending Services an address let go of wakes:
// those that may take it, by pool or by address, and no others.
func TestWaitingFor(t *testing.T) {
	l := waitingLedger(t, false)
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
			// waitingFor is the ledger's own helper: take its lock, as
			// its callers do.
			l.mu.Lock()
			got := l.waitingFor(freed)
			l.mu.Unlock()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("woken %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLedgerWakeups checks what the ledger's changes ask of the
// reconcilers: which pending Services a release or a written status wakes,
// when pool usage is news, and when a pool being deleted may be free.
func TestLedgerWakeups(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deleting bool // pool gone is being deleted
		do       func(*ledger) wakeups
		want     wakeups
	}{{
		name: "release of an address of pool a",
		do:   func(l *ledger) wakeups { return l.release("ns/a1") },
		want: wakeups{services: []string{"ns/any-pool", "ns/pool-a"}, poolUsage: true},
	}, {
		name: "release of the address one waits for",
		do:   func(l *ledger) wakeups { return l.release("ns/a2") },
		want: wakeups{services: []string{"ns/any-pool", "ns/one-address", "ns/pool-a"}, poolUsage: true},
	}, {
		name: "release of an address of pool b",
		do:   func(l *ledger) wakeups { return l.release("ns/b2") },
		want: wakeups{services: []string{"ns/any-pool", "ns/pool-b"}, poolUsage: true},
	}, {
		name: "release of a Service that holds nothing",
		do:   func(l *ledger) wakeups { return l.release("ns/pool-a") },
		want: wakeups{},
	}, {
		name:     "release of a Service that holds nothing while a pool is being deleted",
		deleting: true,
		do:       func(l *ledger) wakeups { return l.release("ns/unknown") },
		want:     wakeups{},
	}, {
		name:     "release of the last address of a pool being deleted",
		deleting: true,
		do:       func(l *ledger) wakeups { return l.release("ns/g1") },
		// Nobody waits for a pool being deleted.
		want: wakeups{poolUsage: true, deletedPool: true},
	}, {
		name:     "release of another pool's address while a pool is being deleted",
		deleting: true,
		do:       func(l *ledger) wakeups { return l.release("ns/b1") },
		want:     wakeups{services: []string{"ns/any-pool", "ns/pool-b"}, poolUsage: true, deletedPool: true},
	}, {
		name: "a second change before usage is read",
		do: func(l *ledger) wakeups {
			l.release("ns/a1")
			return l.release("ns/b1")
		},
		want: wakeups{services: []string{"ns/any-pool", "ns/pool-b"}},
	}, {
		name: "a second change after usage is read",
		do: func(l *ledger) wakeups {
			l.release("ns/a1")
			l.poolUsage()
			return l.release("ns/b1")
		},
		want: wakeups{services: []string{"ns/any-pool", "ns/pool-b"}, poolUsage: true},
	}, {
		name: "a released Service waits no more",
		do: func(l *ledger) wakeups {
			l.release("ns/pool-a")
			return l.release("ns/a1")
		},
		want: wakeups{services: []string{"ns/any-pool"}, poolUsage: true},
	}, {
		name: "release of what a Service holds back for its status",
		do: func(l *ledger) wakeups {
			// b1 gives .8 up (its request turns invalid) while its
			// status still shows it.
			shown := []netip.Addr{netip.MustParseAddr("198.51.100.8")}
			l.decide(serviceInfo{key: "ns/b1", namespace: "ns"}, request{}, errors.New("bad"), shown)
			l.poolUsage()
			return l.release("ns/b1")
		},
		want: wakeups{services: []string{"ns/any-pool", "ns/pool-b"}, poolUsage: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := waitingLedger(t, tc.deleting)
			got := tc.do(l)
			slices.Sort(got.services)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(wakeups{})); diff != "" {
				t.Errorf("wakeups (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHeldBackUntilStatusWritten: an address a Service gives up while its
// status still shows it goes to nobody, and wakes nobody, until
// statusWritten; then it wakes those that may take it.
func TestHeldBackUntilStatusWritten(t *testing.T) {
	l := waitingLedger(t, false)
	b1 := serviceInfo{key: "ns/b1", namespace: "ns"}
	shown := []netip.Addr{netip.MustParseAddr("198.51.100.8")}

	// b1's request turns invalid: it gives .8 up.
	out, heldBack, w := l.decide(b1, request{}, errors.New("bad"), shown)
	if out.reason != v1alpha1.ReasonInvalidRequest || !heldBack {
		t.Fatalf("b1: %+v, held back %v; want %s, held back", out, heldBack, v1alpha1.ReasonInvalidRequest)
	}
	if diff := cmp.Diff(wakeups{poolUsage: true}, w, cmp.AllowUnexported(wakeups{})); diff != "" {
		t.Errorf("decide's wakeups (-want +got):\n%s", diff)
	}
	if out := decideIn(l, "pool-b", inPool("b"), nil); out.reason != v1alpha1.ReasonPoolExhausted {
		t.Errorf("pool-b, while .8 is held back: %+v, want %s", out, v1alpha1.ReasonPoolExhausted)
	}
	// Decided again with the same status, b1 still holds it back and lets
	// nothing go.
	if _, heldBack, w := l.decide(b1, request{}, errors.New("bad"), shown); !heldBack || len(w.services) > 0 {
		t.Errorf("b1 again: held back %v, woke %v; want held back, no one woken", heldBack, w.services)
	}

	l.poolUsage()
	w = l.statusWritten("ns/b1")
	slices.Sort(w.services)
	want := wakeups{services: []string{"ns/any-pool", "ns/pool-b"}, poolUsage: true}
	if diff := cmp.Diff(want, w, cmp.AllowUnexported(wakeups{})); diff != "" {
		t.Errorf("statusWritten's wakeups (-want +got):\n%s", diff)
	}
	if out := decideIn(l, "pool-b", inPool("b"), nil); out.reason != v1alpha1.ReasonAllocated || !slices.Equal(out.ips, shown) {
		t.Errorf("pool-b, once b1's status is written: %+v, want %v", out, shown)
	}
	if w := l.statusWritten("ns/b1"); len(w.services) > 0 || w.poolUsage {
		t.Errorf("statusWritten again: %+v, want nothing", w)
	}
}
