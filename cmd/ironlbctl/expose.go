package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func newExposeCommand(g *globalFlags) *cobra.Command {
	var (
		namespace string
		req       exposeRequest
		ips       string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "expose svc/NAME [-n NAMESPACE] [--ip IP[,IP] | --pool POOL] [--shared KEY]",
		Short: "Switch a Service to type LoadBalancer, wait for its external IP and print it, or say why not",
		Long: `Expose makes a Service reachable from outside the cluster: one merge patch
sets spec.type to LoadBalancer (every other field is kept) and writes the
request in ironlb's annotations, then expose waits for the address and
prints it. If ironlb cannot give the Service what it asks for, expose prints
the reason (who holds the address, which addresses are free) and exits 1.

  --ip      asks for these addresses (annotation ironlb.io/loadBalancerIPs; one
            per IP family, comma-separated). spec.loadBalancerIP is not used: it
            is deprecated upstream, and the annotation wins over it.
  --pool    asks for any free address of this pool (ironlb.io/address-pool).
  --shared  lets Services with the same key share an address when their ports
            differ (ironlb.io/allow-shared-ip).

Here -n/--namespace is the Service's namespace, as in kubectl (default: the
kubeconfig context's namespace); ironlb's own namespace does not matter to
expose.`,
		Example: `  ironlbctl expose svc/istio-ingressgateway -n istio-system --ip 192.168.1.88
  kubectl ironlb expose svc/minio-service -n kubeflow --pool default`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseServiceArg(args[0])
			if err != nil {
				return err
			}
			if req.ips, err = parseIPs(ips); err != nil {
				return err
			}
			if namespace == "" {
				namespace = g.contextNamespace()
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return expose(cmd.Context(), c, exposeOptions{
				svc:     types.NamespacedName{Namespace: namespace, Name: name},
				req:     req,
				timeout: timeout,
				cli:     cmd.Root().DisplayName(),
				out:     cmd.OutOrStdout(),
				errOut:  cmd.ErrOrStderr(),
			})
		},
	}
	f := cmd.Flags()
	// The same name as the global flag, so -n reads as in kubectl; a local
	// flag hides the persistent one of the same name for this command.
	f.StringVarP(&namespace, "namespace", "n", "", "namespace of the Service (default: the kubeconfig context's namespace)")
	f.StringVar(&ips, "ip", "", "address(es) to ask for, one per IP family, comma-separated")
	f.StringVar(&req.pool, "pool", "", "pool to take a free address from")
	f.StringVar(&req.shared, "shared", "", "sharing key: Services with the same key may share an address")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the address")
	cmd.MarkFlagsMutuallyExclusive("ip", "pool")
	return cmd
}

// contextNamespace is the namespace kubectl would use: the kubeconfig
// context's, the pod's when in a cluster, else "default".
func (g *globalFlags) contextNamespace() string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// exposeRequest is what the user asks expose for.
type exposeRequest struct {
	ips    []netip.Addr
	pool   string
	shared string
}

// patch is the merge patch (RFC 7386) that makes the Service a
// LoadBalancer with the request: it names only spec.type and the
// annotations asked for, so every other field stays as it is.
func (r exposeRequest) patch() []byte {
	annotations := map[string]string{}
	if len(r.ips) > 0 {
		var s []string
		for _, a := range r.ips {
			s = append(s, a.String())
		}
		annotations[v1alpha1.AnnotationLoadBalancerIPs] = strings.Join(s, ",")
	}
	if r.pool != "" {
		annotations[v1alpha1.AnnotationAddressPool] = r.pool
	}
	if r.shared != "" {
		annotations[v1alpha1.AnnotationAllowSharedIP] = r.shared
	}
	p := map[string]any{"spec": map[string]any{"type": corev1.ServiceTypeLoadBalancer}}
	if len(annotations) > 0 {
		p["metadata"] = map[string]any{"annotations": annotations}
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // maps of strings; cannot fail
	}
	return b
}

// parseServiceArg accepts svc/NAME, service/NAME, services/NAME or NAME.
func parseServiceArg(s string) (string, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		kind, name = "svc", s
	}
	switch strings.ToLower(kind) {
	case "svc", "service", "services":
	default:
		return "", fmt.Errorf("expose works on Services: write svc/NAME, not %q", s)
	}
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is not a Service name: write svc/NAME", s)
	}
	return name, nil
}

// parseIPs parses --ip: addresses, comma-separated, at most one per family.
func parseIPs(s string) ([]netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return nil, fmt.Errorf("--ip: %q is not an IP address", strings.TrimSpace(f))
		}
		if slices.ContainsFunc(out, func(b netip.Addr) bool { return b.Is4() == a.Is4() }) {
			return nil, fmt.Errorf("--ip: at most one address per IP family")
		}
		out = append(out, a)
	}
	return out, nil
}

type exposeOptions struct {
	svc     types.NamespacedName
	req     exposeRequest
	timeout time.Duration
	cli     string // "ironlbctl" or "kubectl ironlb", for hints
	out     io.Writer
	errOut  io.Writer
}

// settleTime is how long expose trusts an unchanged answer. When a patch
// changes a Service that already had ironlb's answer, that old answer is
// still in its status until the controller decides again, and an
// annotation change does not bump metadata.generation, so nothing marks
// the answer as stale. A new answer usually comes within a second; one
// that has not changed after settleTime is the controller's answer to the
// new request (it decided the same).
const settleTime = 3 * time.Second

// expose patches the Service and waits for the controller's answer.
func expose(ctx context.Context, c client.Client, o exposeOptions) error {
	var svc corev1.Service
	if err := c.Get(ctx, o.svc, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("service %s not found", o.svc)
		}
		return fmt.Errorf("get service %s: %w", o.svc, err)
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return fmt.Errorf("service %s is of type ExternalName, an alias for %s: it has no endpoints to expose", o.svc, svc.Spec.ExternalName)
	case svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass != v1alpha1.DefaultLoadBalancerClass:
		return fmt.Errorf("service %s has spec.loadBalancerClass %q, so another load balancer serves it, not ironlb (which serves Services without a class or with %q)",
			o.svc, *svc.Spec.LoadBalancerClass, v1alpha1.DefaultLoadBalancerClass)
	}
	for _, n := range exposeNotes(&svc, o.req) {
		fmt.Fprintln(o.out, "note:", n)
	}
	before := stateOf(&svc)
	rv := svc.ResourceVersion

	patch := o.req.patch()
	fmt.Fprintf(o.out, "patching service %s:\n  kubectl -n %s patch service %s --type merge -p '%s'\n", o.svc, o.svc.Namespace, o.svc.Name, patch)
	if err := c.Patch(ctx, &svc, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("patch service %s: %w", o.svc, err)
	}
	changed := svc.ResourceVersion != rv
	patched := time.Now()

	fmt.Fprintf(o.out, "waiting up to %s for ironlb's answer...\n", o.timeout)
	deadline := patched.Add(o.timeout)
	for {
		now := stateOf(&svc)
		switch judge(o.req, before, now, changed, time.Since(patched) >= settleTime) {
		case exposeAllocated:
			fmt.Fprintf(o.out, "%s: EXTERNAL-IP %s\n", o.svc, strings.Join(now.ips, ","))
			if now.cond != nil {
				fmt.Fprintf(o.out, "%s\n", now.cond.Message)
			}
			if ports := portList(&svc); ports != "" {
				fmt.Fprintf(o.out, "reachable from outside the cluster at %s on %s\n", strings.Join(now.ips, " and "), ports)
			}
			return nil
		case exposeRefused:
			row := statusRow{Namespace: o.svc.Namespace, Name: o.svc.Name, Reason: now.cond.Reason}
			fmt.Fprintf(o.errOut, "%s has no external IP (%s): %s\n", o.svc, now.cond.Reason, now.cond.Message)
			fmt.Fprintf(o.errOut, "The request stays on the Service; ironlb assigns the address as soon as it can.\nfix: %s\n", serviceFix(o.cli, row))
			return exitCode(1)
		}
		if time.Now().After(deadline) {
			msg := "the Service has no answer from the ironlb controller: is it running? (" + o.cli + " doctor)"
			if now.cond != nil {
				msg = fmt.Sprintf("its last answer: %s: %s", now.cond.Reason, now.cond.Message)
			}
			return fmt.Errorf("no external IP for %s after %s; %s", o.svc, o.timeout, msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if err := c.Get(ctx, o.svc, &svc); err != nil {
			return fmt.Errorf("get service %s: %w", o.svc, err)
		}
	}
}

// exposeNotes points out what else on the Service bears on the request.
func exposeNotes(svc *corev1.Service, req exposeRequest) []string {
	var notes []string
	if len(req.ips) > 0 && svc.Spec.LoadBalancerIP != "" {
		notes = append(notes, fmt.Sprintf("spec.loadBalancerIP (%s) is ignored from now on: the %s annotation wins over it", svc.Spec.LoadBalancerIP, v1alpha1.AnnotationLoadBalancerIPs))
	}
	if req.pool != "" {
		for _, p := range v1alpha1.AnnotationAliasPrefixes {
			if v := svc.Annotations[p+"loadBalancerIPs"]; v != "" {
				notes = append(notes, fmt.Sprintf("the Service also asks for %s (annotation %sloadBalancerIPs), which must then be in pool %s", v, p, req.pool))
				return notes
			}
		}
		if svc.Spec.LoadBalancerIP != "" {
			notes = append(notes, fmt.Sprintf("the Service also asks for %s (spec.loadBalancerIP), which must then be in pool %s", svc.Spec.LoadBalancerIP, req.pool))
		}
	}
	return notes
}

// lbState is the part of a Service's status that holds ironlb's answer.
type lbState struct {
	ips  []string
	cond *metav1.Condition
}

func stateOf(svc *corev1.Service) lbState {
	var s lbState
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			s.ips = append(s.ips, in.IP)
		}
	}
	if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated); c != nil {
		cp := *c
		s.cond = &cp
	}
	return s
}

func (s lbState) same(o lbState) bool {
	if !slices.Equal(s.ips, o.ips) || (s.cond == nil) != (o.cond == nil) {
		return false
	}
	return s.cond == nil || (s.cond.Status == o.cond.Status && s.cond.Reason == o.cond.Reason && s.cond.Message == o.cond.Message)
}

type exposeVerdict int

const (
	exposeWaiting exposeVerdict = iota
	exposeAllocated
	exposeRefused
)

// judge decides whether now, the Service's status, answers the request.
// before is the status before the patch; changed says the patch changed
// the Service; settled that settleTime has passed since. An answer equal
// to the one before a changing patch may be stale and counts only once
// settled, except addresses that are exactly the ones asked for.
func judge(req exposeRequest, before, now lbState, changed, settled bool) exposeVerdict {
	if now.cond == nil {
		return exposeWaiting
	}
	fresh := !changed || !now.same(before) || settled
	switch {
	case now.cond.Status == metav1.ConditionTrue && len(now.ips) > 0:
		if len(req.ips) > 0 {
			if sameAddrs(now.ips, req.ips) {
				return exposeAllocated
			}
			return exposeWaiting
		}
		if fresh {
			return exposeAllocated
		}
	case now.cond.Status == metav1.ConditionFalse && fresh:
		return exposeRefused
	}
	return exposeWaiting
}

func sameAddrs(got []string, want []netip.Addr) bool {
	if len(got) != len(want) {
		return false
	}
	for _, s := range got {
		a, err := netip.ParseAddr(s)
		if err != nil || !slices.Contains(want, a) {
			return false
		}
	}
	return true
}

// portList lists the Service's ports as "80/TCP, 443/TCP".
func portList(svc *corev1.Service) string {
	var ps []string
	for _, p := range svc.Spec.Ports {
		ps = append(ps, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	if len(ps) == 0 {
		return ""
	}
	if len(ps) == 1 {
		return "port " + ps[0]
	}
	return "ports " + strings.Join(ps, ", ")
}
