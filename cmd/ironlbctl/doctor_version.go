package main

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
)

// The Kubernetes versions ironlb is tested on: test/versions runs the
// tutorial against kube-apiserver 1.21 (hack/oldkube) and the current one
// (hack/tools). TestTestedRange keeps these in step with those pins.
var (
	oldestTested = version.MajorMinor(1, 21)
	newestTested = version.MajorMinor(1, 37)
)

// serverVersion asks the API server of the kubeconfig g names for its
// version, connecting as g.client does.
func serverVersion(g *globalFlags) (*apiversion.Info, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if g.kubeconfig != "" {
		rules.ExplicitPath = g.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return dc.ServerVersion()
}

// versionLimit is a behaviour of API servers older than Before that ironlb
// meets: a field they drop, or an API they lack.
type versionLimit struct {
	Before *version.Version
	What   string
}

// versionLimits are read from each release's feature gates (the defaults
// in pkg/features/kube_features.go) and measured on 1.21 by test/versions.
// Oldest first.
var versionLimits = []versionLimit{
	{version.MajorMinor(1, 22), "spec.loadBalancerClass is dropped unless kube-apiserver runs with " +
		"--feature-gates=ServiceLoadBalancerClass=true (alpha; on by default from 1.22), so ironlb also serves " +
		"LoadBalancer Services meant for another load balancer: run no other one"},
	{version.MajorMinor(1, 22), "spec.allocateLoadBalancerNodePorts is dropped (feature gate ServiceLBNodePortControl, " +
		"on by default from 1.22): every LoadBalancer Service gets node ports"},
	{version.MajorMinor(1, 30), "status.loadBalancer.ingress[].ipMode is dropped (LoadBalancerIPMode, on by default " +
		"from 1.30): kube-proxy treats the addresses as VIP, which is what ironlb asks for"},
	{version.MajorMinor(1, 33), "no ServiceCIDR objects (networking.k8s.io/v1, 1.33): " +
		"the pools check guesses the service CIDR from the kubernetes Service"},
}

// checkKubernetes says what the API server's version means for ironlb:
// below the oldest tested version it fails (ironlb reads EndpointSlices of
// discovery.k8s.io/v1, which 1.21 introduced), and each behaviour of older
// servers that ironlb meets is listed.
func checkKubernetes(f clusterFacts) []finding {
	const check = "kubernetes"
	if f.VersionErr != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("cannot read the API server's version: %v", f.VersionErr), ""}}
	}
	if f.Version == nil {
		return nil
	}
	v, err := version.ParseGeneric(f.Version.GitVersion)
	if err != nil {
		return []finding{{check, sevWarn, fmt.Sprintf("the API server reports version %q, which doctor cannot read: %v", f.Version.GitVersion, err), ""}}
	}
	tested := fmt.Sprintf("%d.%d to %d.%d", oldestTested.Major(), oldestTested.Minor(), newestTested.Major(), newestTested.Minor())
	switch {
	case v.LessThan(oldestTested):
		return []finding{{check, sevFail,
			fmt.Sprintf("%s is older than %d.%d, the oldest ironlb supports (tested: %s): the speakers read EndpointSlices of discovery.k8s.io/v1, which 1.21 introduced",
				f.Version.GitVersion, oldestTested.Major(), oldestTested.Minor(), tested),
			"upgrade the cluster to Kubernetes 1.21 or newer"}}
	case v.AtLeast(version.MajorMinor(newestTested.Major(), newestTested.Minor()+1)):
		return []finding{{check, sevOK, fmt.Sprintf("%s, newer than the newest tested (tested: %s)", f.Version.GitVersion, tested), ""}}
	}
	out := []finding{{check, sevOK, fmt.Sprintf("%s, within the tested range %s", f.Version.GitVersion, tested), ""}}
	for _, l := range versionLimits {
		if v.LessThan(l.Before) {
			out = append(out, finding{check, sevOK, fmt.Sprintf("before %d.%d: %s", l.Before.Major(), l.Before.Minor(), l.What), ""})
		}
	}
	return out
}
