package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionValid is the condition type every ironlb config object carries in
// status.conditions. True: the object is in force as written. False: it is
// not, and the message names the field and says why; if an earlier version
// of the object was valid, that version stays in force and the message says
// so. One invalid object never stops the others.
const ConditionValid = "Valid"

// Reasons for the Valid condition.
const (
	// ReasonValid: the object is in force as written.
	ReasonValid = "Valid"
	// ReasonInvalid: a field of the object itself is wrong.
	ReasonInvalid = "Invalid"
	// ReasonConflict: the object clashes with an older object (for example
	// two pools share an address); the older object keeps working.
	ReasonConflict = "Conflict"
	// ReasonMissingReference: the object is in force, but it names a pool,
	// peer or BFD profile that does not exist (yet); that part has no effect.
	// The condition stays True; the message carries the warning.
	ReasonMissingReference = "MissingReference"
)

// ConfigStatus is the status of the config kinds whose only state is whether
// they are in force: L2Announcement, BGPPeer, BGPAnnouncement and BFDProfile.
type ConfigStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: "Valid" says whether the object is in force and, if not,
	// which field is wrong; warnings (such as a name that matches nothing)
	// appear in its message.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}
