package labnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// crdResource is the API resource of CustomResourceDefinitions. CRDs are
// handled as unstructured objects, which spares the lab a dependency on the
// apiextensions API module for three fields.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates the CRDs found in dir and waits until each is
// Established and served (see waitCRD), so that a client created afterwards
// finds them.
func (cp *ControlPlane) installCRDs(ctx context.Context, dir string) error {
	crds, err := readCRDs(dir)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	for _, crd := range crds {
		if _, err := dyn.Resource(crdResource).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create CRD %s: %w", crd.GetName(), err)
		}
	}
	// In parallel: the first request for each new resource takes the API
	// server a second (it builds the resource's storage and watch cache).
	var wg sync.WaitGroup
	errs := make([]error, len(crds))
	for i, crd := range crds {
		wg.Go(func() { errs[i] = cp.waitCRD(ctx, dyn, crd) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitCRD waits until crd is Established, and then until each of its served
// versions is listed by discovery and answers a LIST. That first LIST is what
// warms the API server up for the resource: done here, it does not add a
// second to whatever a test does first.
func (cp *ControlPlane) waitCRD(ctx context.Context, dyn dynamic.Interface, crd *unstructured.Unstructured) error {
	name := crd.GetName()
	err := poll(ctx, "CRD "+name+" is established", cp.APIServer, func(ctx context.Context) error {
		got, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !crdEstablished(got) {
			return errors.New("not established yet")
		}
		return nil
	})
	if err != nil {
		return err
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		version, _ := m["name"].(string)
		if served, _ := m["served"].(bool); !served {
			continue
		}
		gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
		err := poll(ctx, gvr.String()+" is served", cp.APIServer, func(ctx context.Context) error {
			list, err := cp.kube.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }) {
				return errors.New("not in discovery yet")
			}
			_, err = dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// crdEstablished reports whether a CRD's Established condition is True.
func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// readCRDs reads every CustomResourceDefinition from the manifests (*.yaml,
// *.yml, *.json; several documents per file allowed) in dir, in file name
// order. Any other kind of object is an error: the directory is meant for
// CRDs only.
func readCRDs(dir string) ([]*unstructured.Unstructured, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read CRDs: %w", err)
	}
	var crds []*unstructured.Unstructured
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		objs, err := ReadManifest(path)
		if err != nil {
			return nil, fmt.Errorf("read CRDs: %s: %w", path, err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" || !strings.HasPrefix(o.GetAPIVersion(), "apiextensions.k8s.io/") {
				return nil, fmt.Errorf("read CRDs: %s: %s %q is not a CustomResourceDefinition", path, o.GetKind(), o.GetName())
			}
			crds = append(crds, o)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("read CRDs: no CustomResourceDefinition in %s", dir)
	}
	return crds, nil
}

// ReadManifest decodes every non-empty YAML or JSON document of a file.
func ReadManifest(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue // an empty document between two "---"
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// createObjects creates SystemNamespace and a Ready Node for each lab node.
func (cp *ControlPlane) createObjects(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if _, err := cp.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", SystemNamespace, err)
	}
	for _, h := range cp.lab.nodes {
		if err := cp.createNode(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// createNode registers h as a kubelet would: labels on create, then
// addresses and a Ready condition through the status subresource.
func (cp *ControlPlane) createNode(ctx context.Context, h *Host) error {
	nodes := cp.kube.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: h.Name,
		Labels: map[string]string{
			corev1.LabelHostname: h.Name,
			corev1.LabelOSStable: "linux",
			// What a kubelet would report on this machine.
			corev1.LabelArchStable: runtime.GOARCH,
		},
	}}
	node, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", h.Name, err)
	}
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: h.IPv4.String()},
		{Type: corev1.NodeInternalIP, Address: h.IPv6.String()},
		{Type: corev1.NodeHostName, Address: h.Name},
	}
	node.Status.Conditions = []corev1.NodeCondition{readyCondition(true, metav1.Now())}
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of node %s: %w", h.Name, err)
	}
	return nil
}

// readyCondition is a Node's Ready condition as a kubelet writes it.
func readyCondition(ready bool, now metav1.Time) corev1.NodeCondition {
	c := corev1.NodeCondition{
		Type:               corev1.NodeReady,
		Status:             corev1.ConditionTrue,
		Reason:             "KubeletReady",
		Message:            "lab node is ready",
		LastHeartbeatTime:  now,
		LastTransitionTime: now,
	}
	if !ready {
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletNotReady", "lab node set not ready"
	}
	return c
}

// SetNodeReady sets the Ready condition of Node node (a lab host name such
// as "node-1") to True or False, as its kubelet would; nothing else changes:
// there is no node lifecycle controller to taint the node or evict pods.
// The transition time changes only if the status does.
func (cp *ControlPlane) SetNodeReady(ctx context.Context, node string, ready bool) error {
	nodes := cp.kube.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewTime(time.Now())
		c := readyCondition(ready, now)
		i := slices.IndexFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == corev1.NodeReady })
		switch {
		case i < 0:
			n.Status.Conditions = append(n.Status.Conditions, c)
		case n.Status.Conditions[i].Status == c.Status:
			c.LastTransitionTime = n.Status.Conditions[i].LastTransitionTime
			n.Status.Conditions[i] = c
		default:
			n.Status.Conditions[i] = c
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set node %s ready=%v: %w", node, ready, err)
	}
	return nil
}
