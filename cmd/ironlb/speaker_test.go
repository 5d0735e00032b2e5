//go:build !ironlb_controller

package main

import (
	"os"
	"testing"

	clientfeatures "k8s.io/client-go/features"
)

// fixedGates enables exactly the features it lists.
type fixedGates map[clientfeatures.Feature]bool

func (g fixedGates) Enabled(f clientfeatures.Feature) bool { return g[f] }

// TestListGates checks that the speaker's informers list rather than
// stream unless the operator asks for streaming, and that other features
// are left as client-go has them.
func TestListGates(t *testing.T) {
	under := fixedGates{clientfeatures.WatchListClient: true, clientfeatures.InformerResourceVersion: true}
	for _, tc := range []struct {
		name string
		env  *string // $KUBE_FEATURE_WatchListClient; nil: unset
		want bool
	}{
		{name: "unset: lists", want: false},
		{name: "set: client-go decides", env: new("true"), want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv("KUBE_FEATURE_WatchListClient", *tc.env)
			} else {
				t.Setenv("KUBE_FEATURE_WatchListClient", "") // restored after the test
				os.Unsetenv("KUBE_FEATURE_WatchListClient")
			}
			g := listGates{under}
			if got := g.Enabled(clientfeatures.WatchListClient); got != tc.want {
				t.Errorf("WatchListClient enabled %v, want %v", got, tc.want)
			}
			if !g.Enabled(clientfeatures.InformerResourceVersion) {
				t.Error("another feature was turned off")
			}
		})
	}
}
