// Package procusage reads what a process has used so far from /proc: CPU
// and resident memory, for the lab benchmarks' figures.
package procusage

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
)

// Usage is what a process has used so far.
type Usage struct {
	CPU          time.Duration // user + system
	PeakRSS, RSS int64         // VmHWM, VmRSS in bytes
	// RSSAnon and RSSFile split RSS: the heap, stacks and runtime, and
	// mapped files (mostly the binary), which no change to its data can
	// shrink.
	RSSAnon, RSSFile int64
}

// Of reads p's usage. The lab starts programs through `ip netns exec`,
// which execs in place, so p's PID is the program's own; its command name
// is checked against comm all the same (the kernel cuts it to 15 bytes).
func Of(p *labnet.Process, comm string) (Usage, error) {
	pid := strconv.Itoa(p.PID())
	got, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return Usage{}, err
	}
	if c := strings.TrimSpace(string(got)); c != comm[:min(len(comm), 15)] {
		return Usage{}, fmt.Errorf("process %s is %q, not %s", pid, c, comm)
	}
	return Read(pid)
}

// Read reads /proc/PID/stat (utime and stime, fields 14 and 15, in clock
// ticks of 1/100 s) and /proc/PID/status (VmHWM, VmRSS, RssAnon,
// RssFile). pid may be "self".
func Read(pid string) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return u, err
	}
	// The command name, in parentheses, may hold spaces: count the
	// fields from after it, where field 3 (state) comes first.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return u, fmt.Errorf("/proc/%s/stat: %q", pid, stat)
	}
	for _, f := range []string{fields[utime], fields[stime]} {
		ticks, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return u, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		u.CPU += time.Duration(ticks) * 10 * time.Millisecond
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			u.PeakRSS = kb * 1024
		} else if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			u.RSS = kb * 1024
		} else if _, err := fmt.Sscanf(line, "RssAnon: %d kB", &kb); err == nil {
			u.RSSAnon = kb * 1024
		} else if _, err := fmt.Sscanf(line, "RssFile: %d kB", &kb); err == nil {
			u.RSSFile = kb * 1024
		}
	}
	if u.PeakRSS == 0 {
		return u, fmt.Errorf("/proc/%s/status: no VmHWM", pid)
	}
	return u, nil
}
