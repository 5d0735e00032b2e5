package speaker

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRegistered(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	lease := func(holder string, age time.Duration, seconds int32) coordinationv1.Lease {
		l := coordinationv1.Lease{}
		if holder != "" {
			l.Spec.HolderIdentity = &holder
		}
		renew := metav1.NewMicroTime(now.Add(-age))
		l.Spec.RenewTime = &renew
		if seconds > 0 {
			l.Spec.LeaseDurationSeconds = &seconds
		}
		return l
	}
	cases := []struct {
		name   string
		leases []coordinationv1.Lease
		want   []string
	}{
		{"fresh", []coordinationv1.Lease{lease("node-1", time.Second, 40)}, []string{"node-1"}},
		{"expired", []coordinationv1.Lease{lease("node-1", 41*time.Second, 40)}, nil},
		{"its own duration counts", []coordinationv1.Lease{lease("node-1", 20*time.Second, 10)}, nil},
		{"no duration: the default", []coordinationv1.Lease{lease("node-1", 39*time.Second, 0)}, []string{"node-1"}},
		{"no holder", []coordinationv1.Lease{lease("", time.Second, 40)}, nil},
		{"no renewal", []coordinationv1.Lease{{Spec: coordinationv1.LeaseSpec{HolderIdentity: new("node-1")}}}, nil},
		{"several", []coordinationv1.Lease{lease("node-1", time.Second, 40), lease("node-2", time.Minute, 40), lease("node-3", 0, 40)}, []string{"node-1", "node-3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := registered(c.leases, now); !slices.Equal(got, c.want) {
				t.Errorf("registered = %v, want %v", got, c.want)
			}
		})
	}
}
