package realnodes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ironlb/ironlb/internal/labkube"
)

// Workload is one of the tutorial's Services and the pods behind it. The
// tutorial's images (Istio's gateway, MinIO, Grafana) are replaced by the
// lab's HTTP server (labkube.HelloImage), listening on the tutorial's
// target port; names, namespaces, ports and types are the tutorial's.
type Workload struct {
	Namespace, Name string
	// Ports are the Service's ports; each targets TargetPort.
	Ports      []int32
	TargetPort int32
	// RequestedIP is the tutorial's spec.loadBalancerIP, moved to the lab's
	// range: 192.168.1.88-90 become 198.51.100.201-203.
	RequestedIP netip.Addr
}

// Tutorial is the tutorial's three Services (SCENARIO.md, step 4).
var Tutorial = []Workload{
	{"istio-system", "istio-ingressgateway", []int32{15021, 80, 443, 31400, 15443}, 8080, netip.MustParseAddr("198.51.100.201")},
	{"kubeflow", "minio-service", []int32{9000}, 9000, netip.MustParseAddr("198.51.100.202")},
	{"seldon-system", "seldon-core-analytics-grafana", []int32{80}, 3000, netip.MustParseAddr("198.51.100.203")},
}

// URL is the address the client asks, on the Service's first port that
// the tutorial opens in a browser (80, or MinIO's 9000).
func (w Workload) URL() string {
	port := w.Ports[0]
	if slices.Contains(w.Ports, 80) {
		port = 80
	}
	return fmt.Sprintf("http://%s/", netip.AddrPortFrom(w.RequestedIP, uint16(port)))
}

// replicas is how many pods each workload runs, spread over the nodes.
const replicas = 2

func (w Workload) deployment() *appsv1.Deployment {
	labels := map[string]string{"app": w.Name}
	n := int32(replicas)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: corev1.LabelHostname,
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{
						Name:            "hello",
						Image:           labkube.HelloImage,
						ImagePullPolicy: corev1.PullNever,
						Env: []corev1.EnvVar{
							{Name: "PORT", Value: strconv.Itoa(int(w.TargetPort))},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
								FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
							}},
						},
						Ports: []corev1.ContainerPort{{ContainerPort: w.TargetPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(w.TargetPort)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

// service is the workload's Service as it was before the tutorial's
// `kubectl edit`: type ClusterIP.
func (w Workload) service() *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": w.Name}},
	}
	for _, p := range w.Ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{
			Name: "tcp-" + strconv.Itoa(int(p)), Port: p, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(w.TargetPort),
		})
	}
	return s
}

// DeployWorkloads creates the tutorial's namespaces, Deployments and
// ClusterIP Services and waits until every pod is Ready.
func (e *Env) DeployWorkloads(ctx context.Context) error {
	kube := e.C.Kube
	for _, w := range Tutorial {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, w := range Tutorial {
		if err := waitFor(ctx, "ServiceAccount "+w.Namespace+"/default", time.Minute, func() error {
			_, err := kube.CoreV1().ServiceAccounts(w.Namespace).Get(ctx, "default", metav1.GetOptions{})
			return err
		}); err != nil {
			return err
		}
		if _, err := kube.AppsV1().Deployments(w.Namespace).Create(ctx, w.deployment(), metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := kube.CoreV1().Services(w.Namespace).Create(ctx, w.service(), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, w := range Tutorial {
		if err := waitFor(ctx, "pods of "+w.Name+" Ready", 2*time.Minute, func() error {
			pods, err := kube.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + w.Name})
			if err != nil {
				return err
			}
			ready := 0
			for _, p := range pods.Items {
				if labkube.PodReady(&p) {
					ready++
				}
			}
			if ready != replicas {
				return fmt.Errorf("%d of %d Ready", ready, replicas)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// ExposeAll does the tutorial's `kubectl edit svc` on each Service: type
// LoadBalancer with spec.loadBalancerIP, then waits until each has its
// address and the client gets an HTTP answer from a pod through every
// port of it. It records the time from the edit to the first answer.
func (e *Env) ExposeAll(ctx context.Context, prefix string) error {
	kube := e.C.Kube
	// The client resolves every address afresh: an entry left from an
	// earlier installation would reach a node without anyone announcing.
	if err := e.Lab.Client().FlushNeighbors(); err != nil {
		return err
	}
	start := time.Now()
	for _, w := range Tutorial {
		err := retryConflict(ctx, func() error {
			s, err := kube.CoreV1().Services(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.LoadBalancerIP = w.RequestedIP.String()
			_, err = kube.CoreV1().Services(w.Namespace).Update(ctx, s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("edit Service %s/%s: %w", w.Namespace, w.Name, err)
		}
	}
	if err := e.WaitAddresses(ctx); err != nil {
		return err
	}
	e.recordDuration(prefix+"_service_to_address", time.Since(start))
	// A short timeout: a request sent before anyone answered ARP for the
	// address waits for the kernel's next try (a second later); a new one
	// asks again at once.
	hc := e.httpClient(250 * time.Millisecond)
	var first time.Duration
	for _, w := range Tutorial {
		for _, port := range w.Ports {
			url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(w.RequestedIP, uint16(port)))
			var pod string
			if err := waitFor(ctx, "an answer to GET "+url+" from the client", time.Minute, func() error {
				var err error
				pod, err = labkube.HelloName(ctx, hc, url)
				return err
			}); err != nil {
				return err
			}
			if first == 0 {
				first = time.Since(start)
			}
			if !strings.HasPrefix(pod, w.Name+"-") {
				return fmt.Errorf("GET %s answered %q, not a pod of %s", url, pod, w.Name)
			}
		}
		e.Logf("%s/%s: %s answers through every port %v", w.Namespace, w.Name, w.RequestedIP, w.Ports)
	}
	e.recordDuration(prefix+"_service_to_first_answer", first)
	e.recordDuration(prefix+"_service_to_every_answer", time.Since(start))
	return nil
}

// WaitAddresses waits until each tutorial Service holds its requested
// address.
func (e *Env) WaitAddresses(ctx context.Context) error {
	for _, w := range Tutorial {
		if err := waitFor(ctx, w.Name+" gets "+w.RequestedIP.String(), time.Minute, func() error {
			got, err := e.address(ctx, w)
			if err != nil {
				return err
			}
			if got != w.RequestedIP.String() {
				return fmt.Errorf("status.loadBalancer.ingress %q", got)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// address is a Service's ingress addresses, comma-separated.
func (e *Env) address(ctx context.Context, w Workload) (string, error) {
	s, err := e.C.Kube.CoreV1().Services(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return strings.Join(ips, ","), nil
}

// httpClient is the LAN client's HTTP client: a new connection per
// request, each resolved afresh with ARP.
func (e *Env) httpClient(timeout time.Duration) *http.Client {
	hc := e.Lab.Client().HTTPClient()
	hc.Timeout = timeout
	return hc
}

// waitFor calls check every 100 ms until it returns nil, timeout passes
// or ctx ends.
func waitFor(ctx context.Context, what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting until %s: not after %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retryConflict retries f while it fails with a conflict.
func retryConflict(ctx context.Context, f func() error) error {
	var err error
	for range 10 {
		if err = f(); err == nil || !strings.Contains(err.Error(), "the object has been modified") {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
	}
	return err
}
