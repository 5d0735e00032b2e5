package realnodes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/internal/labkube"
)

// FailoverBound is how long the client may go without an answer from an
// address whose announcing node died: ironlb's failover bound.
const FailoverBound = time.Second

// Announcer is the node that answers the client's ARP for ip, waiting up
// to 5 s for exactly one to answer.
func (e *Env) Announcer(ctx context.Context, ip netip.Addr) (*labkube.Node, error) {
	var node *labkube.Node
	err := waitFor(ctx, "one node answers ARP for "+ip.String(), 5*time.Second, func() error {
		macs, err := e.Lab.Client().ARPRequest(ctx, "", ip, 300*time.Millisecond)
		if err != nil {
			return err
		}
		if len(macs) != 1 {
			return fmt.Errorf("%d MACs answer: %v", len(macs), macs)
		}
		for _, n := range e.C.Nodes {
			if bytes.Equal(n.Host.MAC, macs[0]) {
				node = n
				return nil
			}
		}
		return fmt.Errorf("answered by %s, no node's MAC", macs[0])
	})
	return node, err
}

// Failover kills the node announcing the first tutorial Service's address
// (Node.Crash: link cut, kubelet, containerd, kube-proxy and every
// container, the speaker's included, killed at once) while the client
// probes every address, and checks that each address answers again
// within FailoverBound. Requests that kube-proxy sends to pods on the dead
// node are lost until kube-controller-manager marks it NotReady (the
// cluster's node-monitor-grace-period); that is Kubernetes' part, reported
// but not held to the bound.
func (e *Env) Failover(ctx context.Context, prefix string, watch time.Duration) error {
	target := Tutorial[0]
	victim, err := e.Announcer(ctx, target.RequestedIP)
	if err != nil {
		return err
	}
	probers := make([]*Prober, len(Tutorial))
	for i, w := range Tutorial {
		probers[i] = e.StartProbe(w)
	}
	time.Sleep(time.Second)
	e.Logf("crashing %s, which announces %s", victim.Name, target.RequestedIP)
	crashStart := time.Now()
	if err := victim.Crash(ctx); err != nil {
		for _, p := range probers {
			p.Stop()
		}
		return err
	}
	crashAt := crashStart.Sub(probers[0].start)
	time.Sleep(watch)
	var errs []error
	for i, p := range probers {
		r := p.Stop()
		e.Logf("failover: %s (crash at %v)", r, crashAt.Round(time.Millisecond))
		if i == 0 {
			e.recordDuration(prefix+"_failover_gap", r.LongestGap)
			e.record(prefix+"_failover_probes_lost", float64(r.Lost()), "probes")
			if r.LastLoss > 0 {
				e.recordDuration(prefix+"_failover_all_answered_after", r.LastLoss-crashAt)
			}
		}
		if r.LongestGap > FailoverBound {
			errs = append(errs, fmt.Errorf("%s: no answer for %v after %s died, allowed %v", r.URL, r.LongestGap.Round(time.Millisecond), victim.Name, FailoverBound))
		}
	}
	now, err := e.Announcer(ctx, target.RequestedIP)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("after the failover: %w", err))
	case now == victim:
		errs = append(errs, fmt.Errorf("%s still announced by the dead %s", target.RequestedIP, victim.Name))
	default:
		e.Logf("%s moved from %s to %s", target.RequestedIP, victim.Name, now.Name)
	}
	for _, w := range Tutorial {
		if got, err := e.address(ctx, w); err != nil || got != w.RequestedIP.String() {
			errs = append(errs, fmt.Errorf("%s/%s: address %q (%v) after the failover, want %s", w.Namespace, w.Name, got, err, w.RequestedIP))
		}
	}
	return errors.Join(errs...)
}

// summary is the part of the kubelet's /stats/summary read here.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name, Namespace string
		} `json:"podRef"`
		Containers []struct {
			Name   string `json:"name"`
			Memory struct {
				WorkingSetBytes uint64 `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

// RecordMemory records the working set of ironlb's containers as each
// live node's kubelet reports it (/stats/summary, read through the API
// server's node proxy, as `kubectl get --raw` would): the controller's,
// and the largest and the mean speaker's.
func (e *Env) RecordMemory(ctx context.Context, prefix string) error {
	var speakers []uint64
	var controller uint64
	for _, n := range e.C.Nodes {
		select {
		case <-n.Kubelet().Done():
			continue
		default:
		}
		b, err := e.C.Kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", n.Name, "proxy", "stats", "summary").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("stats of %s: %w", n.Name, err)
		}
		var s summary
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("stats of %s: %w", n.Name, err)
		}
		for _, p := range s.Pods {
			if p.PodRef.Namespace != Namespace {
				continue
			}
			for _, c := range p.Containers {
				switch c.Name {
				case "speaker":
					speakers = append(speakers, c.Memory.WorkingSetBytes)
				case "controller":
					controller = max(controller, c.Memory.WorkingSetBytes)
				}
			}
		}
	}
	if controller == 0 || len(speakers) == 0 {
		return fmt.Errorf("kubelets report %d speakers and controller %d bytes", len(speakers), controller)
	}
	var sum, most uint64
	for _, s := range speakers {
		sum += s
		most = max(most, s)
	}
	mib := func(b uint64) float64 { return math.Round(float64(b)/(1<<20)*10) / 10 }
	e.record(prefix+"_controller_memory", mib(controller), "MiB")
	e.record(prefix+"_speaker_memory_max", mib(most), "MiB")
	e.record(prefix+"_speaker_memory_mean", mib(sum/uint64(len(speakers))), "MiB")
	return nil
}
