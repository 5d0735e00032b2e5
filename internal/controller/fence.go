package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Leader election's timing, controller-runtime's defaults written out,
// because the write fence depends on them: a standby takes the Lease no
// sooner than leaseDuration after it saw the last renewal, and the fence
// closes renewDeadline after a renewal began, before that can happen.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// leaseName is the leader-election Lease's name (in Options.Namespace).
const leaseName = "ironlb-controller"

// errFenced is the error of a write the fence refused.
var errFenced = errors.New("write refused: this replica may have lost the leader-election lease")

// writeFence keeps a controller that may have lost the leader-election
// Lease from writing to the API server.
//
// Why: client-go's elector gives up leadership only once renewing has
// failed for a whole renewDeadline, and controller-runtime's workers keep
// going until then. A leader that hangs (a SIGSTOP, a long GC pause, a
// frozen VM) for longer than the lease duration wakes up still taking
// itself for the leader; its elector, between two renewals when it
// stopped, starts a fresh attempt with a fresh deadline, so the old leader
// works on for another renewDeadline beside the new one. Its reconciles
// decide from a ledger that knows nothing of what the new leader
// allocated meanwhile: in the fault suite's row 8 (test/faults), without
// the fence, the old leader wrote a thousand statuses in those 10 s and
// the two leaders handed the same addresses to different Services. The
// fence makes the question
// "may I still be the leader?" part of every write instead: a write goes
// out only while the last successful renewal of the Lease is younger than
// renewDeadline. Elapsed time is read from the monotonic clock
// (time.Since), which runs on while the process is stopped, so a replica
// that wakes up after a long pause finds the fence closed before it has
// done anything.
//
// A renewal is counted from the moment its request was sent, and the
// other replicas count the lease duration from when they saw the renewal
// (later), so the fence closes at least leaseDuration-renewDeadline before
// any of them may take the Lease: that margin is the time a write that
// passed the fence has to reach the API server. A process stopped between
// the check and the write could still send it later; the status patches'
// resourceVersion precondition (statusPatch) then refuses it if the new
// leader has written that Service since.
//
// Reads always pass, and so do writes to Leases (the elector must go on
// renewing) and to Events. With leader election off there is no Lease and
// the fence is always open. Safe for concurrent use.
type writeFence struct {
	identity string
	limit    time.Duration
	always   bool // leader election is off
	// renewed is when the last successful renewal began; nil before the
	// first one.
	renewed atomic.Pointer[time.Time]
}

// newWriteFence returns a closed fence for the Lease holder identity, or
// an open one if leaderElection is false.
func newWriteFence(identity string, leaderElection bool) *writeFence {
	return &writeFence{identity: identity, limit: renewDeadline, always: !leaderElection}
}

// renewedAt records that a renewal sent at start succeeded.
func (f *writeFence) renewedAt(start time.Time) {
	for {
		old := f.renewed.Load()
		if old != nil && !start.After(*old) {
			return
		}
		if f.renewed.CompareAndSwap(old, &start) {
			return
		}
	}
}

// admit returns nil if a request of method to path may go out now, and
// otherwise an error that wraps errFenced.
func (f *writeFence) admit(method, path string) error {
	if f.always || !mutating(method) || unfenced(path) {
		return nil
	}
	r := f.renewed.Load()
	if r == nil {
		return fmt.Errorf("%w: %s %s: it has never held it", errFenced, method, path)
	}
	if age := time.Since(*r); age >= f.limit {
		return fmt.Errorf("%w: %s %s: last renewed %s ago (fence at %s)", errFenced, method, path, age.Round(time.Millisecond), f.limit)
	}
	return nil
}

// mutating reports whether an HTTP method may change something.
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// unfenced reports whether path (a Kubernetes API request path) is a
// Lease of coordination.k8s.io or an Event (core or events.k8s.io), which
// pass the fence: the elector needs the one, and an event changes no
// state anyone acts on.
func unfenced(path string) bool {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api": // /api/v1/...
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis": // /apis/group/version/...
		group, parts = parts[1], parts[3:]
	default:
		return false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return false
	}
	switch parts[0] {
	case "leases":
		return group == "coordination.k8s.io"
	case "events":
		return group == "" || group == "events.k8s.io"
	}
	return false
}

// wrap is a rest.Config WrapTransport: the returned transport refuses the
// requests the fence does not admit, without sending them.
func (f *writeFence) wrap(next http.RoundTripper) http.RoundTripper {
	return fencedTransport{fence: f, next: next}
}

type fencedTransport struct {
	fence *writeFence
	next  http.RoundTripper
}

func (t fencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.fence.admit(req.Method, req.URL.Path); err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// lock wraps the leader-election lock so that each of its successful
// Creates and Updates that makes identity the holder opens the fence
// (renewedAt). A release (an Update with no holder) does not.
func (f *writeFence) lock(l resourcelock.Interface) resourcelock.Interface {
	return fencedLock{Interface: l, fence: f}
}

type fencedLock struct {
	resourcelock.Interface
	fence *writeFence
}

func (l fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := l.Interface.Create(ctx, ler)
	l.renewed(ler, start, err)
	return err
}

func (l fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := l.Interface.Update(ctx, ler)
	l.renewed(ler, start, err)
	return err
}

func (l fencedLock) renewed(ler resourcelock.LeaderElectionRecord, start time.Time, err error) {
	if err == nil && ler.HolderIdentity == l.fence.identity {
		l.fence.renewedAt(start)
	}
}

// newIdentity is this replica's name in leader election, as
// controller-runtime makes it: the host name (the pod's name) and a UUID,
// so that a restarted process is a new candidate.
func newIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader-election identity: %w", err)
	}
	return host + "_" + string(uuid.NewUUID()), nil
}

// leaseEvents records the elector's events ("<identity> became leader")
// on the Lease through the controller's events.k8s.io recorder.
type leaseEvents struct{ r recorder.EventRecorder }

func (e leaseEvents) Eventf(obj runtime.Object, eventType, reason, message string, args ...any) {
	e.r.Eventf(obj, nil, eventType, reason, "LeaderElection", message, args...)
}

// newLeaseLock makes the Lease lock that controller-runtime would make
// (its leaderelection.NewResourceLock), here so that the fence can wrap it.
// The elector's events are recorded once the manager exists (see New).
func newLeaseLock(cfg *rest.Config, namespace, name, identity string) (*resourcelock.LeaseLock, error) {
	// A copy: rest.AddUserAgent would change cfg in place, and replace its
	// user agent with the default one.
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent += "/leader-election"
	// As controller-runtime does: one hung request must not outlast the
	// renew deadline and cost the Lease.
	cfg.Timeout = max(renewDeadline/2, time.Second)
	c, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("lease client: %w", err)
	}
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     c,
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}, nil
}
