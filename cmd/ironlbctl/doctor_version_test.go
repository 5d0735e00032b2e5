package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/version"
	apiversion "k8s.io/apimachinery/pkg/version"
)

func TestCheckKubernetes(t *testing.T) {
	lbClass := "OK before 1.22: spec.loadBalancerClass is dropped unless kube-apiserver runs with --feature-gates=ServiceLoadBalancerClass=true"
	nodePorts := "OK before 1.22: spec.allocateLoadBalancerNodePorts is dropped"
	ipMode := "OK before 1.30: status.loadBalancer.ingress[].ipMode is dropped"
	serviceCIDR := "OK before 1.33: no ServiceCIDR objects"
	tests := []struct {
		name    string
		version *apiversion.Info
		err     error
		want    []string // each finding's "SEVERITY message" starts with one, in order
	}{
		{"1.20: too old", &apiversion.Info{GitVersion: "v1.20.15"}, nil, []string{
			"FAIL v1.20.15 is older than 1.21, the oldest ironlb supports (tested: 1.21 to 1.37): the speakers read EndpointSlices of discovery.k8s.io/v1"}},
		{"1.21, the tutorial's", &apiversion.Info{GitVersion: "v1.21.14"}, nil, []string{
			"OK v1.21.14, within the tested range 1.21 to 1.37", lbClass, nodePorts, ipMode, serviceCIDR}},
		{"1.21 of a distribution", &apiversion.Info{GitVersion: "v1.21.2+k3s1"}, nil, []string{
			"OK v1.21.2+k3s1, within the tested range", lbClass, nodePorts, ipMode, serviceCIDR}},
		{"1.22", &apiversion.Info{GitVersion: "v1.22.0"}, nil, []string{"OK v1.22.0, within", ipMode, serviceCIDR}},
		{"1.29", &apiversion.Info{GitVersion: "v1.29.4-eks-036c24b"}, nil, []string{"OK v1.29.4-eks-036c24b, within", ipMode, serviceCIDR}},
		{"1.30", &apiversion.Info{GitVersion: "v1.30.0"}, nil, []string{"OK v1.30.0, within", serviceCIDR}},
		{"1.33", &apiversion.Info{GitVersion: "v1.33.1"}, nil, []string{"OK v1.33.1, within the tested range 1.21 to 1.37"}},
		{"1.37", &apiversion.Info{GitVersion: "v1.37.2"}, nil, []string{"OK v1.37.2, within the tested range 1.21 to 1.37"}},
		{"newer", &apiversion.Info{GitVersion: "v1.38.0-alpha.1"}, nil, []string{"OK v1.38.0-alpha.1, newer than the newest tested (tested: 1.21 to 1.37)"}},
		{"unreadable", &apiversion.Info{GitVersion: "master"}, nil, []string{`WARN the API server reports version "master", which doctor cannot read`}},
		{"error", nil, errors.New("the server has asked for the client to provide credentials"), []string{
			"WARN cannot read the API server's version: the server has asked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range checkKubernetes(clusterFacts{Version: tt.version, VersionErr: tt.err}) {
				got = append(got, f.Severity.String()+" "+f.Message)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("findings:\n  %s\nwant %d", strings.Join(got, "\n  "), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("finding %d = %q, want it to start with %q", i, got[i], w)
				}
			}
		})
	}
}

// TestTestedRange keeps the range doctor states in step with the API
// servers test/versions runs: hack/oldkube's and hack/tools' Kubernetes.
func TestTestedRange(t *testing.T) {
	pin := func(gomod string) *version.Version {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "..", "hack", gomod, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("hack/%s/go.mod pins no k8s.io/kubernetes", gomod)
		}
		v := version.MustParseGeneric(string(m[1]))
		return version.MajorMinor(v.Major(), v.Minor())
	}
	got := []string{oldestTested.String(), newestTested.String()}
	want := []string{pin("oldkube").String(), pin("tools").String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tested range (-want +got):\n%s", diff)
	}
}
