package faults

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// rowLogLines are the most lines rowLogs returns of one log.
const rowLogLines = 150

// rowLogs returns, for each speaker log in dir, its lines stamped from
// since on that say what the speaker concluded or that warn: the
// evidence for a row that failed. The lab's own tails (labnet.LogTails)
// show the end of each log, which is the end of the whole suite, and a
// speaker's log at debug level is mostly its health checks.
func rowLogs(dir string, since time.Time) map[string][]string {
	out := map[string][]string{}
	paths, _ := filepath.Glob(filepath.Join(dir, "node-*-ironlb-speaker-*.log"))
	for _, p := range paths {
		if lines := logLinesSince(p, since); len(lines) > 0 {
			out[filepath.Base(p)] = lines
		}
	}
	return out
}

// logLinesSince returns the telling lines (see rowLogs) of the log at p
// stamped from since on, at most rowLogLines of them, the last ones.
func logLinesSince(p string, since time.Time) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		stamp, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if !ok || !telling(rest) {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, stamp); err != nil || at.Before(since) {
			continue
		}
		out = append(out, line)
	}
	return out[max(0, len(out)-rowLogLines):]
}

// telling reports whether a log line (after its time stamp) says what
// the speaker concluded, or warns: every line but the debug ones, except
// the heartbeats' lateness and the changes of the addresses a node
// answers for (which say when a dark stretch began and ended); every
// warning and error.
func telling(s string) bool {
	switch {
	case strings.Contains(s, "Initiating push/pull sync"):
		return false
	case strings.HasPrefix(s, "level=DEBUG"):
		return strings.Contains(s, `msg="heartbeat late"`) || strings.Contains(s, `msg="heartbeat tick late"`) ||
			strings.Contains(s, `msg="owned addresses changed"`)
	}
	return true
}
