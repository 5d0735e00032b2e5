package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// run runs ironlbctl with args and stdin, and returns what it wrote and
// its error.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestConvertGolden converts the user's ConfigMap from SCENARIO.md, a BGP
// setup in the legacy format and a set of metallb.io CRDs, and checks the
// output against golden files (rewrite them with -update), that every
// warning on stderr is also in the output, that ironlb's own validation
// finds nothing wrong with the output, and that the real API server
// accepts every object (CRD schemas included).
func TestConvertGolden(t *testing.T) {
	const secretNS = "ironlb-convert"
	ensureNamespace(t, secretNS)
	for _, name := range []string{"scenario", "legacy-bgp", "metallb-crds"} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := run(t, "", "--namespace", secretNS, "convert", "-f", filepath.Join("testdata", "convert", name+".yaml"))
			if err != nil {
				t.Fatalf("convert: %v\n%s", err, stderr)
			}
			golden := filepath.Join("testdata", "convert", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), stdout); diff != "" {
				t.Errorf("output differs from %s (-want +got; -update rewrites it):\n%s", golden, diff)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if w, ok := strings.CutPrefix(line, "warning: "); ok && !strings.Contains(stdout, "#   - "+w+"\n") {
					t.Errorf("stderr warning is not in the output's comments: %s", w)
				} else if !ok && line != "" {
					t.Errorf("stderr line is not a warning: %q", line)
				}
			}

			objs := decodeManifests(t, stdout)
			if problems := buildProblems(t, objs); len(problems) > 0 {
				t.Errorf("config.Build finds problems in the output:\n%s", strings.Join(problems, "\n"))
			}
			ctx := context.Background()
			for _, o := range objs {
				if err := env.Client.Create(ctx, o); err != nil {
					t.Errorf("API server rejects %s %s: %v", o.GetKind(), o.GetName(), err)
					continue
				}
				t.Cleanup(func() { deleteAndWait(t, o) })
			}
		})
	}
}

// TestConvertInputs checks the other ways to give convert its input.
func TestConvertInputs(t *testing.T) {
	scenario, err := os.ReadFile(filepath.Join("testdata", "convert", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := run(t, "", "convert", "-f", filepath.Join("testdata", "convert", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The bare config text, as in data.config, read from stdin.
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(scenario, &cm); err != nil {
		t.Fatal(err)
	}
	got, _, err := run(t, cm.Data["config"], "convert")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bare config text converts differently from the ConfigMap (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, input, wantErr string
	}{
		{"invalid legacy config", "address-pools:\n- name: a\n  protocol: layer3\n  addresses: [192.168.1.1/32]\n",
			`address-pools[0].protocol: "layer3" is not a protocol`},
		{"nothing to convert", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n", "no MetalLB configuration found"},
		{"two legacy configs", "address-pools: []\n---\naddress-pools: []\n", "convert one at a time"},
		{"not YAML", "a: [\n", "not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.input, "convert", "-f", "-")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// decodeManifests reads convert's output back as unstructured objects.
func decodeManifests(t *testing.T, s string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// buildProblems runs the ironlb objects among objs through config.Build.
func buildProblems(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var in config.Input
	for _, u := range objs {
		if u.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			continue
		}
		conv := runtime.DefaultUnstructuredConverter
		var err error
		switch u.GetKind() {
		case "IPPool":
			var o v1alpha1.IPPool
			err = conv.FromUnstructured(u.Object, &o)
			in.Pools = append(in.Pools, o)
		case "L2Announcement":
			var o v1alpha1.L2Announcement
			err = conv.FromUnstructured(u.Object, &o)
			in.L2 = append(in.L2, o)
		case "BGPPeer":
			var o v1alpha1.BGPPeer
			err = conv.FromUnstructured(u.Object, &o)
			in.BGPPeers = append(in.BGPPeers, o)
		case "BGPAnnouncement":
			var o v1alpha1.BGPAnnouncement
			err = conv.FromUnstructured(u.Object, &o)
			in.BGPAnnouncements = append(in.BGPAnnouncements, o)
		case "BFDProfile":
			var o v1alpha1.BFDProfile
			err = conv.FromUnstructured(u.Object, &o)
			in.BFDProfiles = append(in.BFDProfiles, o)
		default:
			t.Errorf("unexpected kind %s", u.GetKind())
		}
		if err != nil {
			t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	_, problems := config.Build(in, nil)
	var out []string
	for _, p := range problems {
		out = append(out, p.Error())
	}
	return out
}
