package labnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// markerDir holds one file per live lab, named by its suffix. /run is a
// tmpfs, so markers vanish on reboot together with the namespaces they
// describe.
const markerDir = "/run/ironlb-lab"

// marker records who owns a lab's namespaces, so Sweep can tell a lab whose
// process crashed from one that is still running.
type marker struct {
	// PID is the process that created the lab.
	PID int `json:"pid"`
	// Start is that process's start time (field 22 of /proc/PID/stat), so
	// a recycled PID is not mistaken for the owner.
	Start uint64 `json:"start"`
	// Dir is the lab's directory for logs; removed by Sweep only if OwnsDir.
	Dir     string `json:"dir,omitempty"`
	OwnsDir bool   `json:"ownsDir,omitempty"`
}

func markerPath(suffix string) string { return filepath.Join(markerDir, suffix) }

// reserveMarker picks a fresh suffix and creates its marker file with
// O_EXCL, which is what makes the suffix unique among labs on this machine.
// It must run before any namespace is created, so that a lab namespace
// without a marker is never one of ours.
func reserveMarker() (string, marker, error) {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return "", marker{}, fmt.Errorf("create marker directory: %w", err)
	}
	pid := os.Getpid()
	start, err := procStartTime(pid)
	if err != nil {
		return "", marker{}, err
	}
	m := marker{PID: pid, Start: start}
	for range 16 {
		suffix, err := newSuffix()
		if err != nil {
			return "", marker{}, err
		}
		if _, err := os.Stat(filepath.Join(netnsDir, nsName(suffix, switchHost))); err == nil {
			continue // a leftover of an unswept lab holds this suffix
		}
		f, err := os.OpenFile(markerPath(suffix), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", marker{}, fmt.Errorf("create marker: %w", err)
		}
		err = json.NewEncoder(f).Encode(m)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(markerPath(suffix))
			return "", marker{}, fmt.Errorf("write marker: %w", err)
		}
		return suffix, m, nil
	}
	return "", marker{}, errors.New("no free lab suffix after 16 tries")
}

// writeMarker replaces the marker of suffix with m.
func writeMarker(suffix string, m marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode marker: %w", err)
	}
	if err := os.WriteFile(markerPath(suffix), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	return nil
}

// readMarker reads the marker of suffix.
func readMarker(suffix string) (marker, error) {
	b, err := os.ReadFile(markerPath(suffix))
	if err != nil {
		return marker{}, fmt.Errorf("read marker: %w", err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return marker{}, fmt.Errorf("parse marker %s: %w", markerPath(suffix), err)
	}
	return m, nil
}

// ownerAlive reports whether the process that wrote m still runs: same PID,
// same start time, and not a zombie (a killed test binary whose parent has
// not reaped it yet is dead for our purposes).
func (m marker) ownerAlive() bool {
	st, err := readProcStat(m.PID)
	return err == nil && st.start == m.Start && st.state != "Z" && st.state != "X"
}

// procStat is what the lab reads from /proc/PID/stat (proc(5)).
type procStat struct {
	state string // field 3
	start uint64 // field 22, clock ticks since boot
}

// procStartTime returns the start time of process pid.
func procStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	return st.start, err
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("read process %d stat: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may contain spaces
	// and parentheses; the fields after the last ')' are plain.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("process %d stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3, the state
	if len(fields) <= startField {
		return procStat{}, fmt.Errorf("process %d stat: %d fields", pid, len(fields)+2)
	}
	start, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("process %d start time: %w", pid, err)
	}
	return procStat{state: fields[0], start: start}, nil
}
