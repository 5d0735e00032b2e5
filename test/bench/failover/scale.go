package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kubecr"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
	"github.com/ironlb/ironlb/test/bench/benchstat"
	"github.com/ironlb/ironlb/test/bench/procusage"
)

const (
	// creators is how many goroutines create the Services.
	creators = 16
	// announceTimeout bounds the wait for every Service to be announced.
	announceTimeout = 10 * time.Minute
	// ndpChecks is how many of the addresses the client resolves at the
	// end, to check that exactly the announcing node answers.
	ndpChecks = 10
)

// scale creates the IPv6 Services, waits until a speaker has announced
// every one, and prints the speakers' peak RSS and CPU time.
func (b *bench) scale(ctx context.Context) error {
	nodes := b.cl.Lab.Nodes()
	if !b.opts.Skip[partUnplanned] || !b.opts.Skip[partPlanned] {
		// The failovers restarted some speakers and not others: start
		// every one afresh so that all three figures cover the same.
		fmt.Fprintln(b.diag, "# scale: restarting every speaker")
		for _, n := range nodes {
			marks := b.cl.SpeakerLogMarks(n.Name)
			if err := b.cl.Speaker(n.Name).Stop(); err != nil {
				return err
			}
			if _, err := b.cl.StartSpeaker(n.Name); err != nil {
				return err
			}
			if err := b.cl.WaitJoined(ctx, n.Name, marks, time.Minute); err != nil {
				return err
			}
		}
		time.Sleep(settleAfterJoin)
	}
	idle := map[string]procusage.Usage{}
	for _, n := range nodes {
		u, err := speakerUsage(b.cl, n.Name)
		if err != nil {
			return err
		}
		idle[n.Name] = u
	}

	w, err := watchAnnouncements(ctx, b.cl, b.opts.Services)
	if err != nil {
		return err
	}
	defer w.stop()
	fmt.Fprintf(b.diag, "# scale: creating %d IPv6 LoadBalancer Services from pool %s\n", b.opts.Services, scalePool)
	start := time.Now()
	if err := b.createServices(ctx); err != nil {
		return err
	}
	created := time.Since(start)
	select {
	case <-w.all:
	case <-time.After(announceTimeout):
		return fmt.Errorf("%d of %d Services announced after %s", w.count(), b.opts.Services, announceTimeout)
	}
	announced := w.allAt.Sub(start)
	fmt.Fprintf(b.diag, "# scale: created in %.2f s, all announced after %.2f s; waiting for the speakers to go quiet\n",
		created.Seconds(), announced.Seconds())
	if err := quiesce(b.cl, nodes, 30*time.Second); err != nil {
		return err
	}

	ms := []benchstat.Metric{
		{Name: "scale_services", Value: float64(b.opts.Services), Unit: "count"},
		{Name: "scale_create_time", Value: created.Seconds(), Unit: "s"},
		{Name: "scale_all_announced", Value: announced.Seconds(), Unit: "s"},
	}
	byNode := w.byNode()
	var maxPeak, maxCPU, maxScaleCPU float64
	for _, n := range nodes {
		u, err := speakerUsage(b.cl, n.Name)
		if err != nil {
			return err
		}
		was := idle[n.Name]
		key := "speaker_" + strings.ReplaceAll(n.Name, "-", "") + "_"
		ms = append(ms,
			benchstat.Metric{Name: key + "addresses", Value: float64(byNode[n.Name]), Unit: "count"},
			benchstat.Metric{Name: key + "peak_rss_idle", Value: benchstat.MiB(was.PeakRSS), Unit: "MiB"},
			benchstat.Metric{Name: key + "peak_rss", Value: benchstat.MiB(u.PeakRSS), Unit: "MiB"},
			benchstat.Metric{Name: key + "rss", Value: benchstat.MiB(u.RSS), Unit: "MiB"},
			benchstat.Metric{Name: key + "cpu", Value: u.CPU.Seconds(), Unit: "s"},
			benchstat.Metric{Name: key + "cpu_for_services", Value: (u.CPU - was.CPU).Seconds(), Unit: "s"},
		)
		maxPeak = max(maxPeak, benchstat.MiB(u.PeakRSS))
		maxCPU = max(maxCPU, u.CPU.Seconds())
		maxScaleCPU = max(maxScaleCPU, (u.CPU - was.CPU).Seconds())
	}
	checked, single, err := b.checkNDP(ctx, w)
	if err != nil {
		return err
	}
	ms = append(ms,
		benchstat.Metric{Name: "speaker_max_peak_rss", Value: maxPeak, Unit: "MiB"},
		benchstat.Metric{Name: "speaker_max_cpu", Value: maxCPU, Unit: "s"},
		benchstat.Metric{Name: "speaker_max_cpu_for_services", Value: maxScaleCPU, Unit: "s"},
		benchstat.Metric{Name: "scale_ndp_checked", Value: float64(checked), Unit: "count"},
		benchstat.Metric{Name: "scale_ndp_one_answer", Value: float64(single), Unit: "count"},
	)
	b.print(ms...)
	return nil
}

// createServices creates the Services svc-0000... in scaleNamespace, from
// creators goroutines.
func (b *bench) createServices(ctx context.Context) error {
	idx := make(chan int)
	errs := make(chan error, creators)
	var wg sync.WaitGroup
	for range creators {
		wg.Go(func() {
			for i := range idx {
				if err := b.cl.Client.Create(ctx, scaleService(i)); err != nil {
					errs <- fmt.Errorf("create Service %d: %w", i, err)
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range b.opts.Services {
		select {
		case idx <- i:
		case err = <-errs:
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
	default:
	}
	return err
}

// scaleService is the i-th Service: single-stack IPv6 from the scale pool.
func scaleService(i int) *corev1.Service {
	policy := corev1.IPFamilyPolicySingleStack
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   scaleNamespace,
			Name:        fmt.Sprintf("svc-%04d", i),
			Annotations: map[string]string{v1alpha1.AnnotationAddressPool: scalePool},
		},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(bool),
			IPFamilies:                    []corev1.IPFamily{corev1.IPv6Protocol},
			IPFamilyPolicy:                &policy,
			Selector:                      map[string]string{"app": "scale"},
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

// checkNDP resolves ndpChecks of the addresses, spread over the Services,
// from the client and counts those answered by exactly the MAC their
// ServiceAnnouncement names.
func (b *bench) checkNDP(ctx context.Context, w *announceWatch) (checked, single int, err error) {
	step := max(1, b.opts.Services/ndpChecks)
	for i := 0; i < b.opts.Services && checked < ndpChecks; i += step {
		a, ok := w.announcer(fmt.Sprintf("svc-%04d", i))
		if !ok {
			continue
		}
		ip, err := netip.ParseAddr(a.IP)
		if err != nil {
			return checked, single, err
		}
		macs, err := b.cl.Resolve(ctx, ip)
		if err != nil {
			return checked, single, err
		}
		checked++
		if len(macs) == 1 && macs[0] == a.MAC {
			single++
		} else {
			fmt.Fprintf(b.diag, "# ANOMALY: %s (announced by %s, %s) answered by %v\n", ip, a.Node, a.MAC, macs)
		}
	}
	return checked, single, nil
}

// announceWatch follows the ServiceAnnouncements of scaleNamespace and
// notes when want of them name a node for every address.
type announceWatch struct {
	want   int
	cancel context.CancelFunc
	done   chan struct{}
	all    chan struct{} // closed once want are announced; allAt is set then

	mu    sync.Mutex
	by    map[string]v1alpha1.Announcer // Service name -> its first announcer
	allAt time.Time
}

func watchAnnouncements(ctx context.Context, cl *labcluster.Cluster, want int) (*announceWatch, error) {
	wc, err := client.NewWithWatch(cl.CP.Config, client.Options{Scheme: kubecr.Scheme()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &announceWatch{want: want, cancel: cancel, done: make(chan struct{}), all: make(chan struct{}),
		by: map[string]v1alpha1.Announcer{}}
	first, err := wc.Watch(ctx, &v1alpha1.ServiceAnnouncementList{}, client.InNamespace(scaleNamespace))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch ServiceAnnouncements: %w", err)
	}
	go func() {
		defer close(w.done)
		for ch := first; ; {
			w.follow(ch.ResultChan())
			ch.Stop()
			// The API server ends watches now and then; a new one
			// starts with every object again, which follow takes as
			// it comes.
			for ctx.Err() == nil {
				if ch, err = wc.Watch(ctx, &v1alpha1.ServiceAnnouncementList{}, client.InNamespace(scaleNamespace)); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return w, nil
}

func (w *announceWatch) follow(events <-chan watch.Event) {
	for ev := range events {
		a, ok := ev.Object.(*v1alpha1.ServiceAnnouncement)
		if !ok {
			continue
		}
		w.mu.Lock()
		if first, ok := announcedBy(a); ok && ev.Type != watch.Deleted {
			w.by[a.Name] = first
		} else {
			delete(w.by, a.Name)
		}
		if len(w.by) >= w.want && w.allAt.IsZero() {
			w.allAt = time.Now()
			close(w.all)
		}
		w.mu.Unlock()
	}
}

// announcedBy returns a's first announcer if a node announces each of its
// addresses.
func announcedBy(a *v1alpha1.ServiceAnnouncement) (v1alpha1.Announcer, bool) {
	if len(a.Status.Announcers) == 0 {
		return v1alpha1.Announcer{}, false
	}
	for _, e := range a.Status.Announcers {
		if e.Node == "" {
			return v1alpha1.Announcer{}, false
		}
	}
	return a.Status.Announcers[0], true
}

func (w *announceWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *announceWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.by)
}

func (w *announceWatch) announcer(name string) (v1alpha1.Announcer, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.by[name]
	return a, ok
}

// byNode counts the announced Services by node.
func (w *announceWatch) byNode() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, a := range w.by {
		out[a.Node]++
	}
	return out
}

// speakerUsage reads the usage of node's speaker from /proc.
func speakerUsage(cl *labcluster.Cluster, node string) (procusage.Usage, error) {
	u, err := procusage.Of(cl.Speaker(node), filepath.Base(cl.SpeakerBin()))
	if err != nil {
		return u, fmt.Errorf("speaker of %s: %w", node, err)
	}
	return u, nil
}

// quiesce waits until no speaker used more than 20 ms of CPU in the last
// second, or at most limit, so the figures include the work that trails
// the announcements (status writes, events).
func quiesce(cl *labcluster.Cluster, nodes []*labnet.Host, limit time.Duration) error {
	last := map[string]time.Duration{}
	for end := time.Now().Add(limit); time.Now().Before(end); {
		busy := false
		for _, n := range nodes {
			u, err := speakerUsage(cl, n.Name)
			if err != nil {
				return err
			}
			if was, ok := last[n.Name]; !ok || u.CPU-was > 20*time.Millisecond {
				busy = true
			}
			last[n.Name] = u.CPU
		}
		if !busy {
			return nil
		}
		time.Sleep(time.Second)
	}
	return nil
}
