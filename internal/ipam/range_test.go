package ipam

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts compares netip.Addr by value (its fields are unexported) and
// treats nil and empty slices and maps alike.
var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// quickDiff is cmp.Diff with cmpOpts, skipping cmp's reflective walk when
// the values are plainly equal: the property tests compare thousands of
// states.
func quickDiff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return cmp.Diff(want, got, cmpOpts...)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, ip(s))
	}
	return out
}

func rng(s string) Range {
	r, err := ParseRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    Range
		wantErr string // substring; "" means success
	}{
		{in: "198.51.100.0/24", want: Range{ip("198.51.100.0"), ip("198.51.100.255")}},
		{in: "198.51.100.7/24", want: Range{ip("198.51.100.0"), ip("198.51.100.255")}},
		{in: "198.51.100.7/32", want: Range{ip("198.51.100.7"), ip("198.51.100.7")}},
		{in: "10.0.0.0/8", want: Range{ip("10.0.0.0"), ip("10.255.255.255")}},
		{in: "0.0.0.0/0", want: Range{ip("0.0.0.0"), ip("255.255.255.255")}},
		{in: "198.51.100.0/25", want: Range{ip("198.51.100.0"), ip("198.51.100.127")}},
		{in: "2001:db8::/64", want: Range{ip("2001:db8::"), ip("2001:db8::ffff:ffff:ffff:ffff")}},
		{in: "2001:db8::/125", want: Range{ip("2001:db8::"), ip("2001:db8::7")}},
		{in: "8000::/1", want: Range{ip("8000::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}},
		{in: "::/0", wantErr: "contains IPv4-mapped"},
		{in: "192.168.1.87-192.168.1.97", want: Range{ip("192.168.1.87"), ip("192.168.1.97")}},
		{in: " 192.168.1.87 - 192.168.1.97 ", want: Range{ip("192.168.1.87"), ip("192.168.1.97")}},
		{in: "192.168.1.87-192.168.1.87", want: Range{ip("192.168.1.87"), ip("192.168.1.87")}},
		{in: "2001:db8::1-2001:db8::ff", want: Range{ip("2001:db8::1"), ip("2001:db8::ff")}},
		{in: "192.168.1.88", want: Range{ip("192.168.1.88"), ip("192.168.1.88")}},
		{in: "2001:db8::88", want: Range{ip("2001:db8::88"), ip("2001:db8::88")}},
		{in: "", wantErr: "empty address range"},
		{in: "   ", wantErr: "empty address range"},
		{in: "banana", wantErr: `invalid IP address "banana"`},
		{in: "192.168.1.256", wantErr: "invalid IP address"},
		{in: "198.51.100.0/33", wantErr: "invalid CIDR"},
		{in: "198.51.100.0/", wantErr: "invalid CIDR"},
		{in: "192.168.1.97-192.168.1.87", wantErr: "start is after end"},
		{in: "192.168.1.87-2001:db8::1", wantErr: "different IP families"},
		{in: "192.168.1.87-", wantErr: "invalid range"},
		{in: "-192.168.1.87", wantErr: "invalid range"},
		{in: "192.168.1.1-192.168.1.2-192.168.1.3", wantErr: "invalid range"},
		{in: "fe80::1%eth0", wantErr: "zones are not allowed"},
		{in: "fe80::1%eth0-fe80::2", wantErr: "zones are not allowed"},
		{in: "fe80::1%eth0/64", wantErr: "invalid CIDR"},
		{in: "::ffff:192.168.1.1", wantErr: "IPv4-mapped"},
		{in: "::ffff:192.168.1.0/120", wantErr: "IPv4-mapped"},
		{in: "::ffff:192.168.1.1-::ffff:192.168.1.2", wantErr: "IPv4-mapped"},
		{in: "::/80", wantErr: "contains IPv4-mapped IPv6 addresses (::ffff:0:0/96)"},
		{in: "::/64", wantErr: "contains IPv4-mapped IPv6 addresses"},
		{in: "::1-::1:0:0:0", wantErr: "contains IPv4-mapped IPv6 addresses"},
		{in: "::fffe:ffff:ffff", want: Range{ip("::fffe:ffff:ffff"), ip("::fffe:ffff:ffff")}},
		{in: "::1:0:0:0/112", want: Range{ip("::1:0:0:0"), ip("::1:0:0:ffff")}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRange(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
				t.Errorf("ParseRange(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"192.168.1.88", "192.168.1.88"},
		{"192.168.1.88/32", "192.168.1.88"},
		{"192.168.1.87 - 192.168.1.97", "192.168.1.87-192.168.1.97"},
		{"198.51.100.0/30", "198.51.100.0-198.51.100.3"},
		{"2001:db8::/126", "2001:db8::-2001:db8::3"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rng(tt.in).String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRangeContains(t *testing.T) {
	tests := []struct {
		r    string
		addr string
		want bool
	}{
		{"192.168.1.87-192.168.1.97", "192.168.1.87", true},
		{"192.168.1.87-192.168.1.97", "192.168.1.97", true},
		{"192.168.1.87-192.168.1.97", "192.168.1.90", true},
		{"192.168.1.87-192.168.1.97", "192.168.1.86", false},
		{"192.168.1.87-192.168.1.97", "192.168.1.98", false},
		{"192.168.1.87-192.168.1.97", "::ffff:192.168.1.90", false},
		{"192.168.1.87-192.168.1.97", "2001:db8::1", false},
		{"2001:db8::/64", "2001:db8::1", true},
		{"2001:db8::/64", "2001:db8:0:1::", false},
		{"2000::/3", "192.168.1.1", false},
		{"0.0.0.0/0", "::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.r+" "+tt.addr, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rng(tt.r).Contains(ip(tt.addr))); diff != "" {
				t.Errorf("Contains mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRangeOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.255", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.10-10.0.0.20", "10.0.0.20-10.0.0.30", true},
		{"10.0.0.10-10.0.0.20", "10.0.0.0-10.0.0.9", false},
		{"10.0.0.10-10.0.0.20", "10.0.0.12-10.0.0.13", true},
		{"10.0.0.0/8", "2000::/3", false},
		{"2001:db8::/64", "2001:db8::/48", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			for _, pair := range [][2]Range{{rng(tt.a), rng(tt.b)}, {rng(tt.b), rng(tt.a)}} {
				if diff := cmp.Diff(tt.want, pair[0].Overlaps(pair[1])); diff != "" {
					t.Errorf("%v.Overlaps(%v) mismatch (-want +got):\n%s", pair[0], pair[1], diff)
				}
			}
		})
	}
}

// FuzzParseRange checks that whatever ParseRange accepts is a well-formed
// Range that survives a round trip through String.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"198.51.100.0/24", "198.51.100.7/24", "192.168.1.87-192.168.1.97",
		" 192.168.1.87 - 192.168.1.97 ", "192.168.1.88", "2001:db8::/64",
		"2001:db8::1-2001:db8::ff", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3.4-::1",
		"0.0.0.0/0", "::/0", "::1.2.3.4", "1.2.3.4/33", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if !r.From.IsValid() || !r.To.IsValid() {
			t.Fatalf("ParseRange(%q) = %#v: invalid address", s, r)
		}
		if r.From.BitLen() != r.To.BitLen() {
			t.Fatalf("ParseRange(%q) = %v: mixed families", s, r)
		}
		if r.To.Less(r.From) {
			t.Fatalf("ParseRange(%q) = %v: From > To", s, r)
		}
		if r.From.Zone() != "" || r.To.Zone() != "" || r.Overlaps(mapped4) {
			t.Fatalf("ParseRange(%q) = %v: zoned or IPv4-mapped", s, r)
		}
		if !r.Contains(r.From) || !r.Contains(r.To) || !r.Overlaps(r) {
			t.Fatalf("ParseRange(%q) = %v: does not contain its own ends", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil {
			t.Fatalf("ParseRange(%q).String() = %q does not parse: %v", s, r.String(), err)
		}
		if back != r {
			t.Fatalf("ParseRange(%q) = %v, but its String() re-parses to %v", s, r, back)
		}
	})
}
