package controller

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// fakeLock is a leader-election lock whose Creates and Updates succeed
// unless err is set.
type fakeLock struct {
	resourcelock.Interface
	err error
}

func (l fakeLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return l.err }
func (l fakeLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return l.err }

// sentTransport records whether a request reached it.
type sentTransport struct{ sent *bool }

func (t sentTransport) RoundTrip(*http.Request) (*http.Response, error) {
	*t.sent = true
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

func TestFence(t *testing.T) {
	const (
		me           = "cp_1"
		servicePatch = "/api/v1/namespaces/faults/services/web/status"
		poolStatus   = "/apis/ironlb.io/v1alpha1/ippools/faults/status"
		lease        = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases/ironlb-controller"
		coreEvent    = "/api/v1/namespaces/faults/events"
		event        = "/apis/events.k8s.io/v1/namespaces/faults/events/web.1"
	)
	// renewal is what the lock does before the request, ago before it.
	type renewal struct {
		op     string // "create" or "update"
		holder string
		err    error
		ago    time.Duration
	}
	tests := []struct {
		name           string
		noElection     bool
		renewals       []renewal
		method, path   string
		wantSent       bool
		wantFenceError bool
	}{
		{name: "never held: write refused", method: http.MethodPatch, path: servicePatch, wantFenceError: true},
		{name: "never held: read passes", method: http.MethodGet, path: servicePatch, wantSent: true},
		{name: "never held: watch passes", method: http.MethodGet, path: "/api/v1/services", wantSent: true},
		{name: "never held: lease create passes", method: http.MethodPost, path: "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases", wantSent: true},
		{name: "never held: lease update passes", method: http.MethodPut, path: lease, wantSent: true},
		{name: "never held: core event passes", method: http.MethodPost, path: coreEvent, wantSent: true},
		{name: "never held: event patch passes", method: http.MethodPatch, path: event, wantSent: true},
		{name: "leader election off: write passes", noElection: true, method: http.MethodPatch, path: servicePatch, wantSent: true},
		{
			name:     "renewed 2 s ago: write passes",
			renewals: []renewal{{op: "update", holder: me, ago: 2 * time.Second}},
			method:   http.MethodPatch, path: servicePatch, wantSent: true,
		},
		{
			name:     "created 9.9 s ago: write passes",
			renewals: []renewal{{op: "create", holder: me, ago: 9900 * time.Millisecond}},
			method:   http.MethodPut, path: poolStatus, wantSent: true,
		},
		{
			name:     "renewed 10 s ago: write refused",
			renewals: []renewal{{op: "update", holder: me, ago: renewDeadline}},
			method:   http.MethodPatch, path: servicePatch, wantFenceError: true,
		},
		{
			name:     "renewed 20 s ago (paused): every method refused",
			renewals: []renewal{{op: "update", holder: me, ago: 20 * time.Second}},
			method:   http.MethodDelete, path: "/api/v1/namespaces/faults/services/web", wantFenceError: true,
		},
		{
			name:     "renewed 20 s ago: POST refused",
			renewals: []renewal{{op: "update", holder: me, ago: 20 * time.Second}},
			method:   http.MethodPost, path: "/api/v1/namespaces/faults/services", wantFenceError: true,
		},
		{
			name:     "renewed 20 s ago: lease still passes",
			renewals: []renewal{{op: "update", holder: me, ago: 20 * time.Second}},
			method:   http.MethodPut, path: lease, wantSent: true,
		},
		{
			name:     "renewed 20 s ago: a Lease of another group is fenced",
			renewals: []renewal{{op: "update", holder: me, ago: 20 * time.Second}},
			method:   http.MethodPut, path: "/apis/example.com/v1/namespaces/x/leases/y", wantFenceError: true,
		},
		{
			name:     "renewed 20 s ago: a namespace called events is fenced",
			renewals: []renewal{{op: "update", holder: me, ago: 20 * time.Second}},
			method:   http.MethodPut, path: "/api/v1/namespaces/events", wantFenceError: true,
		},
		{
			name: "the last renewal counts",
			renewals: []renewal{
				{op: "create", holder: me, ago: 30 * time.Second},
				{op: "update", holder: me, ago: 3 * time.Second},
			},
			method: http.MethodPatch, path: servicePatch, wantSent: true,
		},
		{
			name: "failed renewal after an old one: refused",
			renewals: []renewal{
				{op: "update", holder: me, ago: 11 * time.Second},
				{op: "update", holder: me, err: errors.New("conflict"), ago: 2 * time.Second},
			},
			method: http.MethodPatch, path: servicePatch, wantFenceError: true,
		},
		{
			name: "release (no holder) opens nothing",
			renewals: []renewal{
				{op: "update", holder: me, ago: 11 * time.Second},
				{op: "update", holder: "", ago: 2 * time.Second},
			},
			method: http.MethodPatch, path: servicePatch, wantFenceError: true,
		},
		{
			name:     "another holder's record opens nothing",
			renewals: []renewal{{op: "update", holder: "cp_2", ago: time.Second}},
			method:   http.MethodPatch, path: servicePatch, wantFenceError: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newWriteFence(me, !tt.noElection)
				// The renewals come ago before the request, oldest first.
				var first time.Duration
				if len(tt.renewals) > 0 {
					first = tt.renewals[0].ago
				}
				start := time.Now()
				for _, r := range tt.renewals {
					time.Sleep(first - r.ago - time.Since(start))
					lock := f.lock(fakeLock{err: r.err})
					ler := resourcelock.LeaderElectionRecord{HolderIdentity: r.holder}
					var err error
					if r.op == "create" {
						err = lock.Create(t.Context(), ler)
					} else {
						err = lock.Update(t.Context(), ler)
					}
					if err != r.err {
						t.Fatalf("lock %s: %v, want %v", r.op, err, r.err)
					}
				}
				time.Sleep(first - time.Since(start))
				sent := false
				req, err := http.NewRequest(tt.method, "https://198.51.100.2:6443"+tt.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := f.wrap(sentTransport{&sent}).RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				if sent != tt.wantSent {
					t.Errorf("%s %s: sent %v, want %v (err %v)", tt.method, tt.path, sent, tt.wantSent, err)
				}
				if got := errors.Is(err, errFenced); got != tt.wantFenceError {
					t.Errorf("%s %s: error %v, want a fence error: %v", tt.method, tt.path, err, tt.wantFenceError)
				}
			})
		})
	}
}

// TestLeaseLockConfig checks that the Lease lock's client leaves the
// controller's config alone: rest.AddUserAgent, which controller-runtime
// uses on a copy, changes its argument in place.
func TestLeaseLockConfig(t *testing.T) {
	cfg := &rest.Config{Host: "https://198.51.100.2:6443", UserAgent: "ironlb-controller/dev (cp_1)"}
	want := rest.CopyConfig(cfg)
	lock, err := newLeaseLock(cfg, "ironlb-system", leaseName, "cp_1")
	if err != nil {
		t.Fatal(err)
	}
	if lock.Identity() != "cp_1" || lock.LeaseMeta.Name != leaseName {
		t.Errorf("lock %s, identity %s", lock.Describe(), lock.Identity())
	}
	if cfg.UserAgent != want.UserAgent || cfg.Timeout != want.Timeout {
		t.Errorf("config changed: user agent %q, timeout %s; want %q, %s", cfg.UserAgent, cfg.Timeout, want.UserAgent, want.Timeout)
	}
}
