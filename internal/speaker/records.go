package speaker

import (
	"context"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"unique"

	"github.com/google/uuid"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ironlb/ironlb/internal/apiclient"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/records"
)

// Every speaker reads every Service and EndpointSlice of the cluster, but
// only a few fields of each, and only of some: the records below are all
// it keeps (see package records for why not an informer's cache). At
// 10,000 Services with an EndpointSlice each, slimmed API objects in an
// informer were 18 MB of a speaker's live heap, and its first lists held
// every full object at once (test/bench/bgpscale).

// svcRecord is what a speaker keeps of a Service it serves (see
// reduceService).
type svcRecord struct {
	uid serviceUID
	// ips are the addresses in status.loadBalancer.ingress, sorted, each
	// once.
	ips   []netip.Addr
	local bool // externalTrafficPolicy: Local
}

// reduceService keeps a Service of type LoadBalancer of the speaker's
// class that has an address: nothing else is announced.
func reduceService(svc *corev1.Service, class string) (svcRecord, bool) {
	if !kube.Serves(svc, class) {
		return svcRecord{}, false
	}
	ips := kube.IngressIPs(svc)
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	if len(ips) == 0 {
		return svcRecord{}, false
	}
	return svcRecord{
		uid:   compactUID(svc.UID),
		ips:   slices.Clip(ips),
		local: kube.LocalTraffic(svc),
	}, true
}

// serviceUID is a Service's UID as a record keeps it. The API server
// makes every UID a UUID: held as its 16 bytes, where its text was an
// allocation of 48 bytes per record (470 KB at 10,000 Services). A UID
// that is not a UUID in its usual text (as fakes make them) is kept as
// text.
type serviceUID struct {
	id   uuid.UUID
	text string
}

func compactUID(u types.UID) serviceUID {
	if id, err := uuid.Parse(string(u)); err == nil && id != (uuid.UUID{}) && id.String() == string(u) {
		return serviceUID{id: id}
	}
	return serviceUID{text: string(u)}
}

// UID returns the UID as the API server has it.
func (u serviceUID) UID() types.UID {
	if u.id == (uuid.UUID{}) {
		return types.UID(u.text)
	}
	return types.UID(u.id.String())
}

func (a svcRecord) equal(b svcRecord) bool {
	return a.uid == b.uid && a.local == b.local && slices.Equal(a.ips, b.ips)
}

// sliceRecord is what a speaker keeps of an EndpointSlice: the Service it
// belongs to and the nodes holding a ready endpoint of it, for
// externalTrafficPolicy Local.
type sliceRecord struct {
	service string // its kubernetes.io/service-name label
	// nodes are the node names, sorted, each once, joined by NUL bytes. A
	// cluster's slices have few distinct sets of nodes: each is held once
	// (unique), where a []string per slice was 64 bytes more of every
	// record (10,000 slices in test/bench/bgpscale).
	nodes unique.Handle[string]
}

// eachNode yields the record's nodes, in order.
func (r sliceRecord) eachNode() iter.Seq[string] {
	return strings.SplitSeq(r.nodes.Value(), "\x00")
}

// reduceSlice keeps a slice of a Service that has a ready endpoint on a
// node: a slice with none adds no node to its Service's.
func reduceSlice(es *discoveryv1.EndpointSlice) (sliceRecord, bool) {
	svc, ok := kube.SliceService(es)
	if !ok {
		return sliceRecord{}, false
	}
	var nodes []string
	for _, ep := range es.Endpoints {
		if ep.NodeName != nil && kube.EndpointReady(ep) && !slices.Contains(nodes, *ep.NodeName) {
			nodes = append(nodes, *ep.NodeName)
		}
	}
	if len(nodes) == 0 {
		return sliceRecord{}, false
	}
	slices.Sort(nodes)
	return sliceRecord{service: svc, nodes: unique.Make(strings.Join(nodes, "\x00"))}, true
}

func (a sliceRecord) equal(b sliceRecord) bool {
	return a == b
}

// serviceRecords lists and watches, through c, the Services a speaker
// serves.
func serviceRecords[L runtime.Object](c records.Client[L], class string) *records.Store[svcRecord] {
	reduce := func(svc *corev1.Service) (svcRecord, bool) { return reduceService(svc, class) }
	return records.New(records.KindOf("services", c, reduce, svcRecord.equal))
}

// sliceRecords lists and watches the cluster's EndpointSlices.
func sliceRecords[L runtime.Object](c records.Client[L]) *records.Store[sliceRecord] {
	return records.New(records.KindOf("endpointslices", c, reduceSlice, sliceRecord.equal))
}

// lister is a kind's list and watch across namespaces through an
// apiclient.Client, as a records.Client.
type lister struct {
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func listWatch(c *apiclient.Client, list runtime.Object) lister {
	l, w := c.ListWatch(list, metav1.NamespaceAll, "")
	return lister{list: l, watch: w}
}

func (l lister) List(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	return l.list(ctx, o)
}

func (l lister) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	return l.watch(ctx, o)
}

// serviceObject is the Service key ("namespace/name") as an object that
// carries only its identity: what events and owner references need. Nil
// if services keeps no record of it.
func serviceObject(services *records.Store[svcRecord], key string) *corev1.Service {
	ns, name, _ := strings.Cut(key, "/")
	r, ok := services.Get(types.NamespacedName{Namespace: ns, Name: name})
	if !ok {
		return nil
	}
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: r.uid.UID()}}
}
