package labnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestDelay pings a node from the client before, during and after a Delay
// on the node, over IPv4 and IPv6, and checks that the replies take as
// long as `netem delay 50ms 40ms` would make them: between 10 and 90 ms,
// around 50 ms in the middle, and spread across that range.
func TestDelay(t *testing.T) {
	t.Parallel()
	l := NewForTest(t, Options{Nodes: 1})
	ctx := t.Context()
	client, node := l.Client(), l.Node(1)
	targets := []netip.Addr{node.IPv4, node.IPv6}

	// The first pings also resolve addresses; they do not count.
	pingSummary(ctx, client, targets, 1, 2, time.Second)
	assertFast(t, "before the delay", pingSummary(ctx, client, targets, 1, 5, time.Second))

	stop, err := node.Delay(ctx, 50*time.Millisecond, 40*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Delay(ctx, time.Millisecond, 0, 0); err == nil {
		t.Errorf("a second Delay on %s started; want an error while one runs", node)
	}
	// Three pingers per family, 20 pings each: the pooled median of 120
	// leaves [35, 75] ms by chance about once in 70,000 runs; one family's
	// median of 60 leaves [25, 85] ms less often still.
	delayed := pingSummary(ctx, client, targets, 3, 20, time.Second)
	st, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delay 50ms 40ms: %v; %+v", delayed, st)
	var all []time.Duration
	for _, a := range targets {
		r := delayed[a]
		all = append(all, r.rtts...)
		if r.lost > 0 {
			t.Errorf("%s: %d of %d pings lost without loss configured", a, r.lost, r.sent)
		}
		if len(r.rtts) == 0 {
			continue
		}
		// Every reply is held at least 50-40 ms: an undelayed one takes
		// well under a millisecond.
		if min := r.rtts[0]; min < 10*time.Millisecond {
			t.Errorf("%s: fastest ping %v, want >= 10ms (delay 50ms, jitter 40ms)", a, min)
		}
		if med := median(r.rtts); med < 25*time.Millisecond || med > 85*time.Millisecond {
			t.Errorf("%s: median ping %v, want about 50ms", a, med)
		}
	}
	slices.Sort(all)
	if med := median(all); med < 35*time.Millisecond || med > 75*time.Millisecond {
		t.Errorf("median ping %v over both families, want 35ms to 75ms", med)
	}
	if len(all) > 0 {
		// The jitter is applied: uniform on [10, 90] ms puts the 10th and
		// 90th percentiles 64 ms apart, a fixed delay ~0 ms.
		p10, p90 := all[len(all)/10], all[len(all)*9/10]
		if p90-p10 < 30*time.Millisecond {
			t.Errorf("pings from %v (10th percentile) to %v (90th), want a spread of about 64ms (jitter 40ms)", p10, p90)
		}
		// No reply is held past 90 ms; the slack is for a busy machine.
		if p90 > 95*time.Millisecond || all[len(all)-1] > 150*time.Millisecond {
			t.Errorf("90th percentile %v, slowest %v: want <= 95ms and 150ms", p90, all[len(all)-1])
		}
	}
	if want := len(all); st.Queued < want || st.Dropped != 0 || st.Overflow != 0 {
		t.Errorf("stats %+v, want >= %d queued (one reply per ping), none dropped or lost", st, want)
	}
	assertNoRules(t, ctx, node)

	// 50% loss, ended by ctx rather than stop. Requests reach the node
	// undelayed; half of its replies vanish.
	lossCtx, cancel := context.WithCancel(ctx)
	stop, err = node.Delay(lossCtx, time.Millisecond, 0, 50)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	lossy := pingSummary(ctx, client, targets[:1], 4, 10, 150*time.Millisecond)[node.IPv4]
	cancel()
	st, err = stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss 50%%: %d of %d pings lost; %+v", lossy.lost, lossy.sent, st)
	// Binomial(40, 0.5) leaves [8, 32] about once in 20,000 runs.
	if lossy.lost < 8 || lossy.lost > 32 {
		t.Errorf("%d of %d pings lost, want about half", lossy.lost, lossy.sent)
	}
	if st.Dropped < lossy.lost || st.Dropped > st.Queued {
		t.Errorf("stats %+v, want at least the %d lost pings dropped", st, lossy.lost)
	}
	assertNoRules(t, ctx, node)

	// stop lets held packets go at once: a reply held for 10 s arrives
	// when stop is called.
	stop, err = node.Delay(ctx, 10*time.Second, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan pingResult, 1)
	go func() { held <- pingSummary(ctx, client, targets[:1], 1, 1, 5*time.Second)[node.IPv4] }()
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	st, err = stop()
	if err != nil {
		t.Fatal(err)
	}
	r := <-held
	t.Logf("held 10s, stopped after 200ms: %v, stop took %v; %+v", r, time.Since(t0).Round(time.Millisecond), st)
	if r.lost > 0 || r.rtts[0] > 2*time.Second {
		t.Errorf("ping held by a stopped delay: %v; want it answered within the stop", r)
	}
	if st.Queued < 1 {
		t.Errorf("stats %+v, want the held reply queued", st)
	}
	assertFast(t, "after the delay", pingSummary(ctx, client, targets, 1, 5, time.Second))
}

// pingResult is what pinging one address many times gave.
type pingResult struct {
	sent, lost int
	rtts       []time.Duration // sorted
}

func (r pingResult) String() string {
	if len(r.rtts) == 0 {
		return fmt.Sprintf("%d sent, all lost", r.sent)
	}
	return fmt.Sprintf("%d sent, %d lost, min %v median %v max %v", r.sent, r.lost,
		r.rtts[0].Round(time.Microsecond), median(r.rtts).Round(time.Microsecond), r.rtts[len(r.rtts)-1].Round(time.Microsecond))
}

// pingSummary pings each target count times from each of pingers
// goroutines at once, every ping waiting up to timeout for its reply.
func pingSummary(ctx context.Context, from *Host, targets []netip.Addr, pingers, count int, timeout time.Duration) map[netip.Addr]pingResult {
	var mu sync.Mutex
	res := map[netip.Addr]pingResult{}
	var wg sync.WaitGroup
	for _, a := range targets {
		for range pingers {
			wg.Go(func() {
				for range count {
					pctx, cancel := context.WithTimeout(ctx, timeout)
					rtt, err := from.Ping(pctx, a)
					cancel()
					mu.Lock()
					r := res[a]
					r.sent++
					if err != nil {
						r.lost++
					} else {
						r.rtts = append(r.rtts, rtt)
					}
					res[a] = r
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for a, r := range res {
		slices.Sort(r.rtts)
		res[a] = r
	}
	return res
}

// median of sorted d.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)/2]
}

// assertFast checks that pings were answered with no delay to speak of.
func assertFast(t *testing.T, when string, res map[netip.Addr]pingResult) {
	t.Helper()
	for a, r := range res {
		t.Logf("%s: %s: %v", when, a, r)
		if r.lost > 0 || median(r.rtts) >= 5*time.Millisecond {
			t.Errorf("%s: pings to %s: %v; want none lost, median < 5ms", when, a, r)
		}
	}
}

// assertNoRules checks that a stopped Delay left no rule behind.
func assertNoRules(t *testing.T, ctx context.Context, h *Host) {
	t.Helper()
	for _, bin := range []string{"iptables", "ip6tables"} {
		out, err := h.Run(ctx, bin, "-w", "-t", "mangle", "-S")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), delayChain) || strings.Contains(string(out), "NFQUEUE") {
			t.Errorf("%s %s: rules left after stop:\n%s", h, bin, out)
		}
	}
}

// BenchmarkDelayHold compares ways to hold packets for 50 ms ± 40 ms at
// 1,000 packets/s, the pace of a lab test, by the process's CPU time per
// packet: hold's heap and single timer, against a time.AfterFunc per
// packet; "pace" is the cost of the 1 ms ticker alone. Run it with
// -benchtime 3000x: each packet takes a millisecond of wall time.
func BenchmarkDelayHold(b *testing.B) {
	const d, jitter = 50 * time.Millisecond, 40 * time.Millisecond
	for _, bc := range []struct {
		name  string
		start func(accept func(uint32) error) (hold func(id uint32), stop func())
	}{
		{"pace", func(func(uint32) error) (func(uint32), func()) { return func(uint32) {}, func() {} }},
		{"heap", func(accept func(uint32) error) (func(uint32), func()) {
			dl := &delayer{d: d, jitter: jitter, in: make(chan heldPacket, 1024), quit: make(chan struct{}), holdDone: make(chan struct{})}
			go dl.hold(accept)
			return func(id uint32) { dl.in <- heldPacket{id: id, due: time.Now().Add(dl.wait())} },
				func() { close(dl.quit); <-dl.holdDone }
		}},
		{"afterfunc", func(accept func(uint32) error) (func(uint32), func()) {
			dl := &delayer{d: d, jitter: jitter}
			var mu sync.Mutex
			timers := map[uint32]*time.Timer{}
			return func(id uint32) {
					mu.Lock()
					defer mu.Unlock()
					timers[id] = time.AfterFunc(dl.wait(), func() {
						mu.Lock()
						delete(timers, id)
						mu.Unlock()
						accept(id)
					})
				}, func() {
					mu.Lock()
					defer mu.Unlock()
					for _, t := range timers {
						t.Stop()
					}
				}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var accepted atomic.Int64
			hold, stop := bc.start(func(uint32) error { accepted.Add(1); return nil })
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			cpu0 := processCPU(b)
			var id uint32
			for b.Loop() {
				<-tick.C
				id++
				hold(id)
			}
			time.Sleep(d + jitter) // let the last ones go
			cpu := processCPU(b) - cpu0
			stop()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
			b.ReportMetric(float64(accepted.Load())/float64(b.N), "accepted/pkt")
		})
	}
}

// processCPU is the user and system time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDelay measures what Delay costs this process: node-1 sends a
// UDP datagram to the client every millisecond, with and without a delay
// of 50 ms ± 40 ms, and the difference in CPU time per packet is the
// delay's. Run it with -benchtime 3000x.
func BenchmarkDelay(b *testing.B) {
	l := NewForTest(b, Options{Nodes: 1})
	ctx := b.Context()
	client, node := l.Client(), l.Node(1)
	var sink, conn net.Conn
	err := client.Do(func() (err error) {
		sink, err = net.ListenUDP("udp", &net.UDPAddr{IP: client.IPv4.AsSlice(), Port: 9})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	err = node.Do(func() (err error) {
		conn, err = net.Dial("udp", netip.AddrPortFrom(client.IPv4, 9).String())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, delay := range []bool{false, true} {
		b.Run(fmt.Sprintf("delay=%v", delay), func(b *testing.B) {
			stop := func() (Stats, error) { return Stats{}, nil }
			if delay {
				var err error
				if stop, err = node.Delay(ctx, 50*time.Millisecond, 40*time.Millisecond, 0); err != nil {
					b.Fatal(err)
				}
			}
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			cpu0 := processCPU(b)
			for b.Loop() {
				<-tick.C
				conn.Write([]byte("ironlb"))
			}
			time.Sleep(100 * time.Millisecond) // let the last ones go
			cpu := processCPU(b) - cpu0
			st, err := stop()
			if err != nil {
				b.Fatal(err)
			}
			if delay && st.Queued < b.N {
				b.Errorf("%+v: fewer queued than the %d sent", st, b.N)
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
			b.ReportMetric(float64(st.Overflow), "overflow")
		})
	}
}

// TestDelayHold checks, on a fake clock, that hold lets each packet go when
// its own time comes, out of order if need be, and none after quit.
func TestDelayHold(t *testing.T) {
	type release struct {
		id uint32
		at time.Duration
	}
	for _, tc := range []struct {
		name string
		// Packet i+1 reaches hold at pushAt[i], to be held for waits[i].
		pushAt, waits []time.Duration
		want          []release
	}{
		{
			name:   "reordered",
			pushAt: []time.Duration{0, 0, 0, 0},
			waits:  []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 0},
			want:   []release{{4, 0}, {2, 10 * time.Millisecond}, {3, 20 * time.Millisecond}, {1, 30 * time.Millisecond}},
		},
		{
			name:   "a later packet due earlier",
			pushAt: []time.Duration{0, 5 * time.Millisecond},
			waits:  []time.Duration{50 * time.Millisecond, 10 * time.Millisecond},
			want:   []release{{2, 15 * time.Millisecond}, {1, 50 * time.Millisecond}},
		},
		{
			name:   "same time",
			pushAt: []time.Duration{0, 0},
			waits:  []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
			want:   []release{{1, 10 * time.Millisecond}, {2, 10 * time.Millisecond}},
		},
		{
			name:   "held past quit",
			pushAt: []time.Duration{0, 0},
			waits:  []time.Duration{time.Millisecond, time.Hour},
			want:   []release{{1, time.Millisecond}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var got []release
				dl := &delayer{in: make(chan heldPacket), quit: make(chan struct{}), holdDone: make(chan struct{})}
				go dl.hold(func(id uint32) error {
					got = append(got, release{id, time.Since(start)})
					return nil
				})
				for i, at := range tc.pushAt {
					time.Sleep(at - time.Since(start))
					dl.in <- heldPacket{id: uint32(i + 1), due: time.Now().Add(tc.waits[i])}
				}
				time.Sleep(time.Minute)
				close(dl.quit)
				<-dl.holdDone
				time.Sleep(2 * time.Hour)
				if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(release{})); diff != "" {
					t.Errorf("releases (-want +got)\n%s", diff)
				}
			})
		})
	}
}
