package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func configMapNames(l *corev1.ConfigMapList, ns string) []string {
	var names []string
	for _, cm := range l.Items {
		if cm.Namespace == ns {
			names = append(names, cm.Name)
		}
	}
	slices.Sort(names)
	return names
}

// TestClientCRUD goes through the life of a ConfigMap: create, read, list,
// update (and a stale update), delete (and a delete of a recreated object).
func TestClientCRUD(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	ns := newNamespace(t, c)

	a := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a", Labels: map[string]string{"app": "lb"}},
		Data:       map[string]string{"k": "1"},
	}
	if err := c.Create(ctx, a); err != nil {
		t.Fatalf("create: %v", err)
	}
	if a.UID == "" || a.ResourceVersion == "" {
		t.Errorf("create did not fill the object: uid %q, resourceVersion %q", a.UID, a.ResourceVersion)
	}
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}
	b := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"}}
	if err := c.Create(ctx, b); err != nil {
		t.Fatalf("create: %v", err)
	}

	var got corev1.ConfigMap
	if err := c.Get(ctx, key(a), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if diff := cmp.Diff(a.Data, got.Data); diff != "" || got.UID != a.UID {
		t.Errorf("get: uid %s, want %s; data (-want +got):\n%s", got.UID, a.UID, diff)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "missing"}, &got); !apierrors.IsNotFound(err) {
		t.Errorf("get missing: %v, want NotFound", err)
	}

	var all corev1.ConfigMapList
	if err := c.List(ctx, &all); err != nil {
		t.Fatalf("list: %v", err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, configMapNames(&all, ns)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	var labelled corev1.ConfigMapList
	if err := c.ListIn(ctx, &labelled, ns, map[string]string{"app": "lb"}); err != nil {
		t.Fatalf("list in: %v", err)
	}
	if diff := cmp.Diff([]string{"a"}, configMapNames(&labelled, ns)); diff != "" || len(labelled.Items) != 1 {
		t.Errorf("list in %s with app=lb: %d items (-want +got):\n%s", ns, len(labelled.Items), diff)
	}

	stale := a.DeepCopy()
	a.Data["k"] = "2"
	if err := c.Update(ctx, a); err != nil {
		t.Fatalf("update: %v", err)
	}
	if a.ResourceVersion == stale.ResourceVersion {
		t.Error("update did not fill in the new resourceVersion")
	}
	stale.Data["k"] = "3"
	if err := c.Update(ctx, stale); !apierrors.IsConflict(err) {
		t.Errorf("stale update: %v, want Conflict", err)
	}

	if err := c.Delete(ctx, a, "not-the-uid"); !apierrors.IsConflict(err) {
		t.Errorf("delete with a wrong uid: %v, want Conflict", err)
	}
	if err := c.Get(ctx, key(a), &got); err != nil {
		t.Errorf("get after the refused delete: %v", err)
	}
	if err := c.Delete(ctx, a, a.UID); err != nil {
		t.Errorf("delete with the uid: %v", err)
	}
	if err := c.Delete(ctx, b, ""); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := c.Get(ctx, key(a), &got); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
}

// TestPatchStatus adds a condition to a Service's status by strategic
// merge patch, which merges status.conditions by type.
func TestPatchStatus(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	ns := newNamespace(t, c)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatalf("create: %v", err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	patch := func(cond metav1.Condition) {
		t.Helper()
		data, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []metav1.Condition{cond}}})
		if err != nil {
			t.Fatal(err)
		}
		target := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
		if err := c.PatchStatus(ctx, target, types.StrategicMergePatchType, data); err != nil {
			t.Fatalf("patch status: %v", err)
		}
		if meta.FindStatusCondition(target.Status.Conditions, cond.Type) == nil {
			t.Errorf("the answer to the patch lacks condition %s: %+v", cond.Type, target.Status.Conditions)
		}
	}
	patch(metav1.Condition{Type: "Announced", Status: metav1.ConditionTrue, Reason: "Layer2", Message: "by node-a", LastTransitionTime: now})
	patch(metav1.Condition{Type: "Pinned", Status: metav1.ConditionFalse, Reason: "None", LastTransitionTime: now})

	var got corev1.Service
	if err := c.Get(ctx, key(svc), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	var condTypes []string
	for _, cond := range got.Status.Conditions {
		condTypes = append(condTypes, cond.Type)
	}
	slices.Sort(condTypes) // a strategic merge patch puts new list items first
	if diff := cmp.Diff([]string{"Announced", "Pinned"}, condTypes); diff != "" {
		t.Errorf("conditions after two patches (-want +got):\n%s", diff)
	}
	if err := c.PatchStatus(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "missing"}},
		types.MergePatchType, []byte(`{}`)); !apierrors.IsNotFound(err) {
		t.Errorf("patch of a missing Service: %v, want NotFound", err)
	}
}

// TestCustomResource reads and writes ironlb's own kinds, which the API
// server serves as JSON only, through a client asking for protobuf: a
// cluster-scoped IPPool and a namespaced ServiceAnnouncement.
func TestCustomResource(t *testing.T) {
	ctx := t.Context()
	var ct contentTypes
	c := newClient(t, func(cfg *rest.Config) {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.WrapTransport = ct.wrap
	})
	ns := newNamespace(t, c)
	name := fmt.Sprintf("apiclient-%x", time.Now().UnixNano()&0xffffff)

	pool := &v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []string{"192.0.2.0/28"}},
	}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatalf("create IPPool: %v", err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), pool, "") })
	var got v1alpha1.IPPool
	if err := c.Get(ctx, key(pool), &got); err != nil {
		t.Fatalf("get IPPool: %v", err)
	}
	if got.Spec.AutoAssign == nil || !*got.Spec.AutoAssign {
		t.Errorf("autoAssign = %v, want the CRD's default true", got.Spec.AutoAssign)
	}
	var pools v1alpha1.IPPoolList
	if err := c.List(ctx, &pools); err != nil {
		t.Fatalf("list IPPools: %v", err)
	}
	if !slices.ContainsFunc(pools.Items, func(p v1alpha1.IPPool) bool { return p.Name == name }) {
		t.Errorf("list lacks IPPool %s", name)
	}
	data := []byte(`{"status":{"conditions":[{"type":"Valid","status":"True","reason":"Valid","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
	if err := c.PatchStatus(ctx, pool, types.MergePatchType, data); err != nil {
		t.Fatalf("patch IPPool status: %v", err)
	}
	if !meta.IsStatusConditionTrue(pool.Status.Conditions, "Valid") {
		t.Errorf("IPPool conditions after the patch: %+v", pool.Status.Conditions)
	}
	if err := c.Delete(ctx, pool, "not-the-uid"); !apierrors.IsConflict(err) {
		t.Errorf("delete IPPool with a wrong uid: %v, want Conflict", err)
	}
	if err := c.Delete(ctx, pool, pool.UID); err != nil {
		t.Errorf("delete IPPool: %v", err)
	}

	sa := &v1alpha1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatalf("create ServiceAnnouncement: %v", err)
	}
	var sas v1alpha1.ServiceAnnouncementList
	if err := c.ListIn(ctx, &sas, ns, nil); err != nil || len(sas.Items) != 1 {
		t.Errorf("list ServiceAnnouncements in %s: %d items, error %v; want 1", ns, len(sas.Items), err)
	}

	answers := ct.of("/apis/ironlb.io/v1alpha1/ippools/" + name)
	if len(answers) == 0 {
		t.Error("no answer about the IPPool recorded")
	}
	for _, typ := range answers {
		if typ != "application/json" {
			t.Errorf("IPPool answered as %s, want application/json", typ)
		}
	}
}

// TestProtobufListWatch lists and watches Services as protobuf through
// ListWatch, the way an informer does.
func TestProtobufListWatch(t *testing.T) {
	ctx := t.Context()
	var ct contentTypes
	c := newClient(t, func(cfg *rest.Config) {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.WrapTransport = ct.wrap
	})
	ns := newNamespace(t, c)
	mk := func(name string) {
		t.Helper()
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	mk("first")
	mk("second")

	lf, wf := c.ListWatch(&corev1.ServiceList{}, ns, "metadata.name=second")
	out, err := lf(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	list, ok := out.(*corev1.ServiceList)
	if !ok {
		t.Fatalf("list returned a %T", out)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "second" || list.Items[0].Spec.ClusterIP == "" {
		t.Fatalf("list: %+v, want only Service second with its cluster IP", list.Items)
	}
	out2, _ := lf(ctx, metav1.ListOptions{})
	if out2 == out {
		t.Error("two list calls returned the same object")
	}
	if got := ct.of("/api/v1/namespaces/" + ns + "/services"); len(got) == 0 || got[0] != "application/vnd.kubernetes.protobuf" {
		t.Errorf("list answered as %v, want protobuf", got)
	}

	w, err := wf(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	var del corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "second"}, &del); err != nil {
		t.Fatal(err)
	}
	mk("third") // not selected: the watch must not see it
	if err := c.Delete(ctx, &del, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		svc, ok := ev.Object.(*corev1.Service)
		if ev.Type != watch.Deleted || !ok || svc.Name != "second" {
			t.Errorf("watch event %s %T %v, want Deleted Service second", ev.Type, ev.Object, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
}
