package v1alpha1_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// TestIPReservationValidation: what the CRD schema refuses at `kubectl
// apply`, and what config.Build reports of what it accepts, with a pool
// holding 10.0.0.0/24 in force.
func TestIPReservationValidation(t *testing.T) {
	svc := &v1alpha1.ReservedService{Namespace: "shop", Name: "web"}
	tests := []struct {
		name    string
		spec    v1alpha1.IPReservationSpec
		wantErr string // from the API server
		// wantField and wantMsg: what config.Build reports of an object
		// the API server accepts.
		wantField, wantMsg string
	}{
		{"one address", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.8"}, Service: svc}, "", "", ""},
		{"by selector", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.9"}, ServiceSelector: &v1alpha1.ReservedServiceSelector{
			Namespace: "shop", Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}, "", "", ""},
		{"none", v1alpha1.IPReservationSpec{Service: svc}, "spec.addresses: Required value", "", ""},
		{"three", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, Service: svc}, "must have at most 2 items", "", ""},
		{"no service name", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.1"}, Service: &v1alpha1.ReservedService{Namespace: "shop"}}, "spec.service.name in body should be at least 1 chars long", "", ""},
		{"two of a family", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.1", "10.0.0.2"}, Service: svc}, "", "spec.addresses[1]", "a second IPv4 address"},
		{"not an address", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.0/24"}, Service: svc}, "", "spec.addresses[0]", "is not an IP address"},
		{"outside the pools", v1alpha1.IPReservationSpec{Addresses: []string{"10.9.0.1"}, Service: svc}, "", "spec.addresses[0]", "is in no pool"},
		{"for nobody", v1alpha1.IPReservationSpec{Addresses: []string{"10.0.0.1"}}, "", "spec", "names no Service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &v1alpha1.IPReservation{Spec: tt.spec}
			create(t, r, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			pool := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{"10.0.0.0/24"}}}
			_, problems := config.Build(config.Input{Pools: []v1alpha1.IPPool{pool}, Reservations: []v1alpha1.IPReservation{*r}}, nil)
			var got []string
			for _, p := range problems {
				if tt.wantField != "" && p.Field == tt.wantField && strings.Contains(p.Message, tt.wantMsg) {
					return
				}
				got = append(got, p.Field+": "+p.Message)
			}
			if tt.wantField != "" || len(got) > 0 {
				t.Errorf("config.Build reported %q, want %s: ...%s...", got, tt.wantField, tt.wantMsg)
			}
		})
	}
}
