package speaker

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestSlimTransform checks that the cache transform keeps what the speaker
// reads of a Node (its readers run on the slim object and must give the
// same answer as on the full one) and drops the rest.
func TestSlimTransform(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: "7", Labels: map[string]string{"zone": "a"}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.51.100.11"}},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Message: "kubelet is posting ready status"},
			},
			Images: []corev1.ContainerImage{{Names: []string{"registry.example/huge:1"}, SizeBytes: 1 << 30}},
		},
	}

	t.Run("node", func(t *testing.T) {
		got := mustSlim[*corev1.Node](t, node)
		if !kube.NodeReady(got) {
			t.Error("the slim node is not Ready")
		}
		if ip := kube.InternalIP(got); ip != netip.MustParseAddr("198.51.100.11") {
			t.Errorf("InternalIP %v", ip)
		}
		if !reflect.DeepEqual(got.Labels, node.Labels) {
			t.Errorf("labels %v", got.Labels)
		}
		if len(got.Status.Images) > 0 || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Message != "" {
			t.Errorf("status kept more than Ready and the addresses: %+v", got.Status)
		}
	})
	t.Run("tombstone", func(t *testing.T) {
		tomb := toolscache.DeletedFinalStateUnknown{Key: "node-1", Obj: node}
		got, err := slimTransform(tomb)
		if err != nil || !reflect.DeepEqual(got, tomb) {
			t.Errorf("got %v, %v; want the tombstone unchanged", got, err)
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		once := mustSlim[*corev1.Node](t, node)
		if twice := mustSlim[*corev1.Node](t, once); !reflect.DeepEqual(once, twice) {
			t.Errorf("a second pass changed %+v into %+v", once, twice)
		}
	})
}

func mustSlim[T any](t *testing.T, obj any) T {
	t.Helper()
	out, err := slimTransform(obj)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := out.(T)
	if !ok {
		t.Fatalf("transform returned %T", out)
	}
	return got
}

// TestSlimChanged checks which updates of a Node kick a sync: those that
// change what the speaker reads, and no others.
func TestSlimChanged(t *testing.T) {
	node := func(rv string, readyStatus corev1.ConditionStatus, beat int64, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", ResourceVersion: rv, Labels: labels},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: readyStatus,
				LastHeartbeatTime: metav1.Unix(beat, 0)}}}}
	}
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"node: a heartbeat", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionTrue, 200, nil), false},
		{"node: not ready", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionFalse, 200, nil), true},
		{"node: a label", node("1", corev1.ConditionTrue, 100, nil), node("2", corev1.ConditionTrue, 100, map[string]string{"zone": "b"}), true},
		{"another kind", &corev1.ConfigMap{}, &corev1.ConfigMap{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := slimChanged(mustSlim[any](t, tc.old), mustSlim[any](t, tc.new)); got != tc.want {
				t.Errorf("changed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSyncSpacing(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{0, minSyncInterval},
		{10 * time.Millisecond, minSyncInterval},
		{150 * time.Millisecond, 450 * time.Millisecond}, // a quarter of a CPU
		{time.Second, 3 * time.Second},
	} {
		if got := syncSpacing(tc.took); got != tc.want {
			t.Errorf("after a sync of %v: %v, want %v", tc.took, got, tc.want)
		}
	}
}

func TestNodeEligibilityChanged(t *testing.T) {
	node := func(ready corev1.ConditionStatus, labels map[string]string, beat int64) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: ready, LastHeartbeatTime: metav1.Unix(beat, 0),
			}}},
		}
	}
	ready := node(corev1.ConditionTrue, nil, 1)
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"heartbeat only", ready, node(corev1.ConditionTrue, nil, 2), false},
		{"not Ready", ready, node(corev1.ConditionFalse, nil, 2), true},
		{"Ready again", node(corev1.ConditionUnknown, nil, 1), ready, true},
		{"labelled", ready, node(corev1.ConditionTrue, map[string]string{"l2": "yes"}, 1), true},
		{"not a Node", &corev1.Service{}, &corev1.Service{}, false},
	} {
		if got := nodeEligibilityChanged(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
