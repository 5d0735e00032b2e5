package realnodes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/labkube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// The BGP check's router, ASNs, password, pool and Service: a Service in
// front of the tutorial's MinIO pods, with an address of a pool announced
// over BGP (203.0.113.96/28, outside the LAN and outside the router's
// outside network 203.0.113.128/25).
const (
	routerASN   = 64500
	nodeASN     = 64512
	md5Password = "ironlb-lab-md5"
	routedPool  = "203.0.113.96/28"
)

// routedService is the Service whose address the speakers announce over
// BGP.
var routedService = Workload{"kubeflow", "minio-routed", []int32{9000}, 9000, netip.MustParseAddr("203.0.113.100")}

// CheckBGP proves, in the real pods, that BGP with TCP MD5 (RFC 2385)
// needs no capability beyond NET_RAW: FRR on a router added to the lab's
// LAN wants an MD5 signature from every node; the speakers, configured as
// the README says (a BGPPeer whose passwordSecret names a Secret in
// ironlb's namespace, a pool and its BGPAnnouncement), must bring every
// session to Established and announce a Service's address with every node
// as a next hop; a host behind the router reaches the Service's pods; and
// no speaker logged a refusal (permission denied, operation not
// permitted). FRR stops and the objects go afterwards; the router host
// stays in the lab (a lab has at most one) with nothing running.
func (e *Env) CheckBGP(ctx context.Context, prefix string) error {
	r, err := e.Lab.AddRouter(ctx)
	if err != nil {
		return err
	}
	rc := labnet.RouterConfig{ASN: routerASN}
	var nodeIPs []netip.Addr
	for _, n := range e.C.Nodes {
		rc.Neighbors = append(rc.Neighbors, labnet.RouterNeighbor{Address: n.Host.IPv4, ASN: nodeASN, Password: md5Password})
		nodeIPs = append(nodeIPs, n.Host.IPv4)
	}
	slices.SortFunc(nodeIPs, netip.Addr.Compare)
	frr, err := r.StartFRR(ctx, rc)
	if err != nil {
		return err
	}
	defer func() {
		if err := frr.Stop(); err != nil {
			e.Logf("bgp: stop FRR: %v", err)
		}
	}()
	start := time.Now()
	conf, err := e.applyBGPConfig(ctx, r.Host.IPv4)
	defer e.removeBGPConfig(ctx, conf)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "every node's session to the router Established", time.Minute, func() error {
		return sessionsEstablished(ctx, frr, nodeIPs)
	}); err != nil {
		return err
	}
	e.recordDuration(prefix+"_bgp_md5_config_to_established", time.Since(start))
	if err := e.checkRouted(ctx, r, frr, nodeIPs); err != nil {
		return err
	}
	return e.speakersNotRefused(ctx)
}

// bgpConfig is the README's BGP configuration for the lab's router: the
// password's Secret, the pool, the peer and the announcement.
func bgpConfig(router netip.Addr) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: router-md5
  namespace: %[1]s
stringData:
  password: %[2]s
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: routed
spec:
  addresses:
  - %[3]s
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata:
  name: router
spec:
  myASN: %[4]d
  peerASN: %[5]d
  peerAddress: %[6]s
  passwordSecret:
    name: router-md5
    namespace: %[1]s
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAnnouncement
metadata:
  name: routed
spec:
  ipPools:
  - routed
`, Namespace, md5Password, routedPool, nodeASN, routerASN, router)
}

// applyBGPConfig applies bgpConfig and creates routedService (type
// LoadBalancer) and returns the configuration's file.
func (e *Env) applyBGPConfig(ctx context.Context, router netip.Addr) (string, error) {
	p := filepath.Join(e.Dir, "bgp.yaml")
	if err := os.WriteFile(p, []byte(bgpConfig(router)), 0o644); err != nil {
		return "", err
	}
	if _, err := e.Run(ctx, "kubectl", "apply", "-f", p); err != nil {
		return p, err
	}
	w := routedService
	s := w.service()
	s.Spec.Selector = map[string]string{"app": "minio-service"}
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.LoadBalancerIP = w.RequestedIP.String()
	if _, err := e.C.Kube.CoreV1().Services(w.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return p, err
	}
	return p, nil
}

// removeBGPConfig deletes routedService, waits until it is gone (its
// address holds the pool's finalizer), then deletes the configuration.
func (e *Env) removeBGPConfig(ctx context.Context, conf string) {
	ctx = context.WithoutCancel(ctx)
	svcs := e.C.Kube.CoreV1().Services(routedService.Namespace)
	if err := svcs.Delete(ctx, routedService.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.Logf("bgp: delete Service %s: %v", routedService.Name, err)
	}
	if err := waitFor(ctx, "Service "+routedService.Name+" is gone", 30*time.Second, func() error {
		_, err := svcs.Get(ctx, routedService.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	}); err != nil {
		e.Logf("bgp: %v", err)
	}
	if conf != "" {
		if _, err := e.Run(ctx, "kubectl", "delete", "--ignore-not-found", "--timeout=60s", "-f", conf); err != nil {
			e.Logf("bgp: %v", err)
		}
	}
}

// sessionsEstablished checks that FRR's session with every node is
// Established.
func sessionsEstablished(ctx context.Context, frr *labnet.FRR, nodeIPs []netip.Addr) error {
	ns, err := frr.Neighbors(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ip := range nodeIPs {
		i := slices.IndexFunc(ns, func(n labnet.BGPNeighbor) bool { return n.Address == ip })
		switch {
		case i < 0:
			errs = append(errs, fmt.Errorf("no neighbor %s", ip))
		case ns[i].State != "Established":
			errs = append(errs, fmt.Errorf("%s %s (%s)", ip, ns[i].State, ns[i].Info))
		}
	}
	return errors.Join(errs...)
}

// checkRouted waits until routedService has its address and the router
// its route, with every node as a next hop, and a host behind the router
// gets an answer from one of the Service's pods.
func (e *Env) checkRouted(ctx context.Context, r *labnet.Router, frr *labnet.FRR, nodeIPs []netip.Addr) error {
	w := routedService
	if err := waitFor(ctx, w.Name+" gets "+w.RequestedIP.String(), time.Minute, func() error {
		got, err := e.address(ctx, w)
		if err == nil && got != w.RequestedIP.String() {
			err = fmt.Errorf("status.loadBalancer.ingress %q", got)
		}
		return err
	}); err != nil {
		return err
	}
	route := netip.PrefixFrom(w.RequestedIP, 32)
	var hops []netip.Addr
	if err := waitFor(ctx, "the router's next hops for "+route.String(), time.Minute, func() error {
		routes, err := frr.Routes(ctx)
		if err != nil {
			return err
		}
		hops = nil
		for _, rt := range routes {
			if rt.Prefix == route {
				hops = rt.NextHops()
			}
		}
		if !slices.Equal(hops, nodeIPs) {
			return fmt.Errorf("next hops %v, want %v", hops, nodeIPs)
		}
		return nil
	}); err != nil {
		return err
	}
	e.Logf("bgp: the router routes %s via %v over sessions signed with TCP MD5", route, hops)
	hc := r.Outside.HTTPClient()
	hc.Timeout = time.Second
	var pod string
	if err := waitFor(ctx, "an answer to GET "+w.URL()+" from outside", 30*time.Second, func() error {
		var err error
		pod, err = labkube.HelloName(ctx, hc, w.URL())
		return err
	}); err != nil {
		return err
	}
	if !strings.HasPrefix(pod, "minio-service-") {
		return fmt.Errorf("GET %s from outside answered %q, not a pod of minio-service", w.URL(), pod)
	}
	e.Logf("bgp: %s answered from outside by %s", w.URL(), pod)
	return nil
}

// speakersNotRefused checks that no speaker's log tells of a refusal by
// the kernel or the API server.
func (e *Env) speakersNotRefused(ctx context.Context) error {
	pods, err := e.C.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods.Items {
		log, err := e.C.Kube.CoreV1().Pods(Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: "speaker"}).DoRaw(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("log of %s: %w", p.Name, err))
			continue
		}
		for line := range strings.Lines(string(log)) {
			l := strings.ToLower(line)
			for _, refused := range []string{"operation not permitted", "permission denied", "forbidden"} {
				if strings.Contains(l, refused) {
					errs = append(errs, fmt.Errorf("speaker %s on %s was refused (%s): %s", p.Name, p.Spec.NodeName, refused, strings.TrimSpace(line)))
				}
			}
		}
	}
	return errors.Join(errs...)
}
