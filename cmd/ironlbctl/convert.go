package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

func newConvertCommand(g *globalFlags) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "convert [-f FILE|-]...",
		Short: "Convert MetalLB configuration to ironlb objects (YAML on stdout)",
		Long: `Convert reads MetalLB configuration and writes the equivalent ironlb objects
(IPPool, L2Announcement, BGPPeer, BGPAnnouncement, BFDProfile) as YAML on stdout.

It reads
  - the legacy ConfigMap (MetalLB up to v0.12): a ConfigMap whose data.config
    holds address-pools, peers, bgp-communities and bfd-profiles, or just that
    config text;
  - metallb.io objects: IPAddressPool, L2Advertisement, BGPAdvertisement,
    BGPPeer (v1beta1 and v1beta2), BFDProfile and Community (whose aliases are
    written out as the communities they stand for);
as multi-document YAML or a List (kubectl get -o yaml). Other objects are
skipped with a warning.

Anything that cannot be carried over is named, with its object and field, on
stderr and in comments at the top of the output. An inline BGP password
becomes a Secret in --namespace (ironlb's namespace) that the BGPPeer refers
to. The output is checked with the same validation the ironlb controller uses.

ironlb also reads the legacy ConfigMap as it is, from its own namespace; convert
it when you want CRDs instead.`,
		Example: `  kubectl -n metallb-system get configmap config -o yaml | ironlbctl convert > ironlb-config.yaml
  kubectl -n metallb-system get ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities -o yaml \
    | ironlbctl convert -f - > ironlb-config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				files = []string{"-"}
			}
			var inputs []convertInput
			for _, f := range files {
				var data []byte
				var err error
				if f == "-" {
					data, err = io.ReadAll(cmd.InOrStdin())
					f = "stdin"
				} else {
					data, err = os.ReadFile(f)
				}
				if err != nil {
					return fmt.Errorf("read %s: %w", f, err)
				}
				inputs = append(inputs, convertInput{name: f, data: data})
			}
			conv, err := convertMetalLB(inputs, g.namespace)
			if err != nil {
				return err
			}
			for _, w := range conv.warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return conv.write(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file to read, - for stdin (repeatable; default stdin)")
	return cmd
}

// convertInput is one file given to convert.
type convertInput struct {
	name string
	data []byte
}

// conversion is what convert writes: ironlb objects (and Secrets for inline
// BGP passwords) in apply order, and what could not be carried over.
type conversion struct {
	objects  []convertedObject
	warnings []string
}

// convertedObject is one output object and where it came from, which is
// written as a comment above it so the operator can review the mapping.
type convertedObject struct {
	obj    client.Object
	source string
}

// converter collects every input object first (Community aliases and
// BGPAdvertisements may come in any order), then converts.
type converter struct {
	secretNamespace string
	legacy          []legacyInput
	metallb         []metallbObject
	out             conversion
}

type legacyInput struct {
	cm    *corev1.ConfigMap
	where string
}

// convertMetalLB converts the MetalLB configuration in inputs. Inline BGP
// passwords become Secrets in secretNamespace.
func convertMetalLB(inputs []convertInput, secretNamespace string) (*conversion, error) {
	c := &converter{secretNamespace: secretNamespace}
	for _, in := range inputs {
		if err := c.read(in.name, in.data); err != nil {
			return nil, err
		}
	}
	if len(c.legacy) > 1 {
		return nil, fmt.Errorf("%s and %s are both legacy MetalLB configurations; convert one at a time", c.legacy[0].where, c.legacy[1].where)
	}
	for _, l := range c.legacy {
		if err := c.fromLegacy(l.cm); err != nil {
			return nil, err
		}
	}
	c.fromMetalLBObjects()
	if len(c.out.objects) == 0 {
		return nil, fmt.Errorf("no MetalLB configuration found in the input (a legacy ConfigMap, or metallb.io objects)")
	}
	c.sortObjects()
	c.validate()
	return &c.out, nil
}

func (c *converter) warnf(format string, args ...any) {
	c.out.warnings = append(c.out.warnings, fmt.Sprintf(format, args...))
}

func (c *converter) add(obj client.Object, source string) {
	c.out.objects = append(c.out.objects, convertedObject{obj: obj, source: source})
}

// read splits a file into YAML documents and reads each.
func (c *converter) read(name string, data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		where := name
		if i > 1 || bytes.Contains(data, []byte("\n---")) {
			where = fmt.Sprintf("%s (document %d)", name, i)
		}
		if err := c.readDocument(where, doc); err != nil {
			return err
		}
	}
}

// typeMeta is what every Kubernetes object (and List) starts with.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (c *converter) readDocument(where string, doc []byte) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("%s: not valid YAML: %w", where, err)
	}
	if string(j) == "null" {
		return nil // empty document or only comments
	}
	var tm typeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return fmt.Errorf("%s: not a YAML object (a Kubernetes object or MetalLB's legacy config): %w", where, err)
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		// The bare legacy config text, as in a ConfigMap's data.config.
		c.legacy = append(c.legacy, legacyInput{where: where, cm: &corev1.ConfigMap{
			TypeMeta:   typeMetaOf("v1", "ConfigMap"),
			ObjectMeta: objectMeta("metallb-system", "config"),
			Data:       map[string]string{config.LegacyConfigKey: string(doc)},
		}})
		return nil
	}
	if strings.HasSuffix(tm.Kind, "List") {
		for i, item := range tm.Items {
			if err := c.readObject(fmt.Sprintf("%s item %d", where, i), item); err != nil {
				return err
			}
		}
		return nil
	}
	return c.readObject(where, j)
}

// readObject sorts one object (JSON) into what convert knows.
func (c *converter) readObject(where string, j []byte) error {
	var tm typeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return fmt.Errorf("%s: apiVersion %q: %w", where, tm.APIVersion, err)
	}
	id := tm.Kind + " " + qualified(tm.Metadata.Namespace, tm.Metadata.Name)
	switch {
	case gv.Group == "" && tm.Kind == "ConfigMap":
		var cm corev1.ConfigMap
		if err := json.Unmarshal(j, &cm); err != nil {
			return fmt.Errorf("%s: %s: %w", where, id, err)
		}
		if _, ok := cm.Data[config.LegacyConfigKey]; !ok {
			c.warnf("%s: skipped: it has no data.%s, so it is not a MetalLB configuration", id, config.LegacyConfigKey)
			return nil
		}
		c.legacy = append(c.legacy, legacyInput{cm: &cm, where: id})
	case gv.Group == "metallb.io":
		return c.readMetalLB(where, id, gv.Version, tm.Kind, j)
	case gv.Group == v1alpha1.GroupVersion.Group:
		c.warnf("%s: skipped: it is already ironlb configuration", id)
	default:
		c.warnf("%s (%s): skipped: not MetalLB configuration", id, tm.APIVersion)
	}
	return nil
}

// kindOrder is the order objects are written in: what others refer to first.
var kindOrder = []string{"IPPool", "L2Announcement", "BFDProfile", "BGPPeer", "BGPAnnouncement", "Secret"}

func (c *converter) sortObjects() {
	slices.SortStableFunc(c.out.objects, func(a, b convertedObject) int {
		ka := slices.Index(kindOrder, a.obj.GetObjectKind().GroupVersionKind().Kind)
		kb := slices.Index(kindOrder, b.obj.GetObjectKind().GroupVersionKind().Kind)
		return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(a.obj.GetName(), b.obj.GetName()))
	})
}

// validate runs the output through config.Build, the validation the ironlb
// controller runs, and reports what it would say.
func (c *converter) validate() {
	var in config.Input
	for _, o := range c.out.objects {
		switch v := o.obj.(type) {
		case *v1alpha1.IPPool:
			in.Pools = append(in.Pools, *v)
		case *v1alpha1.L2Announcement:
			in.L2 = append(in.L2, *v)
		case *v1alpha1.BGPPeer:
			in.BGPPeers = append(in.BGPPeers, *v)
		case *v1alpha1.BGPAnnouncement:
			in.BGPAnnouncements = append(in.BGPAnnouncements, *v)
		case *v1alpha1.BFDProfile:
			in.BFDProfiles = append(in.BFDProfiles, *v)
		}
	}
	_, problems := config.Build(in, nil)
	for _, p := range problems {
		what := "ironlb will leave it out"
		if p.Outcome == config.Warning {
			what = "warning"
		}
		c.warnf("%s (%s)", p.Error(), what)
	}
}

// write writes the conversion as multi-document YAML: a header with the
// warnings, then each object with a comment naming its source.
func (cv *conversion) write(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# ironlb configuration converted from MetalLB by ironlbctl convert.\n")
	b.WriteString("# Review it, then apply it: kubectl apply -f FILE\n")
	if len(cv.warnings) > 0 {
		b.WriteString("#\n# Not carried over, or to check (also printed on stderr):\n")
		for _, warning := range cv.warnings {
			b.WriteString("#   - " + strings.ReplaceAll(warning, "\n", "\n#     ") + "\n")
		}
	}
	for _, o := range cv.objects {
		y, err := objectYAML(o.obj)
		if err != nil {
			return err
		}
		b.WriteString("---\n# From " + o.source + "\n")
		b.Write(y)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// objectYAML renders obj as a manifest: no status and no empty
// creationTimestamp, which a typed object always carries.
func objectYAML(obj client.Object) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.GetName(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

func qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
