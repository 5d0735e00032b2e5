package apiclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestCache fills a cache with a Node informer that transforms what it
// stores and a ConfigMap informer narrowed to one name in one namespace,
// and reads objects made after the start back from it, with each content
// type an informer may receive.
func TestCache(t *testing.T) {
	for _, contentType := range []string{"application/json", "application/vnd.kubernetes.protobuf"} {
		t.Run(contentType, func(t *testing.T) { testCache(t, contentType) })
	}
}

func testCache(t *testing.T, contentType string) {
	ctx := t.Context()
	c := newClient(t, func(cfg *rest.Config) { cfg.ContentType = contentType })
	ns := newNamespace(t, c)
	other := newNamespace(t, c)
	ca := NewCache(c)

	nodes, err := ca.Add(&corev1.Node{}, InformerOptions{
		Transform: func(in any) (any, error) {
			n := in.(*corev1.Node)
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			n.Labels["transformed"] = "yes"
			return n, nil
		},
	})
	if err != nil {
		t.Fatalf("add Node: %v", err)
	}
	if again, err := ca.Add(&corev1.Node{}, InformerOptions{}); err != nil || again != nodes {
		t.Errorf("second Add of Node: %v, %v; want the first informer", again, err)
	}
	if _, err := ca.Add(&corev1.ConfigMap{}, InformerOptions{Namespace: ns, FieldSelector: "metadata.name=wanted"}); err != nil {
		t.Fatalf("add ConfigMap: %v", err)
	}
	ca.Start(ctx)
	if _, err := ca.Add(&corev1.Secret{}, InformerOptions{}); !errors.Is(err, errStarted) {
		t.Errorf("Add after Start: %v, want %v", err, errStarted)
	}
	if !ca.WaitForSync(ctx) {
		t.Fatal("cache did not sync")
	}

	nodeName := fmt.Sprintf("apiclient-%x", time.Now().UnixNano()&0xffffff)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatalf("create node: %v", err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), node, "") })
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wanted"}, Data: map[string]string{"k": "v"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unwanted"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "wanted"}},
	} {
		if err := c.Create(ctx, cm); err != nil {
			t.Fatalf("create ConfigMap: %v", err)
		}
	}

	var gotNode corev1.Node
	eventually(t, "node in the cache", func() error { return ca.Get(ctx, key(node), &gotNode) })
	if gotNode.Labels["transformed"] != "yes" {
		t.Errorf("cached node labels %v: the transform did not run", gotNode.Labels)
	}
	if gotNode.ManagedFields != nil {
		t.Errorf("cached node keeps managedFields: %v", gotNode.ManagedFields)
	}
	gotNode.Labels["changed"] = "by the reader"
	var again corev1.Node
	if err := ca.Get(ctx, key(node), &again); err != nil || again.Labels["changed"] != "" {
		t.Errorf("Get does not copy: a change to one result shows in the next (%v)", err)
	}
	var nodeList corev1.NodeList
	if err := ca.List(ctx, &nodeList, true); err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if !slices.ContainsFunc(nodeList.Items, func(n corev1.Node) bool { return n.Name == nodeName }) {
		t.Errorf("cached node list lacks %s", nodeName)
	}

	var cm corev1.ConfigMap
	eventually(t, "ConfigMap in the cache", func() error {
		return ca.Get(ctx, types.NamespacedName{Namespace: ns, Name: "wanted"}, &cm)
	})
	if cm.Data["k"] != "v" {
		t.Errorf("cached ConfigMap data %v", cm.Data)
	}
	for _, k := range []types.NamespacedName{{Namespace: ns, Name: "unwanted"}, {Namespace: other, Name: "wanted"}} {
		if err := ca.Get(ctx, k, &cm); !apierrors.IsNotFound(err) {
			t.Errorf("get %s, outside the informer's selection: %v, want NotFound", k, err)
		}
	}
	var cms corev1.ConfigMapList
	if err := ca.List(ctx, &cms, false); err != nil {
		t.Fatalf("list ConfigMaps: %v", err)
	}
	if len(cms.Items) != 1 || cms.Items[0].Namespace != ns || cms.Items[0].Name != "wanted" {
		t.Errorf("cached ConfigMaps %v, want only %s/wanted", cms.Items, ns)
	}

	if err := ca.Get(ctx, types.NamespacedName{Name: "pool"}, &v1alpha1.IPPool{}); err == nil || apierrors.IsNotFound(err) {
		t.Errorf("get of a kind not added: %v, want an error that is not NotFound", err)
	}
	if err := ca.List(ctx, &corev1.ServiceList{}, false); err == nil {
		t.Error("list of a kind not added: no error")
	}
}
