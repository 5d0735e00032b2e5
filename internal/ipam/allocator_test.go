package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// step is one call in an allocator scenario. Exactly one of assign,
// allocate, release or setPools is set.
type step struct {
	assign   string // service for Assign
	ips      []string
	aopts    AssignOptions
	allocate string // service for Allocate
	fam      Family
	pools    []string
	lopts    AllocateOptions
	share    Sharing
	release  string
	setPools []Pool

	want    string // Allocate: the address expected
	wantErr error  // compared with cmp; nil means success
}

// run runs the step on a. A Sharing without a namespace gets the
// service's, as the controller fills it in.
func (s step) run(a *Allocator) (string, error) {
	if s.share.Namespace == "" {
		s.share.Namespace, _, _ = strings.Cut(s.assign+s.allocate, "/")
	}
	switch {
	case s.assign != "":
		return "", a.Assign(s.assign, ips(s.ips...), s.share, s.aopts)
	case s.allocate != "":
		got, err := a.Allocate(s.allocate, s.fam, s.pools, s.share, s.lopts)
		if !got.IsValid() {
			return "", err
		}
		return got.String(), err
	case s.release != "":
		a.Release(s.release)
	default:
		a.SetPools(s.setPools)
	}
	return "", nil
}

func pools(ps ...Pool) []Pool { return ps }

func mkPool(name string, ranges ...string) Pool {
	p := Pool{Name: name, AutoAssign: true}
	for _, r := range ranges {
		p.Ranges = append(p.Ranges, rng(r))
	}
	return p
}

func (p Pool) manual() Pool { p.AutoAssign = false; return p }
func (p Pool) avoid() Pool  { p.AvoidBuggyIPs = true; return p }
func (p Pool) acrossNamespaces() Pool {
	p.AllowSharingAcrossNamespaces = true
	return p
}

func alloc(svc string, f Family, want string) step {
	return step{allocate: svc, fam: f, want: want}
}

func assign(svc string, addrs ...string) step {
	return step{assign: svc, ips: addrs}
}

func shared(key string, local bool, selector string, ports ...int32) Sharing {
	s := Sharing{Key: key, Local: local, Selector: selector}
	for _, p := range ports {
		s.Ports = append(s.Ports, Port{Protocol: "TCP", Port: p})
	}
	return s
}

func (s step) with(sh Sharing) step { s.share = sh; return s }
func (s step) fails(err error) step { s.wantErr = err; return s }

var (
	lan  = mkPool("default", "192.168.1.87-192.168.1.97")
	lan6 = mkPool("default", "192.168.1.87-192.168.1.97", "2001:db8::/64")
)

func TestAllocator(t *testing.T) {
	tests := []struct {
		name        string
		steps       []step
		wantIPs     map[string][]string // IPs of each service afterwards
		wantHolders map[string][]string // Holders of each address afterwards
		wantOrphans map[string][]string
	}{{
		name: "lowest free first, released addresses reused",
		steps: []step{
			{setPools: pools(lan)},
			alloc("a/a", IPv4, "192.168.1.87"),
			alloc("a/b", IPv4, "192.168.1.88"),
			{release: "a/a"},
			alloc("a/c", IPv4, "192.168.1.87"),
			alloc("a/d", IPv4, "192.168.1.89"),
		},
		wantIPs: map[string][]string{"a/b": {"192.168.1.88"}, "a/c": {"192.168.1.87"}, "a/d": {"192.168.1.89"}},
	}, {
		name: "ranges in order, then pool full",
		steps: []step{
			{setPools: pools(mkPool("default", "10.0.0.8-10.0.0.9", "10.0.0.5"))},
			alloc("a/a", IPv4, "10.0.0.5"),
			alloc("a/b", IPv4, "10.0.0.8"),
			alloc("a/c", IPv4, "10.0.0.9"),
			alloc("a/d", IPv4, "").fails(&PoolFullError{Pools: []string{"default"}, Family: IPv4}),
		},
		wantIPs: map[string][]string{"a/a": {"10.0.0.5"}, "a/b": {"10.0.0.8"}, "a/c": {"10.0.0.9"}},
	}, {
		name: "buggy IPs skipped and refused",
		steps: []step{
			{setPools: pools(mkPool("default", "10.0.0.254-10.0.1.1").avoid())},
			alloc("a/a", IPv4, "10.0.0.254"),
			alloc("a/b", IPv4, "10.0.1.1"),
			alloc("a/c", IPv4, "").fails(&PoolFullError{Pools: []string{"default"}, Family: IPv4}),
			{assign: "a/d", ips: []string{"10.0.0.255"}, aopts: AssignOptions{RequirePool: true},
				wantErr: &BuggyIPError{Addr: ip("10.0.0.255"), Pool: "default"}},
			// Restoring keeps what a Service already has.
			assign("a/e", "10.0.1.0"),
		},
		wantIPs: map[string][]string{"a/a": {"10.0.0.254"}, "a/b": {"10.0.1.1"}, "a/e": {"10.0.1.0"}},
	}, {
		name: "buggy IPs used when not avoided",
		steps: []step{
			{setPools: pools(mkPool("default", "10.0.0.254-10.0.1.1"))},
			alloc("a/a", IPv4, "10.0.0.254"),
			alloc("a/b", IPv4, "10.0.0.255"),
			alloc("a/c", IPv4, "10.0.1.0"),
			{assign: "a/d", ips: []string{"10.0.1.1"}, aopts: AssignOptions{RequirePool: true}},
		},
		wantIPs: map[string][]string{"a/a": {"10.0.0.254"}, "a/b": {"10.0.0.255"}, "a/c": {"10.0.1.0"}, "a/d": {"10.0.1.1"}},
	}, {
		name: "auto-assign off",
		steps: []step{
			{setPools: pools(mkPool("manual", "10.0.0.1").manual(), mkPool("auto", "10.0.1.1"))},
			alloc("a/a", IPv4, "10.0.1.1"),
			alloc("a/b", IPv4, "").fails(&PoolFullError{Pools: []string{"auto"}, Family: IPv4}),
			{allocate: "a/b", fam: IPv4, pools: []string{"manual"}, wantErr: &NoPoolError{
				Family: IPv4, Pools: []string{"manual"}, Reasons: []string{"pool manual has autoAssign disabled"}}},
			{allocate: "a/b", fam: IPv4, pools: []string{"manual"}, lopts: AllocateOptions{Explicit: true}, want: "10.0.0.1"},
		},
		wantIPs: map[string][]string{"a/a": {"10.0.1.1"}, "a/b": {"10.0.0.1"}},
	}, {
		name: "requested address in a manual pool",
		steps: []step{
			{setPools: pools(mkPool("manual", "10.0.0.1-10.0.0.2").manual())},
			{assign: "a/a", ips: []string{"10.0.0.2"}, aopts: AssignOptions{RequirePool: true}},
		},
		wantIPs: map[string][]string{"a/a": {"10.0.0.2"}},
	}, {
		name: "priority order",
		steps: []step{
			{setPools: pools(mkPool("a", "10.0.0.0/31"), mkPool("b", "10.0.1.0/30"))},
			{allocate: "a/x", fam: IPv4, pools: []string{"b", "a"}, want: "10.0.1.0"},
			alloc("a/y", IPv4, "10.0.0.0"),
			alloc("a/z", IPv4, "10.0.0.1"),
			alloc("a/w", IPv4, "10.0.1.1"),
			{allocate: "a/v", fam: IPv4, pools: []string{"nope", "a"}, wantErr: &PoolFullError{Pools: []string{"a"}, Family: IPv4}},
		},
		wantIPs: map[string][]string{"a/x": {"10.0.1.0"}, "a/y": {"10.0.0.0"}, "a/z": {"10.0.0.1"}, "a/w": {"10.0.1.1"}},
	}, {
		name: "no usable pool",
		steps: []step{
			alloc("a/a", IPv4, "").fails(&NoPoolError{Family: IPv4}),
			{setPools: pools(lan, mkPool("manual", "2001:db8::/64").manual())},
			alloc("a/a", IPv6, "").fails(&NoPoolError{Family: IPv6, Reasons: []string{
				"pool default has no IPv6 range", "pool manual has autoAssign disabled"}}),
			{allocate: "a/a", fam: IPv4, pools: []string{"typo"}, wantErr: &NoPoolError{
				Family: IPv4, Pools: []string{"typo"}, Reasons: []string{"pool typo does not exist"}}},
		},
	}, {
		name: "dual-stack",
		steps: []step{
			{setPools: pools(lan6)},
			alloc("a/a", IPv6, "2001:db8::"),
			alloc("a/a", IPv4, "192.168.1.87"),
			alloc("a/b", IPv4, "192.168.1.88"),
			alloc("a/b", IPv6, "2001:db8::1"),
		},
		wantIPs: map[string][]string{"a/a": {"192.168.1.87", "2001:db8::"}, "a/b": {"192.168.1.88", "2001:db8::1"}},
	}, {
		name: "sharing: same key, disjoint ports",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			assign("a/tls", "192.168.1.88").with(shared("k", false, "", 443)),
		},
		wantIPs:     map[string][]string{"a/web": {"192.168.1.88"}, "a/tls": {"192.168.1.88"}},
		wantHolders: map[string][]string{"192.168.1.88": {"a/tls", "a/web"}},
	}, {
		name: "sharing refused: port clash, different key, no key",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80, 8080)),
			assign("a/dup", "192.168.1.88").with(shared("k", false, "", 443, 8080)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, Reason: "port 8080/TCP used by both"}),
			assign("a/other", "192.168.1.88").with(shared("j", false, "", 443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, Reason: "different sharing key"}),
			assign("a/nokey", "192.168.1.88").with(shared("", false, "", 443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, Reason: "no sharing key"}),
			assign("kubeflow/minio-service", "192.168.1.89"),
			assign("a/keyed", "192.168.1.89").with(shared("k", false, "", 443)).fails(
				&ConflictError{Addr: ip("192.168.1.89"), Holders: []string{"kubeflow/minio-service"}, Reason: "no sharing key"}),
		},
		wantIPs: map[string][]string{"a/web": {"192.168.1.88"}, "kubeflow/minio-service": {"192.168.1.89"}},
	}, {
		name: "sharing with externalTrafficPolicy Local",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/local", "192.168.1.88").with(shared("k", true, "app=x", 80)),
			assign("a/cluster-other", "192.168.1.88").with(shared("k", false, "app=y", 443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/local"}, Reason: "externalTrafficPolicy Local with different selectors"}),
			assign("a/local-other", "192.168.1.88").with(shared("k", true, "app=y", 443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/local"}, Reason: "externalTrafficPolicy Local with different selectors"}),
			assign("a/same", "192.168.1.88").with(shared("k", false, "app=x", 443)),
			assign("a/cluster", "192.168.1.89").with(shared("c", false, "app=x", 80)),
			assign("a/cluster2", "192.168.1.89").with(shared("c", false, "app=y", 443)),
		},
		wantHolders: map[string][]string{"192.168.1.88": {"a/local", "a/same"}, "192.168.1.89": {"a/cluster", "a/cluster2"}},
	}, {
		name: "allocate prefers compatible shared addresses",
		steps: []step{
			{setPools: pools(mkPool("first", "10.0.0.1-10.0.0.3"), mkPool("second", "10.0.1.1-10.0.1.3"))},
			alloc("a/web", IPv4, "10.0.0.1").with(shared("k", false, "", 80)),
			{assign: "a/web2", ips: []string{"10.0.1.3"}, share: shared("k", false, "", 80)},
			alloc("a/plain", IPv4, "10.0.0.2"),
			// Shares with a/web in the first pool rather than taking a fresh address.
			alloc("a/tls", IPv4, "10.0.0.1").with(shared("k", false, "", 443)),
			// Port 80 clashes with both holders of shared addresses: fresh one.
			alloc("a/web3", IPv4, "10.0.0.3").with(shared("k", false, "", 80)),
			// Only the second pool allowed: shares a/web2's address.
			{allocate: "a/tls2", fam: IPv4, pools: []string{"second"}, share: shared("k", false, "", 443), want: "10.0.1.3"},
			// Key j: nothing to share.
			alloc("a/j", IPv4, "10.0.1.1").with(shared("j", false, "", 443)),
		},
		wantHolders: map[string][]string{
			"10.0.0.1": {"a/tls", "a/web"}, "10.0.0.2": {"a/plain"}, "10.0.0.3": {"a/web3"},
			"10.0.1.1": {"a/j"}, "10.0.1.3": {"a/tls2", "a/web2"},
		},
	}, {
		name: "conflict names every refusing holder",
		steps: []step{
			{setPools: pools(lan.acrossNamespaces())},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			assign("b/tls", "192.168.1.88").with(shared("k", false, "", 443)),
			assign("c/x", "192.168.1.88").with(shared("j", false, "", 53)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web", "b/tls"}, Reason: "different sharing key"}),
			assign("c/y", "192.168.1.88").with(shared("k", false, "", 443, 8443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"b/tls"}, Reason: "port 443/TCP used by both"}),
		},
		wantHolders: map[string][]string{"192.168.1.88": {"a/web", "b/tls"}},
	}, {
		name: "release of a shared address",
		steps: []step{
			{setPools: pools(mkPool("default", "192.168.1.88-192.168.1.90"))},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			assign("a/tls", "192.168.1.88").with(shared("k", false, "", 443)),
			{release: "a/web"},
			alloc("a/plain", IPv4, "192.168.1.89"),
			{release: "a/tls"},
			alloc("a/next", IPv4, "192.168.1.88"),
			{release: "a/unknown"},
		},
		wantIPs:     map[string][]string{"a/plain": {"192.168.1.89"}, "a/next": {"192.168.1.88"}},
		wantHolders: map[string][]string{"192.168.1.88": {"a/next"}},
	}, {
		name: "shrinking a pool keeps orphans and never hands them out",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/kept", "192.168.1.95"),
			{setPools: pools(mkPool("default", "192.168.1.87-192.168.1.90"))},
			// Still held, even though no pool contains it any more.
			assign("a/thief", "192.168.1.95").fails(
				&ConflictError{Addr: ip("192.168.1.95"), Holders: []string{"a/kept"}, Reason: "no sharing key"}),
			{assign: "a/thief", ips: []string{"192.168.1.95"}, aopts: AssignOptions{RequirePool: true},
				wantErr: &NotInPoolError{Addr: ip("192.168.1.95")}},
			alloc("a/b", IPv4, "192.168.1.87"),
			// Grow it back: the orphan is in the pool again and stays used.
			{setPools: pools(mkPool("default", "192.168.1.91-192.168.1.97"), mkPool("old", "192.168.1.87-192.168.1.90"))},
			alloc("a/c", IPv4, "192.168.1.91"),
			alloc("a/d", IPv4, "192.168.1.92"),
			alloc("a/e", IPv4, "192.168.1.93"),
			alloc("a/f", IPv4, "192.168.1.94"),
			alloc("a/g", IPv4, "192.168.1.96"),
		},
		wantIPs: map[string][]string{
			"a/kept": {"192.168.1.95"}, "a/b": {"192.168.1.87"}, "a/c": {"192.168.1.91"}, "a/d": {"192.168.1.92"},
			"a/e": {"192.168.1.93"}, "a/f": {"192.168.1.94"}, "a/g": {"192.168.1.96"},
		},
		wantOrphans: map[string][]string{},
	}, {
		name: "orphans reported",
		steps: []step{
			{setPools: pools(lan6)},
			alloc("a/a", IPv4, "192.168.1.87"),
			alloc("a/a", IPv6, "2001:db8::"),
			alloc("a/b", IPv4, "192.168.1.88"),
			{setPools: pools(mkPool("default", "192.168.1.88-192.168.1.97"))},
		},
		wantOrphans: map[string][]string{"a/a": {"192.168.1.87", "2001:db8::"}},
	}, {
		name: "assign is all-or-nothing",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/a", "192.168.1.88"),
			assign("a/b", "192.168.1.90"),
			assign("a/b", "192.168.1.87", "192.168.1.88").fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/a"}, Reason: "no sharing key"}),
			{assign: "a/b", ips: []string{"192.168.1.87", "10.0.0.1"}, aopts: AssignOptions{RequirePool: true},
				wantErr: &NotInPoolError{Addr: ip("10.0.0.1")}},
			assign("a/c", "192.168.1.91", "192.168.1.88").fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/a"}, Reason: "no sharing key"}),
		},
		wantIPs:     map[string][]string{"a/a": {"192.168.1.88"}, "a/b": {"192.168.1.90"}},
		wantHolders: map[string][]string{"192.168.1.87": nil, "192.168.1.91": nil},
	}, {
		name: "assign replaces, restores and releases",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/b", "192.168.1.90"),
			assign("a/b", "192.168.1.91", "192.168.1.91"), // duplicates collapse
			assign("a/b", "192.168.1.91"),                 // idempotent
			assign("a/c", "10.9.9.9"),                     // restore outside every pool
			assign("a/d", "192.168.1.92"),
			assign("a/d"), // nothing: released
			alloc("a/e", IPv4, "192.168.1.87"),
		},
		wantIPs:     map[string][]string{"a/b": {"192.168.1.91"}, "a/c": {"10.9.9.9"}, "a/e": {"192.168.1.87"}},
		wantHolders: map[string][]string{"192.168.1.90": nil, "192.168.1.92": nil},
		wantOrphans: map[string][]string{"a/c": {"10.9.9.9"}},
	}, {
		name: "assign pool restrictions",
		steps: []step{
			{setPools: pools(mkPool("a", "10.0.0.0/24"), mkPool("b", "10.0.1.0/24"))},
			{assign: "x/x", ips: []string{"10.0.0.1"}, aopts: AssignOptions{Pools: []string{"b"}},
				wantErr: &PoolNotAllowedError{Addr: ip("10.0.0.1"), Pool: "a", Allowed: []string{"b"}}},
			{assign: "x/x", ips: []string{"10.0.9.1"}, aopts: AssignOptions{Pools: []string{"b"}},
				wantErr: &NotInPoolError{Addr: ip("10.0.9.1")}},
			{assign: "x/x", ips: []string{"10.0.1.1"}, aopts: AssignOptions{RequirePool: true, Pools: []string{"b", "c"}}},
		},
		wantIPs: map[string][]string{"x/x": {"10.0.1.1"}},
	}, {
		name: "allocate checks a changed sharing key against held addresses",
		steps: []step{
			{setPools: pools(lan6)},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			assign("a/tls", "192.168.1.88").with(shared("k", false, "", 443)),
			{allocate: "a/tls", fam: IPv6, share: shared("other", false, "", 443), wantErr: &ConflictError{
				Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, Reason: "different sharing key"}},
			// A compatible change (new port) is taken on.
			{allocate: "a/tls", fam: IPv6, share: shared("k", false, "", 443, 8443), want: "2001:db8::"},
			assign("a/alt", "192.168.1.88").with(shared("k", false, "", 8443)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/tls"}, Reason: "port 8443/TCP used by both"}),
		},
		wantIPs: map[string][]string{"a/web": {"192.168.1.88"}, "a/tls": {"192.168.1.88", "2001:db8::"}},
	}, {
		name: "a sole holder changing its key moves the address to the new key",
		steps: []step{
			{setPools: pools(mkPool("default", "10.0.0.1-10.0.0.2"), mkPool("v6", "2001:db8::/120"))},
			alloc("a/a", IPv4, "10.0.0.1").with(shared("k", false, "", 80)),
			alloc("a/a", IPv6, "2001:db8::").with(shared("j", false, "", 80)),
			alloc("a/b", IPv4, "10.0.0.2").with(shared("k", false, "", 443)),
			alloc("a/c", IPv4, "10.0.0.1").with(shared("j", false, "", 443)),
		},
		wantHolders: map[string][]string{"10.0.0.1": {"a/a", "a/c"}, "10.0.0.2": {"a/b"}},
	}, {
		name: "sharing stays within a namespace unless the pool allows it",
		steps: []step{
			{setPools: pools(lan, mkPool("open", "10.0.0.1-10.0.0.9").acrossNamespaces())},
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			{assign: "b/tls", ips: []string{"192.168.1.88"}, share: shared("k", false, "", 443), aopts: AssignOptions{RequirePool: true},
				wantErr: &ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, OtherNamespace: true,
					Reason: "in another namespace, and pool default does not allow sharing across namespaces"}},
			{assign: "a/tls", ips: []string{"192.168.1.88"}, share: shared("k", false, "", 443), aopts: AssignOptions{RequirePool: true}},
			// A different key is still the first reason given.
			{assign: "b/other", ips: []string{"192.168.1.88"}, share: shared("j", false, "", 53), aopts: AssignOptions{RequirePool: true},
				wantErr: &ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/tls", "a/web"}, Reason: "different sharing key"}},
			// The pool that allows it lets the namespaces share.
			assign("a/dns", "10.0.0.5").with(shared("k", false, "", 53)),
			{assign: "b/dns", ips: []string{"10.0.0.5"}, share: shared("k", false, "", 853), aopts: AssignOptions{RequirePool: true}},
			// Automatic: b's Service takes a fresh address of the default
			// pool rather than a's, and shares b's own in the open pool.
			{allocate: "b/web", fam: IPv4, pools: []string{"default"}, share: shared("k", false, "", 8080), want: "192.168.1.87"},
			{allocate: "c/web", fam: IPv4, pools: []string{"open"}, share: shared("k", false, "", 8080), want: "10.0.0.5"},
		},
		wantHolders: map[string][]string{
			"192.168.1.88": {"a/tls", "a/web"}, "192.168.1.87": {"b/web"}, "10.0.0.5": {"a/dns", "b/dns", "c/web"},
		},
	}, {
		name: "sharers of two namespaces are restored and kept",
		steps: []step{
			{setPools: pools(lan6)},
			// Restore (zero options) honours what status shows, whatever
			// the namespace rule says of it now.
			assign("a/web", "192.168.1.88").with(shared("k", false, "", 80)),
			assign("b/tls", "192.168.1.88").with(shared("k", false, "", 443)),
			// Kept: re-asserted with its ports changed, and adding a family.
			assign("b/tls", "192.168.1.88").with(shared("k", false, "", 8443)),
			alloc("b/tls", IPv6, "2001:db8::").with(shared("k", false, "", 8443)),
			// A third Service of b may not join a's address anew.
			alloc("b/new", IPv4, "192.168.1.87").with(shared("k", false, "", 22)),
			// Ports still decide among the kept sharers.
			assign("b/tls", "192.168.1.88").with(shared("k", false, "", 80)).fails(
				&ConflictError{Addr: ip("192.168.1.88"), Holders: []string{"a/web"}, Reason: "port 80/TCP used by both"}),
		},
		wantIPs: map[string][]string{"a/web": {"192.168.1.88"}, "b/tls": {"192.168.1.88", "2001:db8::"}, "b/new": {"192.168.1.87"}},
	}, {
		name: "turning cross-namespace sharing off moves nobody",
		steps: []step{
			{setPools: pools(lan.acrossNamespaces())},
			alloc("a/web", IPv4, "192.168.1.87").with(shared("k", false, "", 80)),
			alloc("b/tls", IPv4, "192.168.1.87").with(shared("k", false, "", 443)),
			{setPools: pools(lan)},
			assign("b/tls", "192.168.1.87").with(shared("k", false, "", 443)),
			alloc("c/dns", IPv4, "192.168.1.88").with(shared("k", false, "", 53)),
		},
		wantHolders: map[string][]string{"192.168.1.87": {"a/web", "b/tls"}, "192.168.1.88": {"c/dns"}},
	}, {
		// MetalLB's TestAssignment: "s3 can change its ports while keeping
		// the same IP".
		name: "a sharer changes its ports and keeps the address",
		steps: []step{
			{setPools: pools(lan)},
			assign("a/s4", "192.168.1.88").with(shared("share", false, "", 80)),
			assign("a/s3", "192.168.1.88").with(shared("share", false, "", 443)),
			{assign: "a/s3", ips: []string{"192.168.1.88"}, share: Sharing{Key: "share", Ports: []Port{{"UDP", 53}}}, aopts: AssignOptions{RequirePool: true}},
		},
		wantHolders: map[string][]string{"192.168.1.88": {"a/s3", "a/s4"}},
	}, {
		// MetalLB's TestAssignment: "ip dual-stack assign s1 from different
		// pools" is refused there; ironlb allows it (see the README).
		name: "dual-stack addresses from two pools",
		steps: []step{
			{setPools: pools(mkPool("v4", "10.0.0.0/30"), mkPool("v6", "2001:db8::/126"))},
			{assign: "a/s1", ips: []string{"10.0.0.1", "2001:db8::1"}, aopts: AssignOptions{RequirePool: true}},
			alloc("a/s2", IPv4, "10.0.0.0"),
			alloc("a/s2", IPv6, "2001:db8::"),
		},
		wantIPs: map[string][]string{"a/s1": {"10.0.0.1", "2001:db8::1"}, "a/s2": {"10.0.0.0", "2001:db8::"}},
	}, {
		// MetalLB's TestPoolAllocation: "s6 can get an dual-stack IPs now,
		// with sharing".
		name: "dual-stack Services share both addresses",
		steps: []step{
			{setPools: pools(mkPool("default", "10.0.0.0/31", "2001:db8::/127"))},
			alloc("a/s5", IPv4, "10.0.0.0").with(shared("share", false, "", 80)),
			alloc("a/s5", IPv6, "2001:db8::").with(shared("share", false, "", 80)),
			alloc("a/s6", IPv4, "10.0.0.0").with(shared("share", false, "", 443)),
			alloc("a/s6", IPv6, "2001:db8::").with(shared("share", false, "", 443)),
			alloc("a/s7", IPv4, "10.0.0.1"),
			alloc("a/s7", IPv6, "2001:db8::1"),
			alloc("a/s8", IPv4, "").fails(&PoolFullError{Pools: []string{"default"}, Family: IPv4}),
		},
		wantHolders: map[string][]string{"10.0.0.0": {"a/s5", "a/s6"}, "2001:db8::": {"a/s5", "a/s6"}},
	}, {
		name: "invalid input",
		steps: []step{
			{setPools: pools(lan)},
			{allocate: "a/a", fam: 0, wantErr: errAny},
			{assign: "a/a", ips: []string{"::ffff:192.168.1.88"}, wantErr: errAny},
			{assign: "a/a", ips: []string{"fe80::1%eth0"}, wantErr: errAny},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			for i, s := range tt.steps {
				got, err := s.run(a)
				if s.wantErr == errAny {
					if err == nil {
						t.Fatalf("step %d: got %q, want an error", i, got)
					}
					continue
				}
				if diff := cmp.Diff(s.wantErr, err, cmpOpts...); diff != "" {
					t.Fatalf("step %d: error mismatch (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d: address mismatch (-want +got):\n%s", i, diff)
				}
			}
			for svc, want := range tt.wantIPs {
				if diff := cmp.Diff(ips(want...), a.IPs(svc), cmpOpts...); diff != "" {
					t.Errorf("IPs(%q) mismatch (-want +got):\n%s", svc, diff)
				}
			}
			for addr, want := range tt.wantHolders {
				if diff := cmp.Diff(want, a.Holders(ip(addr)), cmpOpts...); diff != "" {
					t.Errorf("Holders(%s) mismatch (-want +got):\n%s", addr, diff)
				}
			}
			if tt.wantOrphans != nil {
				want := map[string][]netip.Addr{}
				for svc, addrs := range tt.wantOrphans {
					want[svc] = ips(addrs...)
				}
				if diff := cmp.Diff(want, a.Orphans(), cmpOpts...); diff != "" {
					t.Errorf("Orphans() mismatch (-want +got):\n%s", diff)
				}
			}
			if err := checkInvariants(a); err != nil {
				t.Error(err)
			}
		})
	}
}

// errAny in a step's wantErr accepts any non-nil error.
var errAny = errors.New("any error")

func TestStatsAndFreeRanges(t *testing.T) {
	const all = math.MaxUint64
	tests := []struct {
		name    string
		pools   []Pool
		held    []string // each held by its own service
		pool    string
		fam     Family
		max     int
		want    []string // FreeRanges
		wantSt  Stats
		wantUse []string // PoolUsers
	}{{
		name:  "the user's LAN pool",
		pools: pools(lan),
		held:  []string{"192.168.1.87", "192.168.1.88", "192.168.1.90"},
		pool:  "default", fam: IPv4, max: 10,
		want:    []string{"192.168.1.89", "192.168.1.91-192.168.1.97"},
		wantSt:  Stats{Total: map[Family]uint64{IPv4: 11}, Used: map[Family]uint64{IPv4: 3}, Free: map[Family]uint64{IPv4: 8}},
		wantUse: []string{"s/192.168.1.87", "s/192.168.1.88", "s/192.168.1.90"},
	}, {
		name:  "max limits the answer",
		pools: pools(lan),
		held:  []string{"192.168.1.88", "192.168.1.90"},
		pool:  "default", fam: IPv4, max: 2,
		want:   []string{"192.168.1.87", "192.168.1.89"},
		wantSt: Stats{Total: map[Family]uint64{IPv4: 11}, Used: map[Family]uint64{IPv4: 2}, Free: map[Family]uint64{IPv4: 9}},
	}, {
		name:  "full pool",
		pools: pools(mkPool("default", "10.0.0.1-10.0.0.2")),
		held:  []string{"10.0.0.1", "10.0.0.2"},
		pool:  "default", fam: IPv4, max: 10,
		wantSt: Stats{Total: map[Family]uint64{IPv4: 2}, Used: map[Family]uint64{IPv4: 2}, Free: map[Family]uint64{IPv4: 0}},
	}, {
		name:  "adjacent ranges reported as one",
		pools: pools(mkPool("default", "10.0.0.0/25", "10.0.0.128/25")),
		held:  []string{"10.0.0.0"},
		pool:  "default", fam: IPv4, max: 10,
		want:   []string{"10.0.0.1-10.0.0.255"},
		wantSt: Stats{Total: map[Family]uint64{IPv4: 256}, Used: map[Family]uint64{IPv4: 1}, Free: map[Family]uint64{IPv4: 255}},
	}, {
		name:  "avoid buggy IPs splits free ranges and lowers the total",
		pools: pools(mkPool("default", "10.0.0.0/23").avoid()),
		held:  []string{"10.0.0.1", "10.0.1.254"},
		pool:  "default", fam: IPv4, max: 10,
		want:   []string{"10.0.0.2-10.0.0.254", "10.0.1.1-10.0.1.253"},
		wantSt: Stats{Total: map[Family]uint64{IPv4: 508}, Used: map[Family]uint64{IPv4: 2}, Free: map[Family]uint64{IPv4: 506}},
	}, {
		name:  "a restored buggy address counts as used, not as taken from the free ones",
		pools: pools(mkPool("default", "10.0.0.0/24").avoid()),
		held:  []string{"10.0.0.0", "10.0.0.2"},
		pool:  "default", fam: IPv4, max: 10,
		want:   []string{"10.0.0.1", "10.0.0.3-10.0.0.254"},
		wantSt: Stats{Total: map[Family]uint64{IPv4: 254}, Used: map[Family]uint64{IPv4: 2}, Free: map[Family]uint64{IPv4: 253}},
	}, {
		name:  "a /8 with avoid buggy IPs",
		pools: pools(mkPool("big", "10.0.0.0/8").avoid()),
		held:  []string{"10.0.0.1", "10.0.0.3"},
		pool:  "big", fam: IPv4, max: 3,
		want: []string{"10.0.0.2", "10.0.0.4-10.0.0.254", "10.0.1.1-10.0.1.254"},
		wantSt: Stats{Total: map[Family]uint64{IPv4: 1<<24 - 2*65536}, Used: map[Family]uint64{IPv4: 2},
			Free: map[Family]uint64{IPv4: 1<<24 - 2*65536 - 2}},
	}, {
		name:  "IPv6 /64 saturates the total but not the free count",
		pools: pools(lan6),
		held:  []string{"2001:db8::", "2001:db8::2", "192.168.1.87"},
		pool:  "default", fam: IPv6, max: 2,
		want: []string{"2001:db8::1", "2001:db8::3-2001:db8::ffff:ffff:ffff:ffff"},
		wantSt: Stats{
			Total: map[Family]uint64{IPv4: 11, IPv6: all},
			Used:  map[Family]uint64{IPv4: 1, IPv6: 2},
			Free:  map[Family]uint64{IPv4: 10, IPv6: all - 1},
		},
	}, {
		name:  "IPv6 /48 saturates both",
		pools: pools(mkPool("v6", "2001:db8::/48")),
		held:  []string{"2001:db8::"},
		pool:  "v6", fam: IPv6, max: 1,
		want:   []string{"2001:db8::1-2001:db8:0:ffff:ffff:ffff:ffff:ffff"},
		wantSt: Stats{Total: map[Family]uint64{IPv6: all}, Used: map[Family]uint64{IPv6: 1}, Free: map[Family]uint64{IPv6: all}},
	}, {
		name:  "family without ranges",
		pools: pools(lan),
		pool:  "default", fam: IPv6, max: 10,
		wantSt: Stats{Total: map[Family]uint64{IPv4: 11}, Used: map[Family]uint64{IPv4: 0}, Free: map[Family]uint64{IPv4: 11}},
	}, {
		name:  "unknown pool",
		pools: pools(lan),
		pool:  "nope", fam: IPv4, max: 10,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New()
			a.SetPools(tt.pools)
			for _, h := range tt.held {
				if err := a.Assign("s/"+h, ips(h), Sharing{}, AssignOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var want []Range
			for _, r := range tt.want {
				want = append(want, rng(r))
			}
			if diff := cmp.Diff(want, a.FreeRanges(tt.pool, tt.fam, tt.max), cmpOpts...); diff != "" {
				t.Errorf("FreeRanges mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSt, a.Stats(tt.pool), cmpOpts...); diff != "" {
				t.Errorf("Stats mismatch (-want +got):\n%s", diff)
			}
			if tt.wantUse != nil {
				if diff := cmp.Diff(tt.wantUse, a.PoolUsers(tt.pool), cmpOpts...); diff != "" {
					t.Errorf("PoolUsers mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSetPools(t *testing.T) {
	a := New()
	a.SetPools(pools(
		mkPool("a", "10.0.0.0/24", "10.0.0.128/25", "10.0.2.0/24"), // the /25 overlaps the /24
		mkPool("b", "10.0.0.5", "10.0.3.0/24"),                     // 10.0.0.5 overlaps pool a
		mkPool("a", "10.0.9.0/24"),                                 // duplicate name
		Pool{Name: "c", Ranges: []Range{{From: ip("10.0.5.9"), To: ip("10.0.5.1")}, {}, {From: ip("10.0.6.1"), To: ip("2001:db8::")}}},
	))
	tests := []struct {
		addr string
		want string
		ok   bool
	}{
		{"10.0.0.5", "a", true},
		{"10.0.0.200", "a", true},
		{"10.0.2.1", "a", true},
		{"10.0.3.1", "b", true},
		{"10.0.9.1", "", false},
		{"10.0.5.5", "", false},
		{"10.0.1.1", "", false},
		{"2001:db8::", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			name, ok := a.PoolOf(ip(tt.addr))
			if diff := cmp.Diff(fmt.Sprint(tt.want, tt.ok), fmt.Sprint(name, ok)); diff != "" {
				t.Errorf("PoolOf mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, a.Pools()); diff != "" {
		t.Errorf("Pools() mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[Family]uint64{IPv4: 512}, a.Stats("a").Total); diff != "" {
		t.Errorf("Stats(a).Total mismatch (-want +got):\n%s", diff)
	}

	// Changing AutoAssign alone keeps the pool's state; growing it rebuilds
	// it from the allocations. Either way the accounting is right.
	if err := a.Assign("x/x", ips("10.0.3.7", "10.0.0.5"), Sharing{}, AssignOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, ps := range [][]Pool{
		pools(mkPool("b", "10.0.3.0/24").manual()),
		pools(mkPool("b", "10.0.3.0/24", "10.0.0.5").manual()),
	} {
		a.SetPools(ps)
		if diff := cmp.Diff(map[Family]uint64{IPv4: uint64(i + 1)}, a.Stats("b").Used); diff != "" {
			t.Errorf("SetPools #%d: Stats(b).Used mismatch (-want +got):\n%s", i, diff)
		}
	}
	if _, err := a.Allocate("y/y", IPv4, nil, Sharing{}, AllocateOptions{}); !errors.As(err, new(*NoPoolError)) {
		t.Errorf("Allocate from a manual-only set of pools: got %v, want a *NoPoolError", err)
	}
	if diff := cmp.Diff([]string{"x/x"}, a.PoolUsers("b")); diff != "" {
		t.Errorf("PoolUsers(b) mismatch (-want +got):\n%s", diff)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&ConflictError{Addr: ip("198.51.100.88"), Holders: []string{"kubeflow/minio-service"}, Reason: "no sharing key"},
			"198.51.100.88 is already used by kubeflow/minio-service (no sharing key)"},
		{&ConflictError{Addr: ip("198.51.100.88"), Holders: []string{"a/web", "b/tls"}, Reason: "port 80/TCP used by both"},
			"198.51.100.88 is already used by a/web, b/tls (port 80/TCP used by both)"},
		{&ConflictError{Addr: ip("198.51.100.88"), Holders: []string{"team-a/web"}, OtherNamespace: true,
			Reason: "in another namespace, and pool default does not allow sharing across namespaces"},
			"198.51.100.88 is already used by team-a/web (in another namespace, and pool default does not allow sharing across namespaces)"},
		{&NotInPoolError{Addr: ip("198.51.100.200")}, "198.51.100.200 is not in any address pool"},
		{&BuggyIPError{Addr: ip("198.51.100.255"), Pool: "default"},
			"198.51.100.255 is not usable: pool default avoids IPv4 addresses ending in .0 or .255 (avoidBuggyIPs)"},
		{&PoolNotAllowedError{Addr: ip("198.51.100.88"), Pool: "default", Allowed: []string{"reserved"}},
			"198.51.100.88 is in pool default, but this service may only use pool reserved"},
		{&PoolNotAllowedError{Addr: ip("198.51.100.88"), Pool: "default", Allowed: []string{"a", "b"}},
			"198.51.100.88 is in pool default, but this service may only use pools a, b"},
		{&PoolFullError{Pools: []string{"default"}, Family: IPv4}, "no free IPv4 address left in pool default"},
		{&PoolFullError{Pools: []string{"a", "b"}, Family: IPv6}, "no free IPv6 address left in pools a, b"},
		{&NoPoolError{Family: IPv4}, "no address pool can provide an IPv4 address: no pool is configured"},
		{&NoPoolError{Family: IPv6, Reasons: []string{"pool default has no IPv6 range", "pool lab has autoAssign disabled"}},
			"no address pool can provide an IPv6 address: pool default has no IPv6 range; pool lab has autoAssign disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
				t.Errorf("Error() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFamily(t *testing.T) {
	tests := []struct {
		addr netip.Addr
		want Family
		str  string
	}{
		{ip("192.168.1.88"), IPv4, "IPv4"},
		{ip("2001:db8::1"), IPv6, "IPv6"},
		{ip("::ffff:192.168.1.88"), IPv6, "IPv6"},
		{netip.Addr{}, 0, "Family(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			got := FamilyOf(tt.addr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FamilyOf(%v) mismatch (-want +got):\n%s", tt.addr, diff)
			}
			if diff := cmp.Diff(tt.str, got.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
