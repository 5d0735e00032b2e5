package election

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line      string
		wantLevel slog.Level
		wantMsg   string
	}{
		{"[ERR] memberlist: Failed to send gossip to 198.51.100.12:7947: boom\n", slog.LevelError, "Failed to send gossip to 198.51.100.12:7947: boom"},
		{"[WARN] memberlist: Refuting a suspect message (from: node-2)\n", slog.LevelWarn, "Refuting a suspect message (from: node-2)"},
		{"[INFO] memberlist: Marking node-3 as failed, suspect timeout reached (1 peer confirmations)\n", slog.LevelInfo, "Marking node-3 as failed, suspect timeout reached (1 peer confirmations)"},
		{"[DEBUG] memberlist: Stream connection from=198.51.100.11:40000\n", slog.LevelDebug, "Stream connection from=198.51.100.11:40000"},
		{"[ERR] Failed to shutdown transport: x\n", slog.LevelError, "Failed to shutdown transport: x"},
		{"no tag at all\n", slog.LevelInfo, "no tag at all"},
		{"[NEW] memberlist: unknown tag\n", slog.LevelInfo, "[NEW] memberlist: unknown tag"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			level, msg := parseLine([]byte(tt.line))
			if level != tt.wantLevel || msg != tt.wantMsg {
				t.Errorf("parseLine(%q) = %v, %q; want %v, %q", tt.line, level, msg, tt.wantLevel, tt.wantMsg)
			}
		})
	}
}

// TestStdLogger checks the bridge end to end through a *log.Logger, as
// memberlist uses it: one record per Printf, at the right level.
func TestStdLogger(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	l := newStdLogger(slog.New(h))
	l.Printf("[DEBUG] memberlist: hidden at info")
	l.Printf("[WARN] memberlist: Was able to connect to %s over TCP but UDP probes failed", "node-2")
	want := []string{`level=WARN msg="Was able to connect to node-2 over TCP but UDP probes failed"`}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}
