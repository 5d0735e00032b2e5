package speaker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/announce"
	"github.com/ironlb/ironlb/internal/l2"
)

// runFake is a responder the interface set runs and closes; Run blocks
// until Close, like an l2.Responder's.
type runFake struct {
	fakeResponder
	name   string
	closed chan struct{}
	once   sync.Once
}

func (r *runFake) Run(context.Context) error { <-r.closed; return l2.ErrClosed }
func (r *runFake) Close() error              { r.once.Do(func() { close(r.closed) }); return nil }
func (r *runFake) Stats() l2.Stats           { return l2.Stats{ARP: l2.Counters{Requests: uint64(len(r.name))}} }

func (r *runFake) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

func link(index int, name, mac string) net.Interface {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return net.Interface{Index: index, Name: name, HardwareAddr: hw}
}

// TestIfaceSetUpdate follows the interfaces of a node through a bond that
// appears, a link made again under the same name, a MAC change, a
// responder that cannot be opened and a link that goes.
func TestIfaceSetUpdate(t *testing.T) {
	var opened []*runFake
	failOn := ""
	newResponder := func(ifi *net.Interface) (runResponder, error) {
		if ifi.Name == failOn {
			return nil, errors.New("no CAP_NET_RAW")
		}
		r := &runFake{name: ifi.Name, closed: make(chan struct{})}
		opened = append(opened, r)
		return r, nil
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) { wg.Go(func() { f(context.Background()) }) }
	s := newIfaceSet(slog.New(slog.DiscardHandler), newResponder, run)
	defer func() { s.close(); wg.Wait() }()

	eth0 := link(2, "eth0", "02:00:00:00:00:01")
	bond0 := link(5, "bond0", "02:00:00:00:00:05")
	steps := []struct {
		name        string
		ifis        []net.Interface
		fail        string
		wantChanged bool
		wantErr     bool
		wantOpened  []string // opened by this step
		wantClosed  []string // closed by this step
		want        []announce.Iface
	}{
		{name: "start", ifis: []net.Interface{eth0}, wantChanged: true, wantOpened: []string{"eth0"},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}},
		{name: "same", ifis: []net.Interface{eth0},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}}},
		{name: "bond appears", ifis: []net.Interface{eth0, bond0}, wantChanged: true, wantOpened: []string{"bond0"},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "bond0", MAC: "02:00:00:00:00:05"}}},
		{name: "bond made again", ifis: []net.Interface{eth0, link(6, "bond0", "02:00:00:00:00:05")}, wantChanged: true,
			wantOpened: []string{"bond0"}, wantClosed: []string{"bond0"},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "bond0", MAC: "02:00:00:00:00:05"}}},
		{name: "bond MAC changes", ifis: []net.Interface{eth0, link(6, "bond0", "02:00:00:00:00:06")}, wantChanged: true,
			wantOpened: []string{"bond0"}, wantClosed: []string{"bond0"},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "bond0", MAC: "02:00:00:00:00:06"}}},
		{name: "vlan cannot be opened", ifis: []net.Interface{eth0, link(6, "bond0", "02:00:00:00:00:06"), link(7, "vlan7", "02:00:00:00:00:07")},
			fail: "vlan7", wantErr: true,
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "bond0", MAC: "02:00:00:00:00:06"}}},
		{name: "vlan opened at the next try", ifis: []net.Interface{eth0, link(6, "bond0", "02:00:00:00:00:06"), link(7, "vlan7", "02:00:00:00:00:07")},
			wantChanged: true, wantOpened: []string{"vlan7"},
			want: []announce.Iface{{Name: "eth0", MAC: "02:00:00:00:00:01"}, {Name: "bond0", MAC: "02:00:00:00:00:06"}, {Name: "vlan7", MAC: "02:00:00:00:00:07"}}},
		{name: "eth0 goes down", ifis: []net.Interface{link(6, "bond0", "02:00:00:00:00:06"), link(7, "vlan7", "02:00:00:00:00:07")},
			wantChanged: true, wantClosed: []string{"eth0"},
			want: []announce.Iface{{Name: "bond0", MAC: "02:00:00:00:00:06"}, {Name: "vlan7", MAC: "02:00:00:00:00:07"}}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			failOn = st.fail
			before := len(opened)
			var wasOpen []*runFake
			for _, r := range opened {
				if !r.isClosed() {
					wasOpen = append(wasOpen, r)
				}
			}
			prev := s.ifaces()
			changed, err := s.update(st.ifis)
			if changed != st.wantChanged || (err != nil) != st.wantErr {
				t.Errorf("update = %v, %v; want changed %v, error %v", changed, err, st.wantChanged, st.wantErr)
			}
			var gotOpened, gotClosed []string
			for _, r := range opened[before:] {
				gotOpened = append(gotOpened, r.name)
			}
			for _, r := range wasOpen {
				if r.isClosed() {
					gotClosed = append(gotClosed, r.name)
				}
			}
			if diff := cmp.Diff(st.wantOpened, gotOpened); diff != "" {
				t.Errorf("opened (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(st.wantClosed, gotClosed); diff != "" {
				t.Errorf("closed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(st.want, s.ifaces()); diff != "" {
				t.Errorf("ifaces (-want +got):\n%s", diff)
			}
			rs := s.responders()
			if len(rs) != len(st.want) {
				t.Errorf("%d responders, want %d", len(rs), len(st.want))
			}
			for _, i := range st.want {
				if r, ok := rs[i.Name].(*runFake); !ok || r.isClosed() {
					t.Errorf("no open responder on %s", i.Name)
				}
			}
			// The list handed out before is never changed under its
			// holders (the Layer 2 announcer, the last view).
			if changed && len(prev) > 0 && len(s.ifaces()) > 0 && &prev[0] == &s.ifaces()[0] {
				t.Error("update changed the previous list in place")
			}
		})
	}
}
