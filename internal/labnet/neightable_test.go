package labnet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNeighbourLimits(t *testing.T) {
	tests := []struct {
		hosts int
		want  map[string]int
	}{
		{6, nil},
		{neighbourHosts, nil},
		{neighbourHosts + 1, map[string]int{"gc_thresh2": 512 + 576, "gc_thresh3": 1024 + 2*576}},
		{103, map[string]int{"gc_thresh2": 512 + 10609, "gc_thresh3": 1024 + 2*10609}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, neighbourLimits(tt.hosts)); diff != "" {
			t.Errorf("neighbourLimits(%d) (-want +got):\n%s", tt.hosts, diff)
		}
	}
}
