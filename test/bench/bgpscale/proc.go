package main

import (
	"fmt"
	"time"

	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/procusage"
)

// watched is a process whose CPU quiesce follows.
type watched struct {
	name, comm string
	proc       *labnet.Process
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
			u, err := procusage.Of(p.proc, p.comm)
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
