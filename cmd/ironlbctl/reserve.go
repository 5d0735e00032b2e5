package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/kube"
)

func newReserveCommand(g *globalFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "reserve NAMESPACE/SERVICE [--name NAME]",
		Short: "Turn a Service's current addresses into an IPReservation, so it gets them back whenever it is re-created",
		Long: `Reserve creates an IPReservation holding the addresses a running Service has
now (its status.loadBalancer.ingress) for that Service, by namespace and
name. From then on the Service gets those addresses whenever it exists (a
Helm re-install or a GitOps tool may delete and re-create it), and no other
Service gets them, also while it does not exist. Delete the IPReservation
to let them go; the Service keeps its addresses either way.

The reservation is named NAMESPACE-SERVICE unless --name says otherwise.`,
		Example: `  ironlbctl reserve kubeflow/minio-service
  kubectl ironlb reserve istio-system/istio-ingressgateway --name ingress`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, svc, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || svc == "" || strings.Contains(svc, "/") {
				return fmt.Errorf("%q: name the Service as NAMESPACE/NAME, for example kubeflow/minio-service", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return reserve(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: svc}, name, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the IPReservation (default NAMESPACE-SERVICE)")
	return cmd
}

// reserve creates an IPReservation of the addresses the Service nn holds
// for it, named name (default "<namespace>-<name>"), and says what it
// created on out.
func reserve(ctx context.Context, c client.Client, nn types.NamespacedName, name string, out io.Writer) error {
	if name == "" {
		name = nn.Namespace + "-" + nn.Name
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("--name %q is not a valid object name: %s", name, strings.Join(errs, "; "))
	}
	var svc corev1.Service
	if err := c.Get(ctx, nn, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no Service %s", nn)
		}
		return fmt.Errorf("get Service %s: %w", nn, err)
	}
	ips := kube.IngressIPs(&svc)
	if len(ips) == 0 {
		why := "it is not of type LoadBalancer"
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			why = "its status.loadBalancer.ingress is empty"
			if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionIPAllocated); c != nil && c.Status != metav1.ConditionTrue {
				why += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
			}
		}
		return fmt.Errorf("%s has no address to reserve: %s; reserve it once it has one, or write an IPReservation with the address you want", nn, why)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	var list v1alpha1.IPReservationList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("list IP reservations: %w", err)
	}
	for _, r := range list.Items {
		for _, s := range r.Spec.Addresses {
			if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && slices.Contains(ips, a) {
				return fmt.Errorf("%s is already reserved by IPReservation/%s (%s); nothing created", a, r.Name, reservedFor(r.Spec))
			}
		}
	}
	res := &v1alpha1.IPReservation{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.IPReservationSpec{
			Addresses: make([]string, len(ips)),
			Service:   &v1alpha1.ReservedService{Namespace: nn.Namespace, Name: nn.Name},
		},
	}
	for i, a := range ips {
		res.Spec.Addresses[i] = a.String()
	}
	if err := c.Create(ctx, res); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("an IPReservation named %s exists already; choose another with --name", name)
		}
		return fmt.Errorf("create IPReservation/%s: %w", name, err)
	}
	fmt.Fprintf(out, "ipreservation.ironlb.io/%s created: %s reserved for Service %s\n", name, strings.Join(res.Spec.Addresses, ", "), nn)
	return nil
}

// reservedFor describes whom a reservation's spec is for.
func reservedFor(spec v1alpha1.IPReservationSpec) string {
	switch {
	case spec.Service != nil:
		return "for Service " + spec.Service.Namespace + "/" + spec.Service.Name
	case spec.ServiceSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(&spec.ServiceSelector.Selector)
		if err != nil {
			return "for Services of " + spec.ServiceSelector.Namespace
		}
		return fmt.Sprintf("for Services of %s matching %s", spec.ServiceSelector.Namespace, sel)
	}
	return "for no Service"
}
