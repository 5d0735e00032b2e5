package main

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// kube-proxy keeps its configuration, a KubeProxyConfiguration, in the
// config.conf key of ConfigMap kube-system/kube-proxy (kubeadm's layout,
// which most installers follow).
const (
	kubeProxyNamespace = "kube-system"
	kubeProxyConfigMap = "kube-proxy"
	kubeProxyKey       = "config.conf"
)

// kubeProxyConfig is the part of a KubeProxyConfiguration doctor reads.
type kubeProxyConfig struct {
	// Mode is "iptables" (the default on Linux when empty), "ipvs" or
	// "nftables".
	Mode string `json:"mode"`
	IPVS struct {
		// StrictARP makes the kernel answer ARP only for addresses on the
		// interface asked (arp_ignore=1, arp_announce=2). IPVS mode binds
		// every Service IP to the kube-ipvs0 dummy interface; without
		// strictARP every node answers ARP for every LoadBalancer IP, and
		// Layer 2 mode's single announcing node is lost in the noise.
		StrictARP bool `json:"strictARP"`
	} `json:"ipvs"`
}

func parseKubeProxyConfig(s string) (kubeProxyConfig, error) {
	var c kubeProxyConfig
	if err := yaml.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("%s is not a KubeProxyConfiguration: %w", kubeProxyKey, err)
	}
	return c, nil
}

var (
	ipvsKeyLine   = regexp.MustCompile(`^ipvs:\s*(#.*)?$`)
	ipvsEmptyLine = regexp.MustCompile(`^ipvs:\s*\{\s*\}\s*(#.*)?$`)
	strictARPLine = regexp.MustCompile(`^(\s+)strictARP:\s*[^\s#]*(\s*#.*)?$`)
	indentOf      = regexp.MustCompile(`^(\s+)\S`)
)

// setStrictARP returns conf with ipvs.strictARP set to true, changing as
// little text as possible so the diff shown to the operator is one line:
// the value of an existing strictARP key, or one line added to the ipvs
// block (created if absent). The result is checked by parsing both texts:
// it must differ from conf in ipvs.strictARP only.
func setStrictARP(conf string) (string, error) {
	if _, err := parseKubeProxyConfig(conf); err != nil {
		return "", err
	}
	lines := strings.Split(conf, "\n")
	edited := false
	for i := 0; i < len(lines) && !edited; i++ {
		switch {
		case ipvsEmptyLine.MatchString(lines[i]):
			lines[i] = "ipvs:"
			lines = insertLine(lines, i+1, "  strictARP: true")
			edited = true
		case ipvsKeyLine.MatchString(lines[i]):
			// The block: the indented (or blank) lines after "ipvs:".
			end, indent := i+1, "  "
			for end < len(lines) && (strings.TrimSpace(lines[end]) == "" || strings.HasPrefix(lines[end], " ") || strings.HasPrefix(lines[end], "\t")) {
				if m := indentOf.FindStringSubmatch(lines[end]); m != nil && indent == "  " {
					indent = m[1]
				}
				end++
			}
			for j := i + 1; j < end; j++ {
				if m := strictARPLine.FindStringSubmatch(lines[j]); m != nil && m[1] == indent {
					lines[j] = m[1] + "strictARP: true" + m[2]
					edited = true
					break
				}
			}
			if !edited {
				lines = insertLine(lines, i+1, indent+"strictARP: true")
				edited = true
			}
		}
	}
	if !edited {
		// No ipvs block: add one at the end.
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		lines = append(lines, "ipvs:", "  strictARP: true", "")
	}
	out := strings.Join(lines, "\n")
	if err := sameButStrictARP(conf, out); err != nil {
		return "", err
	}
	return out, nil
}

func insertLine(lines []string, at int, line string) []string {
	return append(lines[:at], append([]string{line}, lines[at:]...)...)
}

// sameButStrictARP checks that after says what before says, with
// ipvs.strictARP true.
func sameButStrictARP(before, after string) error {
	var a, b map[string]any
	if err := yaml.Unmarshal([]byte(before), &a); err != nil {
		return err
	}
	// Strict: kube-proxy refuses a configuration with a key twice.
	j, err := yaml.YAMLToJSONStrict([]byte(after))
	if err == nil {
		err = yaml.Unmarshal(j, &b)
	}
	if err != nil {
		return fmt.Errorf("the edited %s would not parse (%v); set ipvs.strictARP: true by hand", kubeProxyKey, err)
	}
	if a == nil {
		a = map[string]any{}
	}
	ipvs, ok := a["ipvs"].(map[string]any)
	switch {
	case a["ipvs"] == nil:
		ipvs = map[string]any{}
	case !ok:
		return fmt.Errorf("ipvs in %s is not a mapping; set ipvs.strictARP: true by hand", kubeProxyKey)
	}
	ipvs["strictARP"] = true
	a["ipvs"] = ipvs
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("could not edit %s safely (unusual layout); set ipvs.strictARP: true by hand: kubectl -n %s edit configmap %s",
			kubeProxyKey, kubeProxyNamespace, kubeProxyConfigMap)
	}
	return nil
}
