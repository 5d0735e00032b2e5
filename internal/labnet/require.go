package labnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Linux capability numbers (capability.h).
const (
	capNetAdmin = 12 // links, addresses, routes, sysctls
	capNetRaw   = 13 // ARP, NDP and ping sockets
	capSysAdmin = 21 // mounting namespaces, setns
)

// Require skips the test, saying why, unless this process can build a lab:
// Linux, the capabilities above (root has them all), and iproute2's ip. CI
// runs as root, so there nothing skips.
func Require(t testing.TB) {
	t.Helper()
	if reason := missing(); reason != "" {
		t.Skipf("lab: %s; run the lab tests as root (sudo go test), as CI does", reason)
	}
}

// missing says what keeps this process from building a lab, or "".
func missing() string {
	if runtime.GOOS != "linux" {
		return "needs Linux network namespaces, this is " + runtime.GOOS
	}
	caps, err := effectiveCaps()
	if err != nil {
		return err.Error()
	}
	var lack []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capNetRaw, "CAP_NET_RAW"}, {capSysAdmin, "CAP_SYS_ADMIN"}} {
		if caps&(1<<c.bit) == 0 {
			lack = append(lack, c.name)
		}
	}
	if len(lack) > 0 {
		return fmt.Sprintf("needs %s to create and enter network namespaces (uid %d lacks them)", strings.Join(lack, ", "), os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's ip"
	}
	return ""
}

// effectiveCaps reads this process's effective capability set.
func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("cannot read capabilities: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot parse capabilities %q: %w", v, err)
			}
			return caps, nil
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// NewForTest is New for tests: it skips the test if the lab cannot be built
// (see Require), fails it if New fails, and closes the lab when the test and
// its subtests end (cleanups registered later run first). Logs go to the
// test's artifact directory unless opts.Dir is set, so `go test -artifacts`
// keeps them; if the test failed, the end of each log is printed too.
func NewForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	Require(t)
	if opts.Dir == "" {
		opts.Dir = t.ArtifactDir()
	}
	l, err := New(opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			LogTails(t, l.Dir())
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return l
}

// LogTails prints the last few kilobytes of each log in dir to t.
func LogTails(t testing.TB, dir string) {
	const tail = 4 << 10
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if len(b) > tail {
			b = b[len(b)-tail:]
		}
		t.Logf("lab log %s:\n%s", p, b)
	}
}
