package controller

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/records"
)

// svcRecord is what the controller keeps of one Service between events:
// the parsed request and the few fields of metadata and status that the
// reconciler reads, instead of the whole object.
//
// Why not controller-runtime's cache of *corev1.Service: a cached Service
// costs about 1.4 KiB even without managedFields (the struct alone is 592
// bytes, and every string, map and pointer field is an allocation of its
// own), and the Go heap grows well past whatever is live before it
// collects. At 10,000 Services the cache was most of the controller's live
// heap; a record (for a typical LoadBalancer Service, with its map entry)
// is about 600 bytes. Nothing is written from a record: the status is
// patched (see statusPatch), so fields not kept here cannot be lost.
//
// A records.Store holds one per Service (see serviceAPI.recordStore). A
// record is immutable once stored; an event replaces it. Readers may keep
// it without copying.
type svcRecord struct {
	nn              types.NamespacedName // the namespace is interned
	uid             compactUID
	resourceVersion string
	generation      int64
	created         int64             // creationTimestamp in Unix nanoseconds, for ordering only
	labels          map[string]string // the decoded map itself, never modified
	class           string            // spec.loadBalancerClass, if hasClass

	// req and reqErr are parseRequest's answer, only for type LoadBalancer.
	req    request
	reqErr error

	// ingress are the addresses in status.loadBalancer.ingress that parse,
	// unmapped (kube.IngressIPs).
	ingress []netip.Addr
	// cond is the first IPAllocated condition in status.conditions, if
	// hasCond.
	cond ownCondition
	// statusSharing is the annotationStatusSharing value; 0 if there is
	// none (or it does not parse).
	statusSharing uint64

	deleting bool // metadata.deletionTimestamp is set
	isLB     bool // spec.type is LoadBalancer
	hasClass bool // spec.loadBalancerClass is set
	// ingressExact says status.loadBalancer.ingress is exactly what
	// ingressFor(ingress) writes: every entry an address in canonical form
	// with ipMode VIP (or none: see newRecord) and nothing else. hadIngress: it is not empty.
	ingressExact bool
	hadIngress   bool
	hasCond      bool
}

// ownCondition is ironlb's condition as a record keeps it; the other
// conditions are not kept (the status patch merges by type and leaves them
// alone).
type ownCondition struct {
	status             metav1.ConditionStatus
	reason, message    string
	observedGeneration int64
}

// newRecord reduces svc to a record. It keeps references to svc's strings
// and label map, which nobody else holds, not to svc itself.
func newRecord(svc *corev1.Service) *svcRecord {
	r := &svcRecord{
		nn:              types.NamespacedName{Namespace: intern(svc.Namespace), Name: svc.Name},
		uid:             compactUIDOf(svc.UID),
		resourceVersion: svc.ResourceVersion,
		generation:      svc.Generation,
		created:         unixNano(svc.CreationTimestamp.Time),
		labels:          svc.Labels,
		deleting:        !svc.DeletionTimestamp.IsZero(),
		isLB:            svc.Spec.Type == corev1.ServiceTypeLoadBalancer,
		hadIngress:      len(svc.Status.LoadBalancer.Ingress) > 0,
	}
	if len(r.labels) == 0 {
		r.labels = nil
	}
	if v, ok := svc.Annotations[annotationStatusSharing]; ok {
		r.statusSharing, _ = strconv.ParseUint(v, 16, 64)
	}
	if svc.Spec.LoadBalancerClass != nil {
		r.hasClass, r.class = true, intern(*svc.Spec.LoadBalancerClass)
	}
	if r.isLB {
		r.req, r.reqErr = parseRequest(svc)
	}
	r.ingress = kube.IngressIPs(svc)
	r.ingressExact = len(r.ingress) == len(svc.Status.LoadBalancer.Ingress)
	for i, in := range svc.Status.LoadBalancer.Ingress {
		if !r.ingressExact {
			break
		}
		// No ipMode counts as VIP: API servers from 1.30 on default an
		// ingress IP's ipMode to VIP (so none is never stored there), and
		// older ones drop the field, so demanding it would rewrite every
		// Service's status at every reconcile, to no effect.
		r.ingressExact = in.IP == r.ingress[i].String() && in.Hostname == "" && len(in.Ports) == 0 &&
			(in.IPMode == nil || *in.IPMode == corev1.LoadBalancerIPModeVIP)
	}
	if len(r.ingress) == 0 {
		r.ingress = nil
	}
	if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated); c != nil {
		r.hasCond = true
		r.cond = ownCondition{
			status:             metav1.ConditionStatus(intern(string(c.Status))),
			reason:             intern(c.Reason),
			message:            c.Message,
			observedGeneration: c.ObservedGeneration,
		}
	}
	return r
}

// intern returns the canonical copy of s, so the namespace, class and
// reason strings that thousands of records repeat are held once.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// unixNano is t in Unix nanoseconds, the zero time (which UnixNano leaves
// undefined) first of all.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// compactUID holds a UID in 16 bytes when it is a UUID in canonical form,
// as the API server makes them, and as its string otherwise: the 36-byte
// string would be a third of a record.
type compactUID struct {
	uuid  [16]byte
	other *types.UID // set when the UID is not a canonical UUID
}

func compactUIDOf(u types.UID) compactUID {
	var c compactUID
	s := string(u)
	if len(s) != 36 {
		return compactUID{other: &u}
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return compactUID{other: &u}
			}
			i++
			continue
		}
		hi, ok1 := fromLowerHex(s[i])
		lo, ok2 := fromLowerHex(s[i+1])
		if !ok1 || !ok2 {
			return compactUID{other: &u}
		}
		c.uuid[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return c
}

// UID returns the UID as the API server spelled it.
func (c compactUID) UID() types.UID {
	if c.other != nil {
		return *c.other
	}
	const hexDigits = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			b[i] = '-'
			i++
			continue
		}
		b[i], b[i+1] = hexDigits[c.uuid[j]>>4], hexDigits[c.uuid[j]&0xf]
		i, j = i+2, j+1
	}
	return types.UID(b[:])
}

// fromLowerHex decodes one lower-case hex digit: canonical UUIDs are
// lower case, and an upper-case one must come back as it was.
func fromLowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ours reports whether ironlb serves the Service: type LoadBalancer with no
// loadBalancerClass or class.
func (r *svcRecord) ours(class string) bool {
	return r.isLB && (!r.hasClass || r.class == class)
}

// object is a Service carrying only the record's identity, for events.
func (r *svcRecord) object() *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Namespace: r.nn.Namespace, Name: r.nn.Name, UID: r.uid.UID(), ResourceVersion: r.resourceVersion,
	}}
}

// serviceAPI is the controller's own client for Services: the list and
// watch behind the store of records (recordStore), and status patches,
// in protobuf and without gzip (records.ClientConfig).
type serviceAPI struct {
	c corev1client.CoreV1Interface
}

func newServiceAPI(cfg *rest.Config) (*serviceAPI, error) {
	c, err := corev1client.NewForConfig(records.ClientConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("service client: %w", err)
	}
	return &serviceAPI{c: c}, nil
}

// patchStatus applies a strategic merge patch to the status of the Service
// nn. The API server answers with the whole Service; nothing here needs
// it, so it is not decoded (the watch brings it to the store anyway).
func (a *serviceAPI) patchStatus(ctx context.Context, nn types.NamespacedName, patch []byte) error {
	return a.c.RESTClient().Patch(types.StrategicMergePatchType).
		Namespace(nn.Namespace).Resource("services").Name(nn.Name).SubResource("status").
		Body(patch).Do(ctx).Error()
}

// recordStore returns a store of a record per Service in the cluster,
// listed and watched through a. It keeps every Service, not only
// LoadBalancer ones: one that stops being one must still have its address
// released and ironlb's condition cleared (clearStatus reads its record).
// Every update is reported (Equal is nil): a record carries the
// resourceVersion and condition the next status patch is based on.
func (a *serviceAPI) recordStore() *records.Store[*svcRecord] {
	reduce := func(svc *corev1.Service) (*svcRecord, bool) { return newRecord(svc), true }
	return records.New(records.KindOf("services", a.c.Services(metav1.NamespaceAll), reduce, nil))
}

// serviceRecordsRunnable is the manager Runnable that fills the store of
// Service records (recordStore). It runs on every replica, leader or not,
// like the manager's caches, so a standby keeps its store warm.
type serviceRecordsRunnable struct {
	store *records.Store[*svcRecord]
}

// Start lists and watches Services into the store until ctx is done.
func (r serviceRecordsRunnable) Start(ctx context.Context) error { return r.store.Run(ctx) }

// NeedLeaderElection is false: see serviceRecordsRunnable.
func (serviceRecordsRunnable) NeedLeaderElection() bool { return false }

// selectRecords returns the records in store for which keep is true, in no
// particular order. It collects them first so that the caller acts on
// them without holding the store's lock (see records.Store.Range).
func selectRecords(store *records.Store[*svcRecord], keep func(*svcRecord) bool) []*svcRecord {
	var out []*svcRecord
	store.Range(func(_ types.NamespacedName, r *svcRecord) bool {
		if keep(r) {
			out = append(out, r)
		}
		return true
	})
	return out
}

// enqueueServices is the service controller's source of Service changes:
// every key the store reports goes to the work queue, its arrival time to
// the latency metric.
func enqueueServices(store *records.Store[*svcRecord], m *metrics) func(context.Context, workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	return func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		store.Subscribe(func(nn types.NamespacedName) {
			req := reconcile.Request{NamespacedName: nn}
			m.saw(req.String())
			q.Add(req)
		})
		return nil
	}
}
