package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/kubecr"
)

// statusRow is one LoadBalancer Service as `ironlbctl status` shows it.
type statusRow struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	IPs       []string `json:"ips,omitempty"`
	Pools     []string `json:"pools,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	State     string   `json:"state"`            // Allocated, Pending, or Unknown
	Reason    string   `json:"reason,omitempty"` // the IPAllocated condition's reason
	Message   string   `json:"message,omitempty"`
	// Reservations names the IPReservations in force that are for the
	// Service.
	Reservations []string `json:"reservations,omitempty"`
	// Announcers says which node answers for each address (Layer 2), from
	// the speakers' ServiceAnnouncement.
	Announcers []v1alpha1.Announcer `json:"announcers,omitempty"`
	// BGPSessions are, for a Service announced over BGP, the sessions to
	// the peers its addresses go to (those its BGPAnnouncements name, or
	// all), from every node: a node among them announces the addresses
	// when its session is Established and the node may announce them
	// (Ready, selected by the announcement, with a ready endpoint for
	// externalTrafficPolicy: Local). Only in -o json: the tables list
	// every session once, below the Services.
	BGPSessions []v1alpha1.BGPSessionStateStatus `json:"bgpSessions,omitempty"`
	// BGPAnnouncers says, for each address announced over BGP, which
	// nodes announce it to which peers, or why none does: computed by
	// ironlbctl from the sessions, Nodes and EndpointSlices (see
	// setBGPAnnouncers), as the speakers write nothing per Service.
	BGPAnnouncers []bgpAnnouncer `json:"bgpAnnouncers,omitempty"`

	local bool // externalTrafficPolicy: Local
}

// statusReport is everything `ironlbctl status` shows: the LoadBalancer
// Services, the IPReservations, then the BGP sessions of every node.
type statusReport struct {
	Services     []statusRow
	Reservations []reservationRow                 // sorted by name
	Sessions     []v1alpha1.BGPSessionStateStatus // sorted by node, then peer
}

// reservationRow is one IPReservation as `ironlbctl status` shows it,
// from the conditions the controller writes on it.
type reservationRow struct {
	Name      string
	Addresses []string
	For       string // "Service default/web", or the selector's Services
	// State is Bound, Waiting or Invalid; Reason and Message are those of
	// the Bound condition (the Valid one's when Invalid).
	State, Reason, Message string
}

// reservationRows reads rs's state from its conditions.
func reservationRows(rs []v1alpha1.IPReservation) []reservationRow {
	var out []reservationRow
	for _, r := range rs {
		row := reservationRow{Name: r.Name, Addresses: r.Spec.Addresses, For: strings.TrimPrefix(reservedFor(r.Spec), "for "), State: "Unknown"}
		valid := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionValid)
		bound := meta.FindStatusCondition(r.Status.Conditions, v1alpha1.ConditionBound)
		switch {
		case bound != nil && bound.Reason == v1alpha1.ReasonNotInForce && valid != nil:
			row.State, row.Reason, row.Message = "Invalid", valid.Reason, valid.Message
		case bound != nil && bound.Status == metav1.ConditionTrue:
			row.State, row.Reason, row.Message = "Bound", bound.Reason, bound.Message
		case bound != nil:
			row.State, row.Reason, row.Message = "Waiting", bound.Reason, bound.Message
		}
		if valid != nil && valid.Status == metav1.ConditionFalse && row.State != "Invalid" {
			row.Message += "; " + valid.Message
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b reservationRow) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// announcedBy is the ANNOUNCED BY column: the nodes announcing the
// Service's addresses, or why no node does. Layer 2 (l2AnnouncedBy) and
// BGP (bgpAnnouncedBy) each have their own form; a Service in both modes
// shows both, labelled: "bgp: node-1, node-3; layer2: node-2".
func (r statusRow) announcedBy(wide bool) string {
	l2 := r.l2AnnouncedBy(wide)
	switch {
	case len(r.BGPAnnouncers) == 0:
		return orNone(l2)
	case !strings.Contains(r.Mode, "layer2"):
		return r.bgpAnnouncedBy(wide)
	default:
		return "bgp: " + r.bgpAnnouncedBy(wide) + "; layer2: " + orNone(l2)
	}
}

// l2AnnouncedBy is the Layer 2 part of the ANNOUNCED BY column: the nodes
// answering for the Service's addresses ("node-2" or, per address,
// "node-2, node-3"), with interfaces and MACs when wide; or why no node
// does.
func (r statusRow) l2AnnouncedBy(wide bool) string {
	var parts []string
	for _, a := range r.Announcers {
		var p string
		switch {
		case a.Node == "":
			p = "none (" + a.Reason + ")"
		case wide && a.Interface != "":
			p = fmt.Sprintf("%s on %s (%s)", a.Node, a.Interface, a.MAC)
		default:
			p = a.Node
		}
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

func newStatusCommand(g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List LoadBalancer Services: addresses, pool, mode, or why they are pending",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := readStatus(cmd.Context(), c, types.NamespacedName{Namespace: g.namespace, Name: g.configMap})
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), rep, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: \"\" (table), wide (with messages) or json")
	return cmd
}

// readStatus reads what `ironlbctl status` shows: the Services (see
// statusRows) and the BGPSessionStates the speakers write in the
// namespace of ironlb's ConfigMap; and, to say who announces each Service
// over BGP, the Nodes and EndpointSlices (see readBGPFacts).
func readStatus(ctx context.Context, c client.Reader, cm types.NamespacedName) (statusReport, error) {
	rows, cfg, res, err := serviceRows(ctx, c, cm)
	if err != nil {
		return statusReport{}, err
	}
	var list v1alpha1.BGPSessionStateList
	if err := c.List(ctx, &list, client.InNamespace(cm.Namespace)); err != nil && !meta.IsNoMatchError(err) {
		return statusReport{}, fmt.Errorf("list BGP session states: %w", err)
	}
	rep := statusReport{Services: rows, Reservations: reservationRows(res)}
	for _, s := range list.Items {
		rep.Sessions = append(rep.Sessions, s.Status)
	}
	slices.SortFunc(rep.Sessions, func(a, b v1alpha1.BGPSessionStateStatus) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Peer, b.Peer))
	})
	for i := range rep.Services {
		rep.Services[i].BGPSessions = sessionsFor(cfg, rep.Services[i].IPs, rep.Sessions)
	}
	f, err := readBGPFacts(ctx, c, cfg, rep.Services, rep.Sessions)
	if err != nil {
		return statusReport{}, err
	}
	setBGPAnnouncers(rep.Services, f)
	return rep, nil
}

// sessionsFor returns the sessions that the addresses ips are announced
// on, by the config: those to a peer that a BGPAnnouncement of their pool
// names (or to every peer, when it names none).
func sessionsFor(cfg *config.Config, ips []string, sessions []v1alpha1.BGPSessionStateStatus) []v1alpha1.BGPSessionStateStatus {
	var anns []*config.BGPAnnouncement
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if p := cfg.PoolFor(a); p != nil {
			anns = append(anns, cfg.BGPFor(p.Name)...)
		}
	}
	var out []v1alpha1.BGPSessionStateStatus
	for _, s := range sessions {
		if slices.ContainsFunc(anns, func(a *config.BGPAnnouncement) bool { return a.SelectsPeer(s.Peer) }) {
			out = append(out, s)
		}
	}
	return out
}

// statusRows reads every LoadBalancer Service served by ironlb and the
// config, and says for each what it got or why not.
func statusRows(ctx context.Context, c client.Reader, cm types.NamespacedName) ([]statusRow, error) {
	rows, _, _, err := serviceRows(ctx, c, cm)
	return rows, err
}

// serviceRows is statusRows, also returning the config and the
// IPReservations it read.
func serviceRows(ctx context.Context, c client.Reader, cm types.NamespacedName) ([]statusRow, *config.Config, []v1alpha1.IPReservation, error) {
	in, err := kube.ReadInput(ctx, kubecr.Reader(c), cm)
	if err != nil {
		return nil, nil, nil, err
	}
	// Not in kube.ReadInput, which the speakers share and have no use
	// for them; an older install has no such CRD.
	var res v1alpha1.IPReservationList
	if err := c.List(ctx, &res); err != nil && !meta.IsNoMatchError(err) {
		return nil, nil, nil, fmt.Errorf("list IP reservations: %w", err)
	}
	in.Reservations = res.Items
	cfg, _ := config.Build(in, nil)
	var list corev1.ServiceList
	if err := c.List(ctx, &list); err != nil {
		return nil, nil, nil, fmt.Errorf("list services: %w", err)
	}
	var anns v1alpha1.ServiceAnnouncementList
	if err := c.List(ctx, &anns); err != nil && !meta.IsNoMatchError(err) {
		return nil, nil, nil, fmt.Errorf("list service announcements: %w", err)
	}
	announcers := map[types.NamespacedName][]v1alpha1.Announcer{}
	for _, a := range anns.Items {
		announcers[types.NamespacedName{Namespace: a.Namespace, Name: a.Name}] = a.Status.Announcers
	}
	var rows []statusRow
	for i := range list.Items {
		s := &list.Items[i]
		if !kube.Serves(s, v1alpha1.DefaultLoadBalancerClass) {
			continue
		}
		r := statusRow{Namespace: s.Namespace, Name: s.Name, State: "Unknown",
			Announcers: announcers[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}],
			local:      kube.LocalTraffic(s)}
		modes := map[string]bool{}
		for _, in := range s.Status.LoadBalancer.Ingress {
			r.IPs = append(r.IPs, in.IP)
			a, err := netip.ParseAddr(in.IP)
			if err != nil {
				continue
			}
			p := cfg.PoolFor(a)
			if p == nil {
				r.Pools = append(r.Pools, "(none)")
				continue
			}
			r.Pools = append(r.Pools, p.Name)
			if len(cfg.L2For(p.Name)) > 0 {
				modes["layer2"] = true
			}
			if len(cfg.BGPFor(p.Name)) > 0 {
				modes["bgp"] = true
			}
		}
		r.Pools = slices.Compact(r.Pools)
		r.Mode = strings.Join(slices.Sorted(func(yield func(string) bool) {
			for m := range modes {
				if !yield(m) {
					return
				}
			}
		}), "+")
		for _, rv := range cfg.ReservationsFor(s.Namespace, s.Name, s.Labels) {
			r.Reservations = append(r.Reservations, rv.Name)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ServiceConditionIPAllocated); c != nil {
			r.Reason, r.Message = c.Reason, c.Message
			r.State = "Pending"
			if c.Status == "True" {
				r.State = "Allocated"
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b statusRow) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return rows, cfg, res.Items, nil
}

// printStatus prints rep as tables ("" or "wide") or as JSON. The JSON is
// the list of Services, each BGP one with its sessions (bgpSessions).
func printStatus(w io.Writer, rep statusReport, output string) error {
	rows := rep.Services
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "", "wide":
	default:
		return fmt.Errorf("-o %q: want wide or json", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAMESPACE\tNAME\tEXTERNAL-IP\tPOOL\tMODE\tANNOUNCED BY\tSTATUS"
	if output == "wide" {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		status := r.State
		if r.State == "Pending" {
			status = "Pending: " + r.Reason
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Namespace, r.Name, orNone(strings.Join(r.IPs, ",")),
			orNone(strings.Join(r.Pools, ",")), orNone(r.Mode), r.announcedBy(output == "wide"), status)
		if output == "wide" {
			line += "\t" + r.Message
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.State == "Pending" && output == "" {
			fmt.Fprintf(w, "\n%s/%s is pending: %s\n", r.Namespace, r.Name, r.Message)
		}
	}
	if err := printReservations(w, rep.Reservations, output == "wide"); err != nil {
		return err
	}
	return printSessions(w, rep.Sessions, output == "wide")
}

// printReservations prints the "IP reservations" table, if there is any
// reservation. Without wide, why each one that is not bound waits
// follows the table, as the reasons of pending Services do.
func printReservations(w io.Writer, rs []reservationRow, wide bool) error {
	if len(rs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nIP reservations:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NAME\tADDRESSES\tFOR\tSTATE"
	if wide {
		header += "\tMESSAGE"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rs {
		state := r.State
		if r.State != "Bound" && r.Reason != "" {
			state += ": " + r.Reason
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", r.Name, strings.Join(r.Addresses, ","), r.For, state)
		if wide {
			line += "\t" + r.Message
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if !wide && r.State != "Bound" && r.Message != "" {
			fmt.Fprintf(w, "\nIPReservation/%s is not bound: %s\n", r.Name, r.Message)
		}
	}
	return nil
}

// printSessions prints the "BGP sessions" table, if there is any session.
// Without wide, the errors of the sessions that are not Established
// follow the table, as the reasons of pending Services do.
func printSessions(w io.Writer, sessions []v1alpha1.BGPSessionStateStatus, wide bool) error {
	if len(sessions) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nBGP sessions:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NODE\tPEER\tADDRESS\tSTATE\tBFD\tPREFIXES"
	if wide {
		header += "\tERROR"
	}
	fmt.Fprintln(tw, header)
	for _, s := range sessions {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d", s.Node, s.Peer, s.PeerAddress, s.State, orNone(string(s.BFDState)), s.PrefixesSent)
		if wide {
			line += "\t" + s.LastError
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range sessions {
		if !wide && s.State != v1alpha1.BGPStateEstablished && s.LastError != "" {
			fmt.Fprintf(w, "\n%s's session with %s is %s: %s\n", s.Node, s.Peer, s.State, s.LastError)
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
