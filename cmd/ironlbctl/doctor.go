package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	apiversion "k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
)

// Pod labels of ironlb's components, as its manifests set them.
const (
	componentLabel      = "app.kubernetes.io/component"
	speakerComponent    = "speaker"
	controllerComponent = "controller"
)

func newDoctorCommand(g *globalFlags) *cobra.Command {
	var fix, yes bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the cluster for what keeps ironlb from working, with a fix for each problem",
		Long: `Doctor reads the cluster and reports each check as OK, WARN or FAIL, with a
fix for every problem:

  kubernetes   the API server's version: within the tested range (1.21 to 1.37),
               and what older versions drop (spec.loadBalancerClass before 1.22)
  kube-proxy   IPVS mode needs ipvs.strictARP: true (ConfigMap kube-system/kube-proxy)
  pools        address pools must not overlap node addresses, pod CIDRs or the service CIDR
  speakers     every node needs a running, ready ironlb speaker
  controller   the ironlb controller must run
  metallb      MetalLB must not run beside ironlb
  memberlist   no other pod may take the speakers' memberlist port (7946, or
               --memberlist-bind) on a node, and the key in Secret
               ironlb-memberlist must be 16, 24 or 32 bytes
  config       ironlb's configuration objects and legacy ConfigMap must be valid
  services     LoadBalancer Services that have no address yet, and why
  layer2       Layer 2 addresses per node, and cordoned nodes still announcing

--fix sets ipvs.strictARP: true in kube-proxy's ConfigMap after showing the
change and asking (--yes does not ask). Exit status: 0 when nothing FAILs
(warnings allowed), 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if fix {
				if err := fixStrictARP(ctx, c, cmd.InOrStdin(), out, yes); err != nil {
					return err
				}
			}
			facts := gatherFacts(ctx, c, types.NamespacedName{Namespace: g.namespace, Name: g.configMap})
			facts.CLI = cmd.Root().DisplayName()
			facts.Version, facts.VersionErr = serverVersion(g)
			findings := diagnose(facts)
			if fails := printFindings(out, findings); fails > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "set ipvs.strictARP: true in kube-proxy's ConfigMap (shows the change and asks first)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "with --fix: apply without asking")
	return cmd
}

// clusterFacts is everything doctor reads; diagnose judges it without
// further I/O. An error field set means that part could not be read.
type clusterFacts struct {
	Namespace string // ironlb's
	ConfigMap types.NamespacedName
	CLI       string // "ironlbctl" or "kubectl ironlb", for the fixes

	Version    *apiversion.Info // the API server's
	VersionErr error

	KubeProxy    *corev1.ConfigMap // nil: not found
	KubeProxyErr error

	Nodes    []corev1.Node
	NodesErr error

	// ServiceCIDRs are the cluster's service ranges; ServiceCIDRGuess says
	// they were guessed from the kubernetes Service's clusterIP, because
	// the API server serves no ServiceCIDR objects.
	ServiceCIDRs     []netip.Prefix
	ServiceCIDRGuess bool
	ServiceCIDRErr   error

	Speakers, Controllers []corev1.Pod
	PodsErr               error

	// MetalLBPods are pods of a MetalLB still running in metallb-system;
	// MetalLBConfig is its legacy ConfigMap there, if any.
	MetalLBPods   []corev1.Pod
	MetalLBConfig bool

	Input    config.Input
	InputErr error

	Services    []statusRow
	ServicesErr error

	Memberlist memberlistFacts
}

// gatherFacts reads what doctor checks. It does not stop at the first
// error: what it cannot read becomes a warning, and the rest is checked.
func gatherFacts(ctx context.Context, c client.Client, cm types.NamespacedName) clusterFacts {
	f := clusterFacts{Namespace: cm.Namespace, ConfigMap: cm}

	var kp corev1.ConfigMap
	switch err := c.Get(ctx, types.NamespacedName{Namespace: kubeProxyNamespace, Name: kubeProxyConfigMap}, &kp); {
	case err == nil:
		f.KubeProxy = &kp
	case !apierrors.IsNotFound(err):
		f.KubeProxyErr = err
	}

	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		f.NodesErr = err
	}
	f.Nodes = nodes.Items

	f.ServiceCIDRs, f.ServiceCIDRGuess, f.ServiceCIDRErr = serviceCIDRs(ctx, c)

	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(cm.Namespace), client.HasLabels{componentLabel}); err != nil {
		f.PodsErr = err
	}
	for _, p := range pods.Items {
		switch p.Labels[componentLabel] {
		case speakerComponent:
			f.Speakers = append(f.Speakers, p)
		case controllerComponent:
			f.Controllers = append(f.Controllers, p)
		}
	}

	// MetalLB's manifests and chart label their pods app=metallb or
	// app.kubernetes.io/name=metallb.
	if cm.Namespace != "metallb-system" {
		for _, sel := range []client.MatchingLabels{{"app": "metallb"}, {"app.kubernetes.io/name": "metallb"}} {
			var mp corev1.PodList
			if err := c.List(ctx, &mp, client.InNamespace("metallb-system"), sel); err == nil && len(mp.Items) > 0 {
				f.MetalLBPods = mp.Items
				break
			}
		}
		var mcm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: "metallb-system", Name: "config"}, &mcm); err == nil {
			_, f.MetalLBConfig = mcm.Data[config.LegacyConfigKey]
		}
	}

	f.Memberlist = gatherMemberlist(ctx, c, cm.Namespace)

	f.Input, f.InputErr = kube.ReadInput(ctx, kubecr.Reader(c), cm)
	if f.InputErr == nil {
		// The controller reads the reservations beside the input; an
		// install without their CRD (an older version) has none.
		var rs v1alpha1.IPReservationList
		if err := c.List(ctx, &rs); err == nil {
			f.Input.Reservations = rs.Items
		}
		f.Services, f.ServicesErr = statusRows(ctx, c, cm)
	}
	return f
}

// serviceCIDRs returns the cluster's service CIDRs from its ServiceCIDR
// objects (networking.k8s.io/v1, Kubernetes 1.33+), or else a guess: the
// /12 (IPv4; /112 for IPv6) around the kubernetes Service's clusterIP,
// kubeadm's default size.
func serviceCIDRs(ctx context.Context, c client.Client) ([]netip.Prefix, bool, error) {
	var list networkingv1.ServiceCIDRList
	err := c.List(ctx, &list)
	if err == nil && len(list.Items) > 0 {
		var out []netip.Prefix
		for _, s := range list.Items {
			for _, cidr := range s.Spec.CIDRs {
				if p, err := netip.ParsePrefix(cidr); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
		return out, false, nil
	}
	if err != nil && !meta.IsNoMatchError(err) && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
		return nil, false, err
	}
	var svc corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "kubernetes"}, &svc); err != nil {
		return nil, false, err
	}
	var out []netip.Prefix
	for _, ip := range svc.Spec.ClusterIPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		bits := 12
		if a.Is6() {
			bits = 112
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out, true, nil
}

// fixStrictARP sets ipvs.strictARP: true in kube-proxy's ConfigMap when it
// runs in IPVS mode without it: it shows the change as a diff, asks unless
// yes, updates the ConfigMap (refused if it changed since it was read), and
// says that kube-proxy only reads it at start.
func fixStrictARP(ctx context.Context, c client.Client, in io.Reader, out io.Writer, yes bool) error {
	var cm corev1.ConfigMap
	key := types.NamespacedName{Namespace: kubeProxyNamespace, Name: kubeProxyConfigMap}
	if err := c.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			fmt.Fprintf(out, "fix: nothing to do for kube-proxy: ConfigMap %s not found\n\n", key)
			return nil
		}
		return fmt.Errorf("read kube-proxy's configuration: %w", err)
	}
	conf, ok := cm.Data[kubeProxyKey]
	if !ok {
		return fmt.Errorf("ConfigMap %s has no %s key: set ipvs.strictARP: true where your installer keeps kube-proxy's configuration", key, kubeProxyKey)
	}
	kp, err := parseKubeProxyConfig(conf)
	if err != nil {
		return err
	}
	if kp.Mode != "ipvs" || kp.IPVS.StrictARP {
		fmt.Fprintf(out, "fix: nothing to do for kube-proxy: %s\n\n", kubeProxySummary(kp))
		return nil
	}
	fixed, err := setStrictARP(conf)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fix: set ipvs.strictARP: true in ConfigMap %s:\n\n", key)
	fmt.Fprintln(out, unifiedDiff(key.String()+" "+kubeProxyKey, key.String()+" "+kubeProxyKey+" (fixed)", conf, fixed))
	if !yes {
		fmt.Fprintf(out, "Apply this change? [y/N] ")
		answer, _ := bufio.NewReader(in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintf(out, "\nnot changed\n\n")
			return nil
		}
	}
	cm.Data[kubeProxyKey] = fixed
	// cm carries the resourceVersion it was read at: if someone changed
	// the ConfigMap meanwhile, the API server refuses this update.
	if err := c.Update(ctx, &cm); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("ConfigMap %s changed while doctor was working: run it again", key)
		}
		return fmt.Errorf("update ConfigMap %s: %w", key, err)
	}
	fmt.Fprintf(out, "\nupdated ConfigMap %s. kube-proxy reads it only when it starts: restart its pods now:\n"+
		"  kubectl -n %s rollout restart daemonset %s\n\n", key, kubeProxyNamespace, kubeProxyConfigMap)
	return nil
}

// printFindings writes the report and returns the number of failures.
func printFindings(w io.Writer, fs []finding) (fails int) {
	warns := 0
	for _, f := range fs {
		fmt.Fprintf(w, "%-5s %-11s %s\n", f.Severity, f.Check, f.Message)
		if f.Fix != "" && f.Severity != sevOK {
			fmt.Fprintf(w, "%-17s fix: %s\n", "", f.Fix)
		}
		switch f.Severity {
		case sevFail:
			fails++
		case sevWarn:
			warns++
		}
	}
	switch {
	case fails == 0 && warns == 0:
		fmt.Fprintln(w, "\nall checks passed")
	default:
		fmt.Fprintf(w, "\n%d failed, %d warning(s)\n", fails, warns)
	}
	return fails
}
