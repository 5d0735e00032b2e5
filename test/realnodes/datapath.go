package realnodes

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// dataPathWatch is how long CheckDataPath watches after each change:
// long enough for the speakers to see kube-proxy healthy again and for an
// address to move back if anything made it.
const dataPathWatch = 3 * time.Second

// CheckDataPath proves issue 16's point 5 with the speakers as installed
// (the DaemonSet's default --kube-proxy-health-url): a node announces only
// what it can forward. It stops (SIGSTOP) the kube-proxy of the node
// announcing the first tutorial Service's address while the client probes
// every address, and checks that the address moves to another node within
// FailoverBound, that the client goes no longer than FailoverBound
// without an answer, that one node answers for it afterwards, and that
// nothing moves back once kube-proxy goes on (SIGCONT).
//
// A stopped kube-proxy is one that hangs: its health endpoint accepts
// connections and never answers, the failure that only the timeout tells.
// Its rules stay in the kernel, so the node would go on forwarding what
// reaches it: the gap measured is the handover's alone, and the move is
// timed from the stop to the client's ARP entry naming the new node.
func (e *Env) CheckDataPath(ctx context.Context, prefix string) error {
	target := Tutorial[0]
	victim, err := e.Announcer(ctx, target.RequestedIP)
	if err != nil {
		return err
	}
	kp := victim.KubeProxy()
	if kp == nil {
		return fmt.Errorf("%s runs no kube-proxy", victim.Name)
	}
	probers := make([]*Prober, len(Tutorial))
	for i, w := range Tutorial {
		probers[i] = e.StartProbe(w)
	}
	time.Sleep(time.Second)
	e.Logf("stopping kube-proxy (pid %d) on %s, which announces %s", kp.PID(), victim.Name, target.RequestedIP)
	stopAt := time.Since(probers[0].start)
	if err := kp.Pause(); err != nil {
		for _, p := range probers {
			p.Stop()
		}
		return err
	}
	paused := true
	defer func() {
		if paused {
			kp.Resume()
		}
	}()

	var errs []error
	var move time.Duration
	err = waitFor(ctx, "the client's ARP entry for "+target.RequestedIP.String()+" leaves "+victim.Name, 10*time.Second, func() error {
		p := probers[0]
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, at := range p.moveAt {
			if at > stopAt {
				move = at - stopAt
				return nil
			}
		}
		return fmt.Errorf("ARP entry %v", p.moves)
	})
	if err != nil {
		errs = append(errs, err)
	} else {
		e.recordDuration(prefix+"_datapath_move", move)
		if move > FailoverBound {
			errs = append(errs, fmt.Errorf("%s moved %v after kube-proxy on %s stopped, allowed %v", target.RequestedIP, move.Round(time.Millisecond), victim.Name, FailoverBound))
		}
	}
	time.Sleep(dataPathWatch)
	owner, err := e.Announcer(ctx, target.RequestedIP)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("with kube-proxy stopped on %s: %w", victim.Name, err))
	case owner == victim:
		errs = append(errs, fmt.Errorf("%s still announced by %s, whose kube-proxy is stopped", target.RequestedIP, victim.Name))
	default:
		e.Logf("%s moved from %s to %s", target.RequestedIP, victim.Name, owner.Name)
	}

	e.Logf("kube-proxy on %s goes on", victim.Name)
	resumeAt := time.Since(probers[0].start)
	if err := kp.Resume(); err != nil {
		errs = append(errs, err)
	}
	paused = false
	time.Sleep(dataPathWatch)
	if back, err := e.Announcer(ctx, target.RequestedIP); err != nil {
		errs = append(errs, fmt.Errorf("with kube-proxy back on %s: %w", victim.Name, err))
	} else if owner != nil && back != owner {
		errs = append(errs, fmt.Errorf("%s moved from %s to %s after kube-proxy came back on %s", target.RequestedIP, owner.Name, back.Name, victim.Name))
	}
	for i, p := range probers {
		r := p.Stop()
		for _, at := range p.moveAt { // Stop waited for followARP
			if at > resumeAt {
				errs = append(errs, fmt.Errorf("%s: the client's ARP entry moved %v after kube-proxy came back (%v)", p.URL, (at-resumeAt).Round(time.Millisecond), r.Moves))
				break
			}
		}
		e.Logf("data path: %s (kube-proxy stopped at %v, back at %v)", r, stopAt.Round(time.Millisecond), resumeAt.Round(time.Millisecond))
		if i == 0 {
			e.recordDuration(prefix+"_datapath_gap", r.LongestGap)
			e.record(prefix+"_datapath_probes_lost", float64(r.Lost()), "probes")
		}
		if r.LongestGap > FailoverBound {
			errs = append(errs, fmt.Errorf("%s: no answer for %v after kube-proxy on %s stopped, allowed %v", r.URL, r.LongestGap.Round(time.Millisecond), victim.Name, FailoverBound))
		}
	}
	return errors.Join(errs...)
}
