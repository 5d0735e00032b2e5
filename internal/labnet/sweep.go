package labnet

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Sweep deletes what crashed labs left behind: namespaces named with the lab
// prefix whose marker file under /run/ironlb-lab names an owning process
// that is gone (checked by PID and start time, so a recycled PID does not
// count as alive). Processes still running inside such a namespace are
// killed by PID; then the namespaces, the marker and the log directory (if
// the lab created it) are removed. It returns the namespaces it deleted.
//
// A lab namespace without a marker is left alone: labs write their marker
// before creating any namespace, so it is not one of ours. Labs of live
// processes, including other labs of this process, are never touched, which
// makes Sweep safe to run while other test binaries use their labs; New runs
// it on every call.
func Sweep() ([]string, error) {
	bySuffix := map[string][]string{}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	for _, e := range entries {
		if suffix, ok := parseNSName(e.Name()); ok {
			bySuffix[suffix] = append(bySuffix[suffix], e.Name())
		}
	}
	// Markers whose namespaces are all gone (a crash during Close) are
	// swept too.
	markers, err := os.ReadDir(markerDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list markers: %w", err)
	}
	for _, e := range markers {
		if isSuffix(e.Name()) {
			if _, ok := bySuffix[e.Name()]; !ok {
				bySuffix[e.Name()] = nil
			}
		}
	}

	var removed []string
	var errs []error
	for _, suffix := range slices.Sorted(maps.Keys(bySuffix)) {
		m, err := readMarker(suffix)
		if err != nil || m.ownerAlive() {
			continue
		}
		names := bySuffix[suffix]
		if err := sweepLab(names); err != nil {
			errs = append(errs, fmt.Errorf("sweep lab %s: %w", suffix, err))
			continue
		}
		removed = append(removed, names...)
		if m.OwnsDir && m.Dir != "" {
			if err := os.RemoveAll(m.Dir); err != nil {
				errs = append(errs, fmt.Errorf("sweep lab %s: %w", suffix, err))
			}
		}
		if err := os.RemoveAll(runDirPath(suffix)); err != nil {
			errs = append(errs, fmt.Errorf("sweep lab %s: %w", suffix, err))
		}
		if err := os.Remove(markerPath(suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("sweep lab %s: %w", suffix, err))
		}
	}
	return removed, errors.Join(errs...)
}

// sweepLab kills the processes left in the namespaces names and deletes the
// namespaces.
func sweepLab(names []string) error {
	ids := map[nsID]bool{}
	for _, name := range names {
		if id, err := statNS(filepath.Join(netnsDir, name)); err == nil {
			ids[id] = true
		}
	}
	if len(ids) > 0 {
		pids, err := pidsInNamespaces(ids)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill leftover process %d: %w", pid, err)
			}
		}
	}
	var errs []error
	for _, name := range names {
		if err := delNetns(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
