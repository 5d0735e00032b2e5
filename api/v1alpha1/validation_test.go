package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/config"
)

// These tests apply objects to a real kube-apiserver with the generated
// CRDs installed, so they check the OpenAPI rules as users meet them at
// `kubectl apply`. The rules OpenAPI cannot state are not in the CRDs (see
// the package doc): for those the API server accepts the object, and
// config.Build must report it, naming the field, on the object's Valid
// condition. internal/config's own tests cover the rest of its messages.

var env *apiservertest.Env

func TestMain(m *testing.M) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	apiservertest.Main(m, &env, apiservertest.Options{Scheme: s})
}

var seq int

func name() string {
	seq++
	return fmt.Sprintf("t%d", seq)
}

func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

// create applies obj and checks the API server's answer: accepted when
// wantErr is empty, else rejected with a message containing wantErr.
func create(t *testing.T, obj client.Object, wantErr string) {
	t.Helper()
	obj.SetName(name())
	err := env.Client.Create(context.Background(), obj)
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("rejected: %v", err)
	case wantErr != "" && err == nil:
		t.Errorf("accepted, want an error containing %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
}

// goCheck builds a configuration of obj alone, as the controller does, and
// checks what it reports: valid when wantField is empty, else a problem
// with that field path whose message contains wantMsg.
func goCheck(t *testing.T, obj client.Object, wantField, wantMsg string) {
	t.Helper()
	var in config.Input
	switch o := obj.(type) {
	case *v1alpha1.IPPool:
		in.Pools = []v1alpha1.IPPool{*o}
	case *v1alpha1.BGPPeer:
		in.BGPPeers = []v1alpha1.BGPPeer{*o}
	case *v1alpha1.BGPAnnouncement:
		in.BGPAnnouncements = []v1alpha1.BGPAnnouncement{*o}
	case *v1alpha1.L2Announcement:
		in.L2 = []v1alpha1.L2Announcement{*o}
	case *v1alpha1.BFDProfile:
		in.BFDProfiles = []v1alpha1.BFDProfile{*o}
	default:
		t.Fatalf("goCheck: unexpected %T", obj)
	}
	_, problems := config.Build(in, nil)
	var got []string
	for _, p := range problems {
		if p.Reason != v1alpha1.ReasonInvalid {
			continue // references to objects this test does not create
		}
		if wantField != "" && p.Field == wantField && strings.Contains(p.Message, wantMsg) {
			return
		}
		got = append(got, p.Field+": "+p.Message)
	}
	if wantField != "" || len(got) > 0 {
		t.Errorf("config.Build reported %q, want %s: ...%s...", got, wantField, wantMsg)
	}
}

func TestIPPoolValidation(t *testing.T) {
	tests := []struct {
		name    string
		addrs   []string
		wantErr string // from the API server
		// wantField and wantMsg: what config.Build reports of an object
		// the API server accepts.
		wantField, wantMsg string
	}{
		{"scenario range", []string{"192.168.1.87-192.168.1.97"}, "", "", ""},
		{"cidr, address, v6, spaces", []string{"198.51.100.0/24", "203.0.113.7", "2001:db8::/64", "2001:db8:1::1 - 2001:db8:1::9"}, "", "", ""},
		{"none", nil, "spec.addresses: Required value", "", ""},
		{"garbage", []string{"192.168.1.300"}, "", "spec.addresses[0]", "192.168.1.300"},
		{"mixed families", []string{"198.51.100.1-2001:db8::1"}, "", "spec.addresses[0]", "198.51.100.1-2001:db8::1"},
		{"mapped", []string{"::ffff:198.51.100.1"}, "", "spec.addresses[0]", "IPv4-mapped IPv6 addresses are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1alpha1.IPPool{Spec: v1alpha1.IPPoolSpec{Addresses: tt.addrs}}
			create(t, p, tt.wantErr)
			if tt.wantErr == "" {
				goCheck(t, p, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestBGPPeerValidation(t *testing.T) {
	tests := []struct {
		name               string
		edit               func(*v1alpha1.BGPPeerSpec)
		wantErr            string // from the API server
		wantField, wantMsg string // from config.Build, when the API server accepts
	}{
		{"minimal", func(*v1alpha1.BGPPeerSpec) {}, "", "", ""},
		{"4-byte ASN", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 4200000000 }, "", "", ""},
		{"timers", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("9s"), dur("3s") }, "", "", ""},
		{"hold 0", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("0s"), dur("0s") }, "", "", ""},
		{"hold 2s", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur("2s") }, "", "spec.holdTime", "must be 0 (no keepalives) or from 3s to 65535s"},
		{"keepalive not shorter", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime, s.KeepaliveTime = dur("9s"), dur("9s") }, "", "spec.keepaliveTime", "must be at least 1s and shorter than holdTime"},
		{"keepalive beyond default hold", func(s *v1alpha1.BGPPeerSpec) { s.KeepaliveTime = dur("2m") }, "", "spec.keepaliveTime", "must be at least 1s"},
		{"bad address", func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "198.51.100" }, "", "spec.peerAddress", "198.51.100"},
		{"v6 router id", func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "2001:db8::1" }, "", "spec.routerID", "must be a non-zero IPv4 address"},
		{"families differ", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::2" }, "", "spec.sourceAddress", "are of different IP families"},
		{"multihop iBGP", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.EBGPMultiHop = s.MyASN, true }, "", "spec.ebgpMultiHop", "only applies to eBGP sessions"},
		{"secret without namespace", func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecret = &corev1.SecretReference{Name: "tor"} }, "", "spec.passwordSecret", "needs both name and namespace"},
		{"ASN 0", func(s *v1alpha1.BGPPeerSpec) { s.MyASN = 0 }, "spec.myASN", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &v1alpha1.BGPPeer{Spec: v1alpha1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.51.100.1"}}
			tt.edit(&p.Spec)
			create(t, p, tt.wantErr)
			if tt.wantErr == "" {
				goCheck(t, p, tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestAnnouncementAndBFDValidation(t *testing.T) {
	tests := []struct {
		name               string
		obj                client.Object
		wantErr            string // from the API server
		wantField, wantMsg string // from config.Build, when the API server accepts
	}{
		{"communities", &v1alpha1.BGPAnnouncement{Spec: v1alpha1.BGPAnnouncementSpec{Communities: []string{"65535:65282", "no-export", "large:64500:1:2"}}}, "", "", ""},
		{"community too big", &v1alpha1.BGPAnnouncement{Spec: v1alpha1.BGPAnnouncementSpec{Communities: []string{"65536:1"}}}, "", "spec.communities[0]", "65536:1"},
		{"aggregation 33", &v1alpha1.BGPAnnouncement{Spec: v1alpha1.BGPAnnouncementSpec{AggregationLength: new(int32(33))}}, "spec.aggregationLength", "", ""},
		{"interfaces", &v1alpha1.L2Announcement{Spec: v1alpha1.L2AnnouncementSpec{Interfaces: []string{"eth0", "bond0.100"}}}, "", "", ""},
		{"bad interface", &v1alpha1.L2Announcement{Spec: v1alpha1.L2AnnouncementSpec{Interfaces: []string{"eth/0"}}}, "spec.interfaces[0]", "", ""},
		{"dot interface", &v1alpha1.L2Announcement{Spec: v1alpha1.L2AnnouncementSpec{Interfaces: []string{".."}}}, "", "spec.interfaces[0]", "is not a network interface name"},
		{"bfd", &v1alpha1.BFDProfile{Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: new(uint32(100)), DetectMultiplier: new(uint32(5))}}, "", "", ""},
		{"bfd multiplier 1", &v1alpha1.BFDProfile{Spec: v1alpha1.BFDProfileSpec{DetectMultiplier: new(uint32(1))}}, "spec.detectMultiplier", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			create(t, tt.obj, tt.wantErr)
			if tt.wantErr == "" {
				goCheck(t, tt.obj, tt.wantField, tt.wantMsg)
			}
		})
	}
}

// TestDefaults checks what the API server fills in, which internal/config
// also assumes when a field is missing (objects written before a default
// existed, or by the legacy ConfigMap).
// TestDefaults checks that the API server fills in the CRDs' defaults as
// the constants in defaults.go state them, which internal/config and
// ironlbctl convert use: the markers on the types cannot name a constant.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name()}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.0/28"}}}
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name()}, Spec: v1alpha1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.51.100.1"}}
	ann := &v1alpha1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name()}}
	for _, o := range []client.Object{pool, peer, ann} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(new(v1alpha1.DefaultAutoAssign), pool.Spec.AutoAssign); diff != "" {
		t.Errorf("IPPool autoAssign (-want +got):\n%s", diff)
	}
	if peer.Spec.PeerPort != v1alpha1.DefaultPeerPort {
		t.Errorf("BGPPeer peerPort = %d, want %d", peer.Spec.PeerPort, v1alpha1.DefaultPeerPort)
	}
	if diff := cmp.Diff([]*int32{new(int32(v1alpha1.DefaultAggregationLength)), new(int32(v1alpha1.DefaultAggregationLengthV6))}, []*int32{ann.Spec.AggregationLength, ann.Spec.AggregationLengthV6}); diff != "" {
		t.Errorf("BGPAnnouncement aggregation lengths (-want +got):\n%s", diff)
	}
}

// TestStatusRoundTrip writes an IPPool status as the controller will,
// including an IPv6 total no integer type holds.
func TestStatusRoundTrip(t *testing.T) {
	ctx := context.Background()
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name()}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"198.51.100.16/28", "2001:db8::/64"}}}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Status = v1alpha1.IPPoolStatus{
		ObservedGeneration: pool.Generation,
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
			Message: "in force", LastTransitionTime: metav1.Now(), ObservedGeneration: pool.Generation}},
		IPv4: &v1alpha1.AddressCounts{Total: "16", Used: 3, Free: "13"},
		IPv6: &v1alpha1.AddressCounts{Total: "18446744073709551616", Used: 1, Free: "18446744073709551615"},
	}
	if err := env.Client.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.IPPool
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pool.Status.IPv6, got.Status.IPv6); diff != "" {
		t.Errorf("status.ipv6 (-want +got):\n%s", diff)
	}
}
