package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/lab"
)

// usage is what a process has used so far.
type usage struct {
	CPU          time.Duration // user + system
	PeakRSS, RSS int64         // VmHWM, VmRSS in bytes
	// RSSAnon and RSSFile split RSS: the heap, stacks and runtime, and
	// mapped files (mostly the binary), which no change to its data can
	// shrink.
	RSSAnon, RSSFile int64
}

// usageOf reads p's usage from /proc. The lab starts programs through `ip
// netns exec`, which execs in place, so p's PID is the program's own; its
// command name is checked all the same (comm is cut to 15 bytes).
func usageOf(p *lab.Process, comm string) (usage, error) {
	pid := strconv.Itoa(p.PID())
	got, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return usage{}, err
	}
	if c := strings.TrimSpace(string(got)); c != comm[:min(len(comm), 15)] {
		return usage{}, fmt.Errorf("process %s is %q, not %s", pid, c, comm)
	}
	return readUsage(pid)
}

// readUsage reads /proc/PID/stat (utime and stime, fields 14 and 15, in
// clock ticks of 1/100 s) and /proc/PID/status (VmHWM, VmRSS).
func readUsage(pid string) (usage, error) {
	var u usage
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

// watched is a process whose CPU quiesce follows.
type watched struct {
	name, comm string
	proc       *lab.Process
}

// quiesce waits until none of ps used more than perSecond of CPU in the
// last second, or at most limit, and returns how long it waited. It
// keeps one phase's trailing work (the controller's status writes, the
// speakers' session reports) out of the next phase's figures.
func quiesce(ps []watched, perSecond, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	last := map[string]time.Duration{}
	for time.Since(start) < limit {
		busy := false
		for _, p := range ps {
			u, err := usageOf(p.proc, p.comm)
			if err != nil {
				return time.Since(start), fmt.Errorf("%s: %w", p.name, err)
			}
			if was, ok := last[p.name]; !ok || u.CPU-was > perSecond {
				busy = true
			}
			last[p.name] = u.CPU
		}
		if !busy {
			return time.Since(start), nil
		}
		time.Sleep(time.Second)
	}
	return time.Since(start), nil
}
