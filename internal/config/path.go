package config

import (
	"fmt"
	"regexp"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// fieldPath is where a field sits in the object the operator wrote. The
// same validation code serves the CRDs and the legacy ConfigMap, which
// spell fields differently (autoAssign vs auto-assign): child takes the CRD
// spelling and translates it on a legacy path.
type fieldPath struct {
	legacy bool
	s      string
}

func crdPath(s string) fieldPath    { return fieldPath{s: s} }
func legacyPath(s string) fieldPath { return fieldPath{legacy: true, s: s} }

// legacyNames maps CRD field names to the legacy ConfigMap's.
var legacyNames = map[string]string{
	"autoAssign":          "auto-assign",
	"avoidBuggyIPs":       "avoid-buggy-ips",
	"aggregationLength":   "aggregation-length",
	"aggregationLengthV6": "aggregation-length-v6",
	"localPref":           "localpref",
	"myASN":               "my-asn",
	"peerASN":             "peer-asn",
	"peerAddress":         "peer-address",
	"peerPort":            "peer-port",
	"sourceAddress":       "source-address",
	"routerID":            "router-id",
	"holdTime":            "hold-time",
	"keepaliveTime":       "keepalive-time",
	"ebgpMultiHop":        "ebgp-multihop",
	"nodeSelectors":       "node-selectors",
	"bfdProfile":          "bfd-profile",
	"receiveInterval":     "receive-interval",
	"transmitInterval":    "transmit-interval",
	"detectMultiplier":    "detect-multiplier",
	"echoInterval":        "echo-interval",
	"echoMode":            "echo-mode",
	"passiveMode":         "passive-mode",
	"minimumTTL":          "minimum-ttl",
	"matchLabels":         "match-labels",
	"matchExpressions":    "match-expressions",
}

func (f fieldPath) child(name string) fieldPath {
	if f.legacy {
		if l, ok := legacyNames[name]; ok {
			name = l
		}
	}
	if f.s == "" {
		return fieldPath{f.legacy, name}
	}
	return fieldPath{f.legacy, f.s + "." + name}
}

// key is the path of a map entry whose key the operator chose (an alias
// name), written as .key when that reads unambiguously, else as ["key"].
func (f fieldPath) key(k string) fieldPath {
	if simpleKey.MatchString(k) {
		return fieldPath{f.legacy, f.s + "." + k}
	}
	return fieldPath{f.legacy, fmt.Sprintf("%s[%q]", f.s, k)}
}

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (f fieldPath) index(i int) fieldPath {
	return fieldPath{f.legacy, fmt.Sprintf("%s[%d]", f.s, i)}
}

func (f fieldPath) String() string { return f.s }

// report collects the problems of one object.
type report struct {
	ref  ObjectRef
	list []Problem
}

// invalid records that field f of the object is wrong.
func (r *report) invalid(f fieldPath, format string, args ...any) {
	r.list = append(r.list, Problem{Object: r.ref, Field: f.String(), Message: fmt.Sprintf(format, args...), Reason: v1alpha1.ReasonInvalid})
}

func (r *report) ok() bool { return len(r.list) == 0 }
