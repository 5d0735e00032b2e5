package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// The last good version of every object lives in the cluster, in the data
// of one ConfigMap that the controller writes (SaveLastGood) and every
// daemon reads as it starts (LastGood). Without it, a controller or speaker
// starting while an object is invalid would leave the object out: a typo
// in the legacy ConfigMap would take its pools' addresses off the LAN at
// the next rollout. It is kept in the cluster, not on a node's disk, so
// that every replica and every node starts from the same versions.
//
// Each entry is keyed "<Kind>.<name>" and holds the object as written when
// it was last valid, trimmed to what Build reads (name, namespace, UID,
// creation time, labels, and the spec or the ConfigMap's data.config), as
// JSON, so that `kubectl get configmap -o yaml` shows what is kept, and a
// newer ironlb parses it again with its own rules.

// SaveLastGood returns the last good versions after a Build of in that
// reported problems, given the ones saved before (old, may be nil): each
// object of in that is valid as written (only Warnings) as written; each
// invalid one its entry in old if that is a version of the same object
// (same UID); nothing for objects no longer in in. It does not modify old.
func SaveLastGood(in Input, problems []Problem, old map[string]string) (map[string]string, error) {
	bad := map[ObjectRef]bool{}
	for _, p := range problems {
		if p.Outcome != Warning {
			bad[p.Object] = true
		}
	}
	out := map[string]string{}
	save := func(kind string, m *metav1.ObjectMeta, trimmed any) error {
		key := kind + "." + m.Name
		if bad[ObjectRef{Kind: kind, Namespace: m.Namespace, Name: m.Name}] {
			if s, ok := old[key]; ok && savedUID(s) == m.UID {
				out[key] = s
			}
			return nil
		}
		b, err := json.Marshal(trimmed)
		if err != nil {
			return fmt.Errorf("save the last good version of %s/%s: %w", kind, m.Name, err)
		}
		out[key] = string(b)
		return nil
	}
	var errs []error
	if cm := in.ConfigMap; cm != nil {
		errs = append(errs, save("ConfigMap", &cm.ObjectMeta, &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: trimMeta(&cm.ObjectMeta),
			Data:       map[string]string{LegacyConfigKey: cm.Data[LegacyConfigKey]},
		}))
	}
	for _, o := range in.Pools {
		errs = append(errs, save("IPPool", &o.ObjectMeta, &v1alpha1.IPPool{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, o := range in.L2 {
		errs = append(errs, save("L2Announcement", &o.ObjectMeta, &v1alpha1.L2Announcement{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, o := range in.BGPPeers {
		errs = append(errs, save("BGPPeer", &o.ObjectMeta, &v1alpha1.BGPPeer{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, o := range in.BGPAnnouncements {
		errs = append(errs, save("BGPAnnouncement", &o.ObjectMeta, &v1alpha1.BGPAnnouncement{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, o := range in.BFDProfiles {
		errs = append(errs, save("BFDProfile", &o.ObjectMeta, &v1alpha1.BFDProfile{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, o := range in.Reservations {
		errs = append(errs, save("IPReservation", &o.ObjectMeta, &v1alpha1.IPReservation{ObjectMeta: trimMeta(&o.ObjectMeta), Spec: o.Spec}))
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LastGood reads saved (SaveLastGood's output) back and builds it, for a
// daemon to pass as Build's prev as it starts, so that an object invalid
// at that moment keeps its last good version. An entry it cannot read is
// left out and reported: the rest still count.
func LastGood(saved map[string]string) (*Config, []error) {
	var in Input
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(saved)) {
		kind, _, _ := strings.Cut(key, ".")
		var err error
		switch kind {
		case "ConfigMap":
			var o corev1.ConfigMap
			if err = json.Unmarshal([]byte(saved[key]), &o); err == nil {
				in.ConfigMap = &o
			}
		case "IPPool":
			in.Pools, err = appendSaved(in.Pools, saved[key])
		case "L2Announcement":
			in.L2, err = appendSaved(in.L2, saved[key])
		case "BGPPeer":
			in.BGPPeers, err = appendSaved(in.BGPPeers, saved[key])
		case "BGPAnnouncement":
			in.BGPAnnouncements, err = appendSaved(in.BGPAnnouncements, saved[key])
		case "BFDProfile":
			in.BFDProfiles, err = appendSaved(in.BFDProfiles, saved[key])
		case "IPReservation":
			in.Reservations, err = appendSaved(in.Reservations, saved[key])
		default:
			err = fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("last good version %q: %w", key, err))
		}
	}
	cfg, _ := Build(in, nil)
	return cfg, errs
}

func appendSaved[T any](list []T, s string) ([]T, error) {
	var o T
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return list, err
	}
	return append(list, o), nil
}

// trimMeta keeps what Build reads of an object's metadata.
func trimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, CreationTimestamp: m.CreationTimestamp, Labels: m.Labels}
}

// savedUID is the UID of a saved entry ("" if it cannot be read).
func savedUID(s string) types.UID {
	var o struct {
		Metadata struct {
			UID types.UID `json:"uid"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal([]byte(s), &o)
	return o.Metadata.UID
}
