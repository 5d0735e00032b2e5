package labkube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletConfig is a node's KubeletConfiguration. What this machine needs
// (design/LAB.md, "Real nodes"): cgroup v1 accepted (failCgroupV1: false),
// the cgroupfs driver under the node's own cgroupRoot, no swap check.
// Everything the kubelet would otherwise keep in fixed places of the
// machine lives in the node's directory, but for the log links in
// /var/log/containers. The rest keeps a lab node quiet and predictable:
// its API (logs, exec) is open to anyone in the lab, as the API server
// calls it without a client certificate; image garbage collection never
// removes the imported images (they cannot be pulled back); eviction only
// at nearly full disks; no graceful node shutdown (it needs
// systemd-logind); and its OOM score left alone (lowering it needs
// CAP_SYS_RESOURCE, which processes here lack).
func kubeletConfig(n *Node) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %q
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: %q
imageServiceEndpoint: %q
address: %q
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
failSwapOn: false
podLogsDir: %q
resolvConf: ""
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
  imagefs.inodesFree: "1%%"
shutdownGracePeriod: 0s
oomScoreAdj: 0
rotateCertificates: false
serializeImagePulls: false
protectKernelDefaults: false
nodeLeaseDurationSeconds: %d
`, n.cgroup.name, "unix://"+n.Socket, "unix://"+n.Socket, n.Host.IPv4.String(), n.path("kubelet/pod-logs"), n.leaseSeconds())
}

// leaseSeconds is the node's Lease duration: the kubelet renews it every
// quarter of it. With Options.NodeMonitorGracePeriod it is the grace
// period, so that a live node renews four times within it; else
// Kubernetes' default, 40 s.
func (n *Node) leaseSeconds() int {
	if g := n.cluster.graceperiod; g > 0 {
		return max(1, int(g.Round(time.Second)/time.Second))
	}
	return 40
}

// startKubelet starts the node's kubelet in the node's network namespace
// (and, like containerd, the test's mount namespace: see startRoot), as
// the lab's admin. It registers the Node named after the host, with the
// host's LAN addresses.
func (n *Node) startKubelet() error {
	cfg := n.path("kubelet/config.yaml")
	if err := writeFile(cfg, kubeletConfig(n)); err != nil {
		return err
	}
	if err := os.MkdirAll(n.path("kubelet/pod-logs"), 0o755); err != nil {
		return err
	}
	p, err := n.start("kubelet", n.bin.kubelet,
		"--config="+cfg,
		"--kubeconfig="+n.cluster.CP.Kubeconfig,
		"--hostname-override="+n.Name,
		// Both, as the lab's Node objects have them: kube-proxy exits
		// when its node's addresses change.
		"--node-ip="+n.Host.IPv4.String()+","+n.Host.IPv6.String(),
		"--root-dir="+n.path("kubelet/root"),
		"--v=1",
	)
	if err != nil {
		return err
	}
	n.kubelet = p
	return nil
}

// KubeProxyConfigMap is where the cluster keeps kube-proxy's
// configuration, in kubeadm's layout (which most installers follow and
// `ironlbctl doctor` reads): the KubeProxyConfiguration in key
// "config.conf" of ConfigMap kube-system/kube-proxy.
const (
	KubeProxyNamespace = "kube-system"
	KubeProxyConfigMap = "kube-proxy"
	KubeProxyKey       = "config.conf"
)

// kubeProxyConfig is the cluster's KubeProxyConfiguration: nftables mode
// (the kernel has no IPVS), the pod network as the cluster CIDR, so that
// traffic to a Service from outside it (a LAN client) is masqueraded and
// replies from a pod on another node come back through this one, and
// conntrack left as the machine has it. What differs per node
// (hostnameOverride) is a flag, as kubeadm's DaemonSet passes it.
func kubeProxyConfig(kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: %q
clusterCIDR: %q
conntrack:
  maxPerCore: 0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
`, kubeconfig, PodNetwork.String())
}

// createKubeProxyConfigMap creates kube-proxy's ConfigMap (or replaces its
// data) and returns the configuration the nodes' kube-proxies run with.
func (c *Cluster) createKubeProxyConfigMap(ctx context.Context) (string, error) {
	conf := kubeProxyConfig(c.CP.Kubeconfig)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyConfigMap, Namespace: KubeProxyNamespace,
			Labels: map[string]string{"app": "kube-proxy"}},
		Data: map[string]string{KubeProxyKey: conf},
	}
	_, err := c.Kube.CoreV1().ConfigMaps(KubeProxyNamespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = c.Kube.CoreV1().ConfigMaps(KubeProxyNamespace).Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return "", fmt.Errorf("create ConfigMap %s/%s: %w", KubeProxyNamespace, KubeProxyConfigMap, err)
	}
	return conf, nil
}

// startKubeProxy starts kube-proxy in the node's network namespace from
// the cluster's configuration conf (the kube-proxy ConfigMap's), written to
// a file as kubeadm's DaemonSet mounts it.
//
// It starts after the kubelet has registered the Node: kube-proxy exits
// (to be restarted by its DaemonSet, which the lab does not have) when
// the node's addresses change, as they may at registration.
func (n *Node) startKubeProxy(conf string) error {
	path := n.path("kube-proxy/config.conf")
	if err := writeFile(path, conf); err != nil {
		return err
	}
	p, err := n.start("kube-proxy", n.bin.kubeProxy,
		"--config="+path,
		"--hostname-override="+n.Name,
		"--v=1",
	)
	if err != nil {
		return err
	}
	n.kubeProxy = p
	return nil
}

// labEnv is the environment of the lab's Kubernetes programs: the test's,
// without proxy variables (the lab has no proxy and no route out).
func labEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "no_proxy", "all_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}
