package controller

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestCompactUID(t *testing.T) {
	for _, u := range []types.UID{
		"0b6c7f2e-2f6e-4d0e-9f6e-000000000042", // what the API server makes
		"0B6C7F2E-2F6E-4D0E-9F6E-000000000042", // upper case comes back upper case
		"0b6c7f2e2f6e4d0e9f6e000000000042abcd", // 36 bytes, no dashes
		"0b6c7f2e-2f6e-4d0e-9f6e-00000000004g",
		"not-a-uuid",
		"",
	} {
		if got := compactUIDOf(u).UID(); got != u {
			t.Errorf("compactUIDOf(%q).UID() = %q", u, got)
		}
	}
}

// TestServiceStore: the store tells subscribers of what is in it when they
// subscribe, of each change, and on a re-list of what is new and what is gone.
func TestServiceStore(t *testing.T) {
	svc := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	}
	key := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: name} }
	s := newServiceStore()
	if err := s.Add(svc("a")); err != nil {
		t.Fatal(err)
	}
	var heard []string
	s.subscribe(func(nn types.NamespacedName) { heard = append(heard, nn.Name) })
	s.Update(svc("b"))
	s.Delete(svc("a"))
	if want := []string{"a", "b", "a"}; !slices.Equal(heard, want) {
		t.Errorf("heard %q, want %q", heard, want)
	}
	heard = nil
	s.Replace([]any{svc("c")}, "")
	slices.Sort(heard)
	if want := []string{"b", "c"}; !slices.Equal(heard, want) {
		t.Errorf("after Replace heard %q, want %q", heard, want)
	}
	if _, ok := s.get(key("b")); ok {
		t.Error("b is still in the store after a Replace without it")
	}
	if _, ok := s.get(key("c")); !ok {
		t.Error("c is not in the store after a Replace with it")
	}
	select {
	case <-s.synced:
	default:
		t.Error("not synced after Replace")
	}
}
