package apiclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// newScheme returns the scheme the speaker passes to New.
func newScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, discoveryv1.AddToScheme, coordinationv1.AddToScheme,
		eventsv1.AddToScheme, v1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestResource(t *testing.T) {
	for _, tc := range []struct {
		gvk            schema.GroupVersionKind
		wantResource   string
		wantNamespaced bool
	}{
		{corev1.SchemeGroupVersion.WithKind("Node"), "nodes", false},
		{corev1.SchemeGroupVersion.WithKind("Namespace"), "namespaces", false},
		{corev1.SchemeGroupVersion.WithKind("Service"), "services", true},
		{corev1.SchemeGroupVersion.WithKind("Endpoints"), "endpoints", true},
		{corev1.SchemeGroupVersion.WithKind("ConfigMap"), "configmaps", true},
		{discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"), "endpointslices", true},
		{coordinationv1.SchemeGroupVersion.WithKind("Lease"), "leases", true},
		{eventsv1.SchemeGroupVersion.WithKind("Event"), "events", true},
		{v1alpha1.GroupVersion.WithKind("IPPool"), "ippools", false},
		{v1alpha1.GroupVersion.WithKind("IPReservation"), "ipreservations", false},
		{v1alpha1.GroupVersion.WithKind("L2Announcement"), "l2announcements", false},
		{v1alpha1.GroupVersion.WithKind("BGPPeer"), "bgppeers", false},
		{v1alpha1.GroupVersion.WithKind("BGPAnnouncement"), "bgpannouncements", false},
		{v1alpha1.GroupVersion.WithKind("BFDProfile"), "bfdprofiles", false},
		{v1alpha1.GroupVersion.WithKind("ServiceAnnouncement"), "serviceannouncements", true},
		{v1alpha1.GroupVersion.WithKind("BGPSessionState"), "bgpsessionstates", true},
	} {
		t.Run(tc.gvk.Kind, func(t *testing.T) {
			gvr, namespaced := resource(tc.gvk)
			if gvr.Resource != tc.wantResource || namespaced != tc.wantNamespaced {
				t.Errorf("resource(%s) = %s, namespaced %v; want %s, %v", tc.gvk, gvr.Resource, namespaced, tc.wantResource, tc.wantNamespaced)
			}
			if gvr.GroupVersion() != tc.gvk.GroupVersion() {
				t.Errorf("resource(%s) is in %s", tc.gvk, gvr.GroupVersion())
			}
		})
	}
}

// TestResourceMatchesCRDs checks the scope table against the CRDs the API
// server is given, so that a kind changing scope cannot be missed here.
func TestResourceMatchesCRDs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var crd struct {
				Spec struct {
					Group string `json:"group"`
					Names struct {
						Kind   string `json:"kind"`
						Plural string `json:"plural"`
					} `json:"names"`
					Scope    string `json:"scope"`
					Versions []struct {
						Name string `json:"name"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(data, &crd); err != nil {
				t.Fatal(err)
			}
			for _, v := range crd.Spec.Versions {
				gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
				gvr, namespaced := resource(gvk)
				if gvr.Resource != crd.Spec.Names.Plural {
					t.Errorf("resource(%s) = %s, the CRD says %s", gvk, gvr.Resource, crd.Spec.Names.Plural)
				}
				if want := crd.Spec.Scope == "Namespaced"; namespaced != want {
					t.Errorf("resource(%s): namespaced %v, the CRD says scope %s", gvk, namespaced, crd.Spec.Scope)
				}
			}
		})
	}
}

func TestHasProtobuf(t *testing.T) {
	s := newScheme(t)
	for _, tc := range []struct {
		gv   schema.GroupVersion
		want bool
	}{
		{corev1.SchemeGroupVersion, true},
		{discoveryv1.SchemeGroupVersion, true},
		{coordinationv1.SchemeGroupVersion, true},
		{eventsv1.SchemeGroupVersion, true},
		{v1alpha1.GroupVersion, false},                             // a CRD: JSON only
		{schema.GroupVersion{Group: "apps", Version: "v1"}, false}, // not in the scheme
	} {
		t.Run(tc.gv.String(), func(t *testing.T) {
			if got := hasProtobuf(s, tc.gv); got != tc.want {
				t.Errorf("hasProtobuf(%s) = %v, want %v", tc.gv, got, tc.want)
			}
		})
	}
}

func TestListKind(t *testing.T) {
	s := newScheme(t)
	for _, tc := range []struct {
		name     string
		list     runtime.Object
		wantItem schema.GroupVersionKind
		wantErr  string
	}{
		{"core", &corev1.NodeList{}, corev1.SchemeGroupVersion.WithKind("Node"), ""},
		{"crd", &v1alpha1.IPPoolList{}, v1alpha1.GroupVersion.WithKind("IPPool"), ""},
		{"not a list", &corev1.Node{}, schema.GroupVersionKind{}, "not a list kind"},
		{"bare List", &corev1.List{}, schema.GroupVersionKind{}, "not a list kind"},
		{"not in the scheme", &appsv1.DeploymentList{}, schema.GroupVersionKind{}, "no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, item, err := listKind(s, tc.list)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("listKind: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantItem, item); diff != "" {
				t.Errorf("item kind (-want +got):\n%s", diff)
			}
		})
	}
}
