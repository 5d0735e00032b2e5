package speaker

import (
	"testing"
	"time"
)

func TestIsDegraded(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	three := map[string]bool{"a": true, "b": true, "c": true}
	cases := []struct {
		name    string
		known   map[string]bool
		reg     map[string]bool
		read    time.Time
		apiLost bool
		want    bool
	}{
		{"every speaker runs, none a majority", three, map[string]bool{"a": false, "b": false, "c": false}, now, false, true},
		{"one stopped cleanly: two of three still run", three, map[string]bool{"a": false, "b": false}, now, false, true},
		{"one says it is of a majority: cut off alone, stay silent", three, map[string]bool{"a": false, "b": true, "c": true}, now, false, false},
		{"a majority unknown to this speaker still counts", three, map[string]bool{"a": false, "b": false, "c": false, "d": true}, now, false, false},
		{"only this speaker runs: the others may answer without the API server", three, map[string]bool{"a": false}, now, false, false},
		{"the API server is lost", three, map[string]bool{"a": false, "b": false, "c": false}, now, true, false},
		{"the read is stale", three, map[string]bool{"a": false, "b": false, "c": false}, now.Add(-degradedStale - time.Millisecond), false, false},
		{"never read", three, map[string]bool{"a": false, "b": false, "c": false}, time.Time{}, false, false},
		{"Leases of nodes not known do not make a majority", three, map[string]bool{"a": false, "x": false, "y": false}, now, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := isDegraded(c.known, c.reg, c.read, now, c.apiLost); got != c.want {
				t.Errorf("isDegraded = %v, want %v", got, c.want)
			}
		})
	}
}
