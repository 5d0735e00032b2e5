package labkube

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// cgroupRoot is a node's kubelet cgroupRoot: one directory of the same
// name in every mounted cgroup hierarchy, under which the kubelet puts
// kubepods and every container of the node. The kubelet's cgroupfs
// driver needs the directory to exist in every v1 hierarchy; in cpuset it
// must also hold CPUs and memory nodes, copied from the parent, or no task
// could join it.
type cgroupRoot struct {
	// name is the path below each hierarchy's root, "/ironlb-lab-…".
	name string
	// mounts are the mount points of the hierarchies it was created in.
	mounts []string
}

// cgroupMounts lists the mount points of the mounted cgroup hierarchies
// (v1 and, on a hybrid host, the v2 one), from /proc/self/mountinfo.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(postFields) < 1 {
			continue
		}
		if fs := postFields[0]; fs == "cgroup" || fs == "cgroup2" {
			mounts = append(mounts, unescapeMount(fields[4]))
		}
	}
	return mounts, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// createCgroupRoot creates name in every mounted hierarchy. On error it
// removes what it created.
func createCgroupRoot(name string) (_ *cgroupRoot, err error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	if len(mounts) == 0 {
		return nil, errors.New("no cgroup hierarchy is mounted")
	}
	r := &cgroupRoot{name: name}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.remove())
		}
	}()
	for _, m := range mounts {
		dir := filepath.Join(m, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		r.mounts = append(r.mounts, m)
		// cpuset.cpus and cpuset.mems start empty in a new v1 cpuset.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(m, f))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0); err != nil {
				return nil, fmt.Errorf("copy %s into %s: %w", f, dir, err)
			}
		}
	}
	return r, nil
}

// pids lists every process in the root or below it, in any hierarchy.
func (r *cgroupRoot) pids() []int {
	seen := map[int]bool{}
	for _, m := range r.mounts {
		filepath.WalkDir(filepath.Join(m, r.name), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	return slices.Sorted(maps.Keys(seen))
}

// kill sends SIGKILL to every process in the root, by PID. The processes
// are the node's containers: the kubelet put them there and nothing else
// can have.
func (r *cgroupRoot) kill() {
	for _, pid := range r.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// remove deletes the root and every cgroup below it, deepest first, in
// every hierarchy. A cgroup still holding a process cannot be removed:
// kill them first (and wait for them to be reaped).
func (r *cgroupRoot) remove() error {
	var errs []error
	for _, m := range r.mounts {
		var dirs []string
		filepath.WalkDir(filepath.Join(m, r.name), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for _, d := range slices.Backward(dirs) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
