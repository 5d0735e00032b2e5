package v1alpha1_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// TestBGPSessionStateColumns checks what `kubectl get bgpsess` shows: the
// API server's table for the kind, with -o wide's columns at priority 1.
func TestBGPSessionStateColumns(t *testing.T) {
	ctx := context.Background()
	const ns = "bgpsess-columns"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	s := &v1alpha1.BGPSessionState{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "node-1-router-0a1b2c3d"},
		Status: v1alpha1.BGPSessionStateStatus{Node: "node-1", Peer: "router", PeerAddress: "192.0.2.1",
			State: v1alpha1.BGPStateActive, BFDState: v1alpha1.BFDStateDown, PrefixesSent: 0,
			LastError: "dial tcp 192.0.2.1:179: i/o timeout", LastTransitionTime: metav1.Now()},
	}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}

	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimSuffix(env.Config.Host, "/")+"/apis/ironlb.io/v1alpha1/namespaces/"+ns+"/bgpsessionstates", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("table: %s: %s", resp.Status, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	type column struct {
		Name     string
		Priority int32
	}
	var cols []column
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, column{c.Name, c.Priority})
	}
	want := []column{{"Name", 0}, {"Node", 0}, {"Peer", 0}, {"Address", 0}, {"State", 0}, {"BFD", 0},
		{"Prefixes", 0}, {"Since", 1}, {"Age", 0}, {"Error", 1}}
	if diff := cmp.Diff(want, cols); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(table.Rows))
	}
	cells := table.Rows[0].Cells
	wantCells := []any{s.Name, "node-1", "router", "192.0.2.1", "Active", "Down", float64(0)}
	if diff := cmp.Diff(wantCells, cells[:len(wantCells)]); diff != "" {
		t.Errorf("cells (-want +got):\n%s", diff)
	}
	if cells[len(cells)-1] != s.Status.LastError {
		t.Errorf("error cell %v, want %q", cells[len(cells)-1], s.Status.LastError)
	}

	// The states are those of RFC 4271.
	bad := s.DeepCopy()
	bad.ResourceVersion, bad.UID = "", ""
	bad.Name, bad.Status.State = "bad", "Up"
	if err := env.Client.Create(ctx, bad); err == nil {
		t.Error("state Up accepted")
	}
}
