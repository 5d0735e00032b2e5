package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/controller"
)

// startController runs an ironlb controller in-process whose legacy
// ConfigMap lives in namespace ns, until the test ends. Tests give each
// controller its own namespace: TestStatus owns ironlb-system.
func startController(t *testing.T, ns string) {
	t.Helper()
	ensureNamespace(t, ns)
	c, err := controller.New(env.Config, controller.Options{Namespace: ns, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

// ensureNamespace creates namespace name unless it exists. Namespaces are
// never deleted in tests: without kube-controller-manager they would stay
// Terminating.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// deleteAndWait deletes o and waits until it is gone, so the next test
// (this package shares one API server) does not see it.
func deleteAndWait(t *testing.T, o client.Object) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Delete(ctx, o, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete %s: %v", o.GetName(), err)
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s %s is still there 20s after its deletion", o.GetObjectKind().GroupVersionKind().Kind, o.GetName())
}

// waitAllocated waits until the controller has given s its addresses.
func waitAllocated(t *testing.T, s *corev1.Service) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var got corev1.Service
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &got); err == nil &&
			meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ServiceConditionIPAllocated) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/%s got no address", s.Namespace, s.Name)
}
