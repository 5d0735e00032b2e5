package faults

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labcluster"
	"github.com/ironlb/ironlb/internal/labnet"
)

// Rows 8 and 9 (in Scenarios) hit the controller: its leader paused past
// its lease, and its process killed again and again while Services
// churn. Each churns Services of its own (see churn), so the suite's
// Services keep their addresses and their traffic, which the suite's
// watch holds to the usual bounds meanwhile. Row 8 needs the cluster's
// audit log (labcluster.Options.AuditLog).

// leaseKey is the controller's leader-election Lease.
var leaseKey = types.NamespacedName{Namespace: kube.DefaultNamespace, Name: "ironlb-controller"}

// leaderPaused is row 8: two controllers with leader election; while
// Services churn, the leader is stopped (SIGSTOP) for 20 s, longer than
// the lease (15 s), so the other takes over (if it has not yet, the
// pause lasts until it has), and then resumed. The old
// leader must write nothing once the other holds the Lease: a write from
// its stale ledger could hand out an address the new leader gave away
// meanwhile. The API server's audit log tells the two apart (each runs
// as a user of its own, impersonated through its kubeconfig, so the check
// does not rely on anything the controller does), and says who wrote what
// and when. No churned address may be held twice or move.
func leaderPaused(ctx context.Context, e *Env) Result {
	const (
		ns, pool = "faults-leader", "faults-leader"
		before   = 5 * time.Second  // churn before the pause
		paused   = 20 * time.Second // longer than the lease duration, 15 s
		after    = 15 * time.Second // churn after it
		rate     = 15.0             // operations a second
	)
	return e.churnRow(ctx, ns, labcluster.Bounds{}, func(_ map[netip.Addr]string, r *Result) {
		ch, k, stop, err := e.startChurn(ctx, ns, pool, netip.MustParsePrefix("203.0.113.32/27"), 24, false)
		if r.fail(err) {
			return
		}
		defer func() { r.fail(stop()) }()

		var replicas []*labnet.Process
		defer func() { r.fail(errors.Join(e.singleController(replicas), e.deleteLease(ctx))) }()
		if r.fail(e.C.Controller.Stop()) || r.fail(e.deleteLease(ctx)) {
			return
		}
		start := func(user string) (*labnet.Process, error) {
			kubeconfig, err := e.impersonating(user)
			if err != nil {
				return nil, err
			}
			p, err := e.C.StartController("--leader-elect=true", "--kubeconfig", kubeconfig)
			if err == nil {
				replicas = append(replicas, p)
			}
			return p, err
		}
		const oldUser, newUser = "ironlb-replica-a", "ironlb-replica-b"
		leader, err := start(oldUser)
		if r.fail(err) {
			return
		}
		var oldID string
		err = labcluster.Eventually(ctx, 30*time.Second, func() (err error) {
			oldID, err = e.leaseHolder(ctx)
			return err
		})
		if r.fail(err) {
			return
		}
		standby, err := start(newUser)
		if r.fail(err) {
			return
		}
		if r.fail(waitLog(ctx, standby, "Attempting to acquire leader lease", 30*time.Second)) {
			return
		}
		e.Logf("leader %s (%s); standby started", oldUser, oldID)

		churned := make(chan error, 1)
		go func() { churned <- ch.run(ctx, int(rate*(before+paused+after).Seconds()), rate, 4) }()
		sleep(ctx, before)
		if r.fail(leader.Pause()) {
			return
		}
		pausedAt := time.Now()
		sleep(ctx, paused)
		// The standby takes the Lease 15 s after it saw the last renewal,
		// at its first try after that; its tries are 2 to 4.4 s apart
		// (client-go jitters them), so that can be as late as 24 s into
		// the pause. Until it has, the row tests nothing: the pause lasts
		// until then.
		var newID string
		err = labcluster.Eventually(ctx, 10*time.Second, func() (err error) {
			newID, err = e.leaseHolder(ctx)
			if err == nil && newID == oldID {
				err = errors.New("the standby has not taken the Lease")
			}
			return err
		})
		r.fail(err)
		r.fail(leader.Resume())
		resumedAt := time.Now()
		e.Logf("leader paused %s; Lease now held by %s", resumedAt.Sub(pausedAt).Round(10*time.Millisecond), newID)
		select {
		case <-leader.Done():
			e.Logf("the old leader exited %s after it resumed", time.Since(resumedAt).Round(10*time.Millisecond))
		case <-time.After(after):
			r.fail(fmt.Errorf("the old leader still runs %s after it resumed", after))
		}
		r.fail(<-churned)

		events, err := e.C.AuditEvents()
		if r.fail(err) {
			return
		}
		took, writes, err := writesAfterTakeover(events, oldUser, newUser)
		if r.fail(err) {
			return
		}
		e.Logf("%s took the Lease %s into the pause", newUser, took.Sub(pausedAt).Round(10*time.Millisecond))
		// The controller names its Lease identity in its user agent, so
		// that an audit log tells replicas apart without our impersonation.
		for _, ev := range events {
			if ev.Who() == oldUser && !strings.Contains(ev.UserAgent, "("+oldID+")") {
				r.fail(fmt.Errorf("the old leader's user agent %q does not name its identity %s", ev.UserAgent, oldID))
				break
			}
		}
		for i, w := range writes {
			if i == 10 {
				r.fail(fmt.Errorf("and %d more writes of the old leader", len(writes)-10))
				break
			}
			r.fail(fmt.Errorf("the old leader wrote after it lost the Lease: %s %s: %d, %s after the takeover (user agent %q)",
				w.Verb, w.RequestURI, w.ResponseStatus.Code, w.Completed.Sub(took).Round(time.Millisecond), w.UserAgent))
		}
		if refused, err := leader.Log(); err == nil {
			e.Logf("the old leader's writes refused by its fence: %d", strings.Count(string(refused), "write refused"))
		}
		r.Errs = append(r.Errs, e.churnSettled(ctx, ch, k)...)
	})
}

// writesAfterTakeover finds when newUser took the controller's Lease (the
// first successful write of it by newUser, as the API server received it)
// and returns every successful write oldUser made that the API server
// answered after that, but for the Lease and events.
func writesAfterTakeover(events []labcluster.AuditEvent, oldUser, newUser string) (time.Time, []labcluster.AuditEvent, error) {
	isLease := func(ev labcluster.AuditEvent) bool {
		return ev.ObjectRef.APIGroup == "coordination.k8s.io" && ev.ObjectRef.Resource == "leases" && ev.ObjectRef.Name == leaseKey.Name
	}
	var took time.Time
	for _, ev := range events {
		if ev.Who() == newUser && isLease(ev) && ev.Succeeded() && (ev.Verb == "create" || ev.Verb == "update") {
			took = ev.Received
			break
		}
	}
	if took.IsZero() {
		return took, nil, fmt.Errorf("the audit log shows no write of the Lease by %s", newUser)
	}
	var out []labcluster.AuditEvent
	for _, ev := range events {
		if ev.Who() == oldUser && ev.Succeeded() && !isLease(ev) && ev.ObjectRef.Resource != "events" && ev.Completed.After(took) {
			out = append(out, ev)
		}
	}
	return took, out, nil
}

// controllerKilledDuringChurn is row 9: 2,000 operations on 40 Services
// (create, delete, LoadBalancer <-> ClusterIP, requested address, sharing
// key, labels), with the controller killed (SIGKILL) and started again
// five times along the way. No address may be held by two Services that
// may not share it, no Service may lose or change its address while what
// it asks for stays the same, and once the churn stops every LoadBalancer
// Service holds an address if one is to be had.
func controllerKilledDuringChurn(ctx context.Context, e *Env) Result {
	const ns, pool, ops, kills = "faults-churn", "faults-churn", 2000, 5
	rate := 10.0
	if e.Short {
		rate = 25
	}
	return e.churnRow(ctx, ns, labcluster.Bounds{}, func(_ map[netip.Addr]string, r *Result) {
		ch, k, stop, err := e.startChurn(ctx, ns, pool, netip.MustParsePrefix("203.0.113.0/27"), 40, false)
		if r.fail(err) {
			return
		}
		defer func() { r.fail(stop()) }()
		start := time.Now()
		churned := make(chan error, 1)
		go func() { churned <- ch.run(ctx, ops, rate, 4) }()
		d := time.Duration(float64(ops) / rate * float64(time.Second))
		for i := 1; i <= kills; i++ {
			sleep(ctx, time.Until(start.Add(d*time.Duration(i)/(kills+1))))
			n, _ := ch.total()
			e.Logf("kill %d of the controller, after %d operations", i, n)
			if r.fail(e.C.Controller.Kill()) || r.fail(e.C.RespawnController()) {
				return
			}
		}
		r.fail(<-churned)
		n, kinds := ch.total()
		e.Logf("%d operations in %s: %v", n, time.Since(start).Round(time.Second), kinds)
		r.Errs = append(r.Errs, e.churnSettled(ctx, ch, k)...)
	})
}

// churnRow is run for a row that churns Services in namespace ns: the
// suite's watch also sees the churned Services, whose addresses change
// on purpose, so what it reports of them alone is left out (the row's
// checker holds them to their own rules). bounds are the watch's.
func (e *Env) churnRow(ctx context.Context, ns string, bounds labcluster.Bounds, f func(owners map[netip.Addr]string, r *Result)) Result {
	r := run(ctx, e, bounds, f)
	n := len(r.Report.Changes)
	r.Report.Changes = slices.DeleteFunc(r.Report.Changes, func(c string) bool { return onlyIn(c, ns) })
	if n -= len(r.Report.Changes); n > 0 {
		e.Logf("%d changes to the churn's own Services left out of the watch's report", n)
	}
	return r
}

// serviceName matches a namespace/name in the watch's words.
var serviceName = regexp.MustCompile(`([a-z0-9-]+)/[a-z0-9-]+`)

// onlyIn reports whether every Service that change names is in namespace
// ns.
func onlyIn(change, ns string) bool {
	names := serviceName.FindAllStringSubmatch(change, -1)
	for _, m := range names {
		if m[1] != ns {
			return false
		}
	}
	return len(names) > 0
}

// startChurn makes the churn of n Services in namespace ns, with its pool
// holding prefix, announced or not (see churn), and starts its checker. stop stops the checker and
// deletes the churn's objects.
func (e *Env) startChurn(ctx context.Context, ns, pool string, prefix netip.Prefix, n int, announced bool) (*churn, *checker, func() error, error) {
	ch := newChurn(e.C.Client, ns, pool, prefix, n)
	ch.announced = announced
	if err := ch.setup(ctx); err != nil {
		return nil, nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(e.C.CP.Config)
	if err != nil {
		return nil, nil, nil, errors.Join(err, ch.cleanup(ctx))
	}
	wctx, cancel := context.WithCancel(ctx)
	k, err := watchChurn(wctx, cs, ns)
	if err != nil {
		cancel()
		return nil, nil, nil, errors.Join(err, ch.cleanup(ctx))
	}
	return ch, k, func() error {
		cancel()
		return ch.cleanup(ctx)
	}, nil
}

// churnSettled checks the churn once it has stopped: every LoadBalancer
// Service holds an address where one is to be had, within 60 s, and the
// checker saw no duplicate and no move.
func (e *Env) churnSettled(ctx context.Context, ch *churn, k *checker) []error {
	settled := time.Now()
	err := ch.unmet(ctx, 60*time.Second)
	if err == nil {
		e.Logf("churn settled in %s", time.Since(settled).Round(100*time.Millisecond))
	}
	errs, moves, dups, events := k.result()
	e.Logf("checker: %d events, %d duplicates, %d moves", events, dups, moves)
	if len(errs) > 20 {
		errs = append(errs[:20], fmt.Errorf("and %d more", len(errs)-20))
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

// singleController stops the controllers in replicas and starts the
// cluster's own again (Cluster.RespawnController), without leader
// election, as the other rows expect it.
func (e *Env) singleController(replicas []*labnet.Process) error {
	var errs []error
	for _, p := range replicas {
		errs = append(errs, p.Stop())
	}
	select {
	case <-e.C.Controller.Done():
		errs = append(errs, e.C.RespawnController())
	default: // never stopped
	}
	return errors.Join(errs...)
}

// leaseHolder returns the holder of the controller's Lease.
func (e *Env) leaseHolder(ctx context.Context) (string, error) {
	var l coordinationv1.Lease
	if err := e.C.Client.Get(ctx, leaseKey, &l); err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return "", errors.New("the controller's Lease has no holder")
	}
	return *l.Spec.HolderIdentity, nil
}

// impersonating writes a kubeconfig that acts as user (a member of
// system:masters), so the audit log names whoever uses it, and returns its
// path.
func (e *Env) impersonating(user string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(e.C.CP.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
		a.ImpersonateGroups = []string{"system:masters"}
	}
	path := filepath.Join(e.C.Lab.Dir(), user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// waitLog waits until p's log contains s.
func waitLog(ctx context.Context, p *labnet.Process, s string, timeout time.Duration) error {
	return labcluster.Eventually(ctx, timeout, func() error {
		b, err := p.Log()
		if err == nil && !strings.Contains(string(b), s) {
			err = fmt.Errorf("%s's log does not say %q", filepath.Base(p.LogPath), s)
		}
		return err
	})
}

// deleteLease deletes the controller's Lease, if there is one.
func (e *Env) deleteLease(ctx context.Context) error {
	l := &coordinationv1.Lease{}
	l.Namespace, l.Name = leaseKey.Namespace, leaseKey.Name
	return client.IgnoreNotFound(e.C.Client.Delete(ctx, l))
}
