package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert feeds convert arbitrary input: it may refuse it, but must not
// panic, and what it accepts it must be able to write.
func FuzzConvert(f *testing.F) {
	for _, name := range []string{"scenario.yaml", "legacy-bgp.yaml", "metallb-crds.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "convert", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("address-pools:\n- name: a b\n  protocol: layer2\n  addresses: [10.0.0.1/32]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		conv, err := convertMetalLB([]convertInput{{name: "fuzz", data: data}}, "ironlb-system")
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := conv.write(&b); err != nil {
			t.Errorf("write: %v", err)
		}
	})
}

// FuzzSetStrictARP checks that whatever setStrictARP accepts comes out with
// strictARP true.
func FuzzSetStrictARP(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "doctor", "kube-proxy-ipvs.conf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("mode: ipvs\nipvs: {}\n")
	f.Add("mode: ipvs\nipvs: 5\n")
	f.Fuzz(func(t *testing.T, conf string) {
		out, err := setStrictARP(conf)
		if err != nil {
			return
		}
		kp, err := parseKubeProxyConfig(out)
		if err != nil || !kp.IPVS.StrictARP {
			t.Errorf("setStrictARP(%q) = %q: strictARP %v, parse error %v", conf, out, kp.IPVS.StrictARP, err)
		}
	})
}
