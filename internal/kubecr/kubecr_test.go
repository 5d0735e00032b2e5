package kubecr

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
)

// TestReader reads the configuration and the last good versions through
// Reader, as the controller and ironlbctl do, from a fake
// controller-runtime client holding the objects.
func TestReader(t *testing.T) {
	const ns = "ironlb-system"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kube.DefaultConfigMapName}, Data: map[string]string{"config": "{}"}}
	lastGood := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kube.LastGoodConfigMapName}, Data: map[string]string{"pool/a": "x"}}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "a"}}
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}
	cmKey := types.NamespacedName{Namespace: ns, Name: kube.DefaultConfigMapName}

	tests := []struct {
		name         string
		objs         []runtime.Object
		wantCM       bool
		wantPools    []string
		wantPeers    []string
		wantLastGood map[string]string
		wantSaved    bool // ReadLastGood returns the ConfigMap itself
	}{
		{"nothing", nil, false, nil, nil, map[string]string{}, false},
		{"everything, in any namespace", []runtime.Object{cm, lastGood, pool, peer}, true, []string{"a"}, []string{"p"}, lastGood.Data, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(Scheme()).WithRuntimeObjects(tt.objs...).Build()
			in, err := kube.ReadInput(t.Context(), Reader(c), cmKey)
			if err != nil {
				t.Fatal(err)
			}
			if got := in.ConfigMap != nil; got != tt.wantCM {
				t.Errorf("ConfigMap read: %v, want %v", got, tt.wantCM)
			}
			var pools, peers []string
			for _, p := range in.Pools {
				pools = append(pools, p.Name)
			}
			for _, p := range in.BGPPeers {
				peers = append(peers, p.Name)
			}
			if diff := cmp.Diff(tt.wantPools, pools); diff != "" {
				t.Errorf("pools (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPeers, peers); diff != "" {
				t.Errorf("BGP peers (-want +got):\n%s", diff)
			}

			data, obj, err := kube.ReadLastGood(t.Context(), Reader(c), ns)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantLastGood, data); diff != "" {
				t.Errorf("last good (-want +got):\n%s", diff)
			}
			if got := obj != nil; got != tt.wantSaved {
				t.Errorf("last good ConfigMap returned: %v, want %v", got, tt.wantSaved)
			}
		})
	}
}

// notAnObject is a runtime.Object that controller-runtime cannot read
// into: no object metadata.
type notAnObject struct{ runtime.Object }

// TestReaderRefusesUntyped checks that Reader returns an error, not a
// panic, for what controller-runtime cannot take.
func TestReaderRefusesUntyped(t *testing.T) {
	r := Reader(fake.NewClientBuilder().WithScheme(Scheme()).Build())
	if err := r.Get(t.Context(), types.NamespacedName{Name: "x"}, notAnObject{}); err == nil {
		t.Error("Get into a non-client.Object: nil error")
	}
	if err := r.List(t.Context(), notAnObject{}); err == nil {
		t.Error("List into a non-client.ObjectList: nil error")
	}
}

// TestScheme checks that the scheme knows both the core types and
// ironlb's.
func TestScheme(t *testing.T) {
	s := Scheme()
	for _, o := range []runtime.Object{&corev1.Service{}, &v1alpha1.IPPool{}, &v1alpha1.BFDProfileList{}} {
		if gvks, _, err := s.ObjectKinds(o); err != nil || len(gvks) == 0 {
			t.Errorf("%T: %v, %v; want a kind", o, gvks, err)
		}
	}
}
