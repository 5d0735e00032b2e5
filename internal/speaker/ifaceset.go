package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/l2"
)

// runResponder is an l2.Responder as the interface set handles it: the
// Layer 2 announcer's responder, plus running and closing it.
type runResponder interface {
	responder
	Run(ctx context.Context) error
	Close() error
	// Stats are its counts of ARP and NDP packets, for metrics.
	Stats() l2.Stats
}

// ifaceSet keeps one running responder per interface the speaker answers
// on, and follows the interfaces as they come and go: a bond or VLAN made
// after the speaker started, a link that goes down or loses its last
// address. It is owned by Start's goroutine (the sync loop), like the
// Layer 2 announcer it hands the responders to; it is not safe for
// concurrent use.
type ifaceSet struct {
	log *slog.Logger
	// newResponder opens a responder on an interface: l2.New, or a fake
	// in tests.
	newResponder func(*net.Interface) (runResponder, error)
	// run runs a responder's Run in the background until the speaker's
	// handover is over (Speaker.Start's run).
	run    func(func(context.Context))
	byName map[string]*answering
	list   []announce.Iface // byName's interfaces, in the kernel's order
	// stats is byName's responders as the metrics read them, from the
	// scrape's goroutine: replaced, never changed, on every change.
	stats atomic.Pointer[map[string]runResponder]
}

// answering is one interface's responder, and which link it was opened
// on.
type answering struct {
	index int
	mac   string
	r     runResponder
}

// newIfaceSet returns an empty set; it opens nothing until update.
func newIfaceSet(log *slog.Logger, newResponder func(*net.Interface) (runResponder, error), run func(func(context.Context))) *ifaceSet {
	return &ifaceSet{log: log, newResponder: newResponder, run: run, byName: map[string]*answering{}}
}

// openL2 opens an l2.Responder on ifi, logging with the interface's name.
func openL2(log *slog.Logger) func(*net.Interface) (runResponder, error) {
	return func(ifi *net.Interface) (runResponder, error) {
		r, err := l2.New(ifi, l2.Options{Logger: log.With("interface", ifi.Name)})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
}

// update makes the set answer on exactly ifis (answerable's list): it
// closes the responder of each interface that is no longer there, or is
// another link now (another index: deleted and made again; another MAC: a
// bond whose address followed a new first slave), since its sockets are
// bound to the old link and it answers with the old MAC; and it opens and
// runs one on each interface that has none. It reports whether the set
// changed. An interface whose responder cannot be opened is left out, and
// tried again at the next update; the error says which.
func (s *ifaceSet) update(ifis []net.Interface) (changed bool, err error) {
	want := map[string]net.Interface{}
	for _, ifi := range ifis {
		want[ifi.Name] = ifi
	}
	for name, a := range s.byName {
		if ifi, ok := want[name]; ok && ifi.Index == a.index && ifi.HardwareAddr.String() == a.mac {
			continue
		}
		a.r.Close()
		delete(s.byName, name)
		changed = true
		s.log.Info("stopped answering", "interface", name, "mac", a.mac)
	}
	var errs []error
	for _, ifi := range ifis {
		if _, ok := s.byName[ifi.Name]; ok {
			continue
		}
		r, err := s.newResponder(&ifi)
		if err != nil {
			errs = append(errs, fmt.Errorf("answer on %s: %w", ifi.Name, err))
			continue
		}
		s.byName[ifi.Name] = &answering{index: ifi.Index, mac: ifi.HardwareAddr.String(), r: r}
		changed = true
		name := ifi.Name
		s.run(func(ctx context.Context) {
			// ErrClosed: update or close closed it, on purpose.
			if err := r.Run(ctx); err != nil && !errors.Is(err, l2.ErrClosed) {
				s.log.Error("responder stopped", "interface", name, "error", err)
			}
		})
	}
	if changed {
		stats := make(map[string]runResponder, len(s.byName))
		for name, a := range s.byName {
			stats[name] = a.r
		}
		s.stats.Store(&stats)
		s.list = s.list[:0:0]
		for _, ifi := range ifis {
			if a := s.byName[ifi.Name]; a != nil {
				s.list = append(s.list, announce.Iface{Name: ifi.Name, MAC: a.mac})
			}
		}
	}
	return changed, errors.Join(errs...)
}

// ifaces returns the interfaces answered on, in the kernel's order. The
// caller must not change the slice.
func (s *ifaceSet) ifaces() []announce.Iface { return s.list }

// responders returns a new map of the responders, by interface name, for
// the Layer 2 announcer.
func (s *ifaceSet) responders() map[string]responder {
	out := make(map[string]responder, len(s.byName))
	for name, a := range s.byName {
		out[name] = a.r
	}
	return out
}

// packetStats returns the ARP and NDP counts of the responders answering
// now, by interface. Safe for concurrent use. A responder opened anew on
// an interface counts from zero again, which Prometheus reads as a
// counter reset.
func (s *ifaceSet) packetStats() map[string]l2.Stats {
	rs := s.stats.Load()
	if rs == nil {
		return nil
	}
	out := make(map[string]l2.Stats, len(*rs))
	for name, r := range *rs {
		out[name] = r.Stats()
	}
	return out
}

// close closes every responder; their Runs return soon after.
func (s *ifaceSet) close() {
	for _, a := range s.byName {
		a.r.Close()
	}
}
