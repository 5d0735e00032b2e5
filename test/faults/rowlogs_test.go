package faults

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRowLogs(t *testing.T) {
	dir := t.TempDir()
	log := `time=2026-12-07T07:34:00.000Z level=INFO msg="member failed" node=node-2 component=members member=node-1
time=2026-12-07T07:35:10.637Z level=DEBUG msg="kube-proxy health check failed" node=node-2 inARow=36
time=2026-12-07T07:35:10.700Z level=DEBUG msg="heartbeat late" node=node-2 component=members member=node-1 gap=120ms
time=2026-12-07T07:35:10.750Z level=DEBUG msg="Failed UDP ping: node-1 (timeout reached)" node=node-2 component=members component=memberlist
time=2026-12-07T07:35:10.800Z level=INFO msg="Initiating push/pull sync with: node-3 198.51.100.13:7946" node=node-2 component=members
time=2026-12-07T07:35:11.000Z level=INFO msg="owned addresses changed" node=node-2
time=2026-12-07T07:35:11.100Z level=WARN msg="cut off from the other speakers" node=node-2
time=2026-12-07T07:35:11.200Z level=INFO msg="member silent: no heartbeat" node=node-2 component=members member=node-1
not a log line
`
	if err := os.WriteFile(filepath.Join(dir, "node-2-ironlb-speaker-5.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cp-etcd-1.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := rowLogs(dir, time.Date(2026, 12, 7, 7, 35, 0, 0, time.UTC))
	want := map[string][]string{"node-2-ironlb-speaker-5.log": {
		`time=2026-12-07T07:35:10.700Z level=DEBUG msg="heartbeat late" node=node-2 component=members member=node-1 gap=120ms`,
		`time=2026-12-07T07:35:11.000Z level=INFO msg="owned addresses changed" node=node-2`,
		`time=2026-12-07T07:35:11.100Z level=WARN msg="cut off from the other speakers" node=node-2`,
		`time=2026-12-07T07:35:11.200Z level=INFO msg="member silent: no heartbeat" node=node-2 component=members member=node-1`,
	}}
	if len(got) != 1 || !slices.Equal(got["node-2-ironlb-speaker-5.log"], want["node-2-ironlb-speaker-5.log"]) {
		t.Errorf("rowLogs = %q, want %q", got, want)
	}
}
