package apiclient

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRecorderWrites writes events about a Service to the API server: a
// repeat joins the first Event's series, another note makes a second Event.
func TestRecorderWrites(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	ns := newNamespace(t, c)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatalf("create: %v", err)
	}
	r := NewRecorder(c, "ironlb.io/speaker", "node-a", slog.New(slog.NewTextHandler(os.Stderr, nil)))
	r.Start(ctx)

	events := func(want int) []eventsv1.Event {
		t.Helper()
		var got []eventsv1.Event
		eventually(t, fmt.Sprintf("%d events", want), func() error {
			var l eventsv1.EventList
			if err := c.ListIn(ctx, &l, ns, nil); err != nil {
				return err
			}
			got = l.Items
			if len(got) != want {
				return fmt.Errorf("%d events: %+v", len(got), got)
			}
			return nil
		})
		return got
	}

	r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s from %s", "192.0.2.1", "node-a")
	r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s from %s", "192.0.2.1", "node-a")
	var ev eventsv1.Event
	eventually(t, "series of 2", func() error {
		got := events(1)
		ev = got[0]
		if ev.Series == nil || ev.Series.Count != 2 {
			return fmt.Errorf("series %+v, want count 2", ev.Series)
		}
		return nil
	})
	if ev.Note != "192.0.2.1 from node-a" || ev.Regarding.UID != svc.UID || ev.Regarding.Kind != "Service" ||
		ev.ReportingController != "ironlb.io/speaker" || ev.ReportingInstance != "node-a" {
		t.Errorf("event %+v", ev)
	}

	r.Eventf(svc, nil, corev1.EventTypeNormal, "Announced", "Announce", "%s from %s", "192.0.2.2", "node-a")
	events(2)
}
