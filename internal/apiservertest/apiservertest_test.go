package apiservertest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var env *Env

func TestMain(m *testing.M) { Main(m, &env, Options{}) }

// TestLoadBalancerServiceRoundTrip proves the harness talks to a real API
// server: it creates a type LoadBalancer Service, reads it back, and sees
// the fields the API server fills in (a cluster IP, defaulted ports).
func TestLoadBalancerServiceRoundTrip(t *testing.T) {
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "istio-ingressgateway"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "istio-ingressgateway"},
			Ports: []corev1.ServicePort{
				{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080)},
			},
		},
	}
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { env.Client.Delete(context.Background(), svc) })

	var got corev1.Service
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(svc), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("type = %q, want LoadBalancer", got.Spec.Type)
	}
	if got.Spec.ClusterIP == "" {
		t.Error("the API server assigned no cluster IP")
	}
	if diff := cmp.Diff(corev1.ProtocolTCP, got.Spec.Ports[0].Protocol); diff != "" {
		t.Errorf("defaulted protocol (-want +got):\n%s", diff)
	}
	if got.Spec.Ports[0].NodePort == 0 {
		t.Error("the API server allocated no node port for a LoadBalancer Service")
	}
}
