package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The demo's output: a heading per step, lines of its own indented by
// three spaces, command output by five, and progress lines for the steps
// that take a while ("starting the control plane ... done in 4.1 s").

func heading(title string) { fmt.Printf("\n== %s\n", title) }

func say(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// indent prints text, every line indented as command output.
func indent(text string) {
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == "" {
			fmt.Println()
			continue
		}
		fmt.Print("     " + line)
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		fmt.Println()
	}
}

// seconds rounds a duration for people: "4.1 s", "0.35 s".
func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// begin opens a progress line; end closes it with the time it took.
func (d *demo) begin(what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.muted {
		return
	}
	fmt.Printf("   %s ... ", what)
	d.stepStart = time.Now()
}

func (d *demo) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stepStart.IsZero() {
		return
	}
	fmt.Printf("done in %s\n", seconds(time.Since(d.stepStart)))
	d.stepStart = time.Time{}
}

// abort closes an open progress line with why it did not finish.
func (d *demo) abort(why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stepStart.IsZero() {
		return
	}
	fmt.Printf("%s after %s\n", why, seconds(time.Since(d.stepStart)))
	d.stepStart = time.Time{}
}

// mute stops begin from opening progress lines, until unmute, which
// reports whether they were muted.
func (d *demo) mute() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.muted = true
}

func (d *demo) unmute() (was bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was, d.muted = d.muted, false
	return was
}

// printLogTails prints the end of the process logs under dir (the lab
// keeps them in a subdirectory): what the controller and the speakers said
// last, leaving out their debug lines, and the control plane's logs too
// if it may be what failed.
func printLogTails(dir string, controlPlane bool) {
	const lines = 15
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, p := range logs {
		name := filepath.Base(p)
		ironlb := strings.Contains(name, "-ironlb-")
		if !ironlb && !controlPlane {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var keep []string
		for l := range strings.Lines(string(b)) {
			if ironlb && strings.Contains(l, " level=DEBUG") {
				continue
			}
			if len(l) > 240 {
				l = l[:240] + " ...\n"
			}
			keep = append(keep, l)
		}
		keep = keep[max(0, len(keep)-lines):]
		fmt.Printf("\n-- the end of %s\n", name)
		if len(keep) == 0 {
			fmt.Println("     (empty)")
		}
		indent(strings.Join(keep, ""))
	}
}
