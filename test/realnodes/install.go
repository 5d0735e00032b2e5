package realnodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/labkube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Path is an install path.
type Path string

// The install paths: dist/ironlb.yaml with kubectl, or the Helm chart.
const (
	Manifests Path = "manifests"
	Helm      Path = "helm"
)

// distImageLine is the image line of dist/ironlb.yaml, which names the
// release's image.
var distImageLine = regexp.MustCompile(`(?m)^(\s+image: )ghcr\.io/ironlb/ironlb:\S+$`)

// manifests writes dist/ironlb.yaml, unchanged but for its image lines
// (what `make manifests IMAGE=... VERSION=...` changes), into the scratch
// directory and returns its path.
func (e *Env) manifests(img Image) (string, error) {
	b, err := os.ReadFile(filepath.Join(e.Root, "dist", "ironlb.yaml"))
	if err != nil {
		return "", err
	}
	if n := len(distImageLine.FindAll(b, -1)); n != 2 {
		return "", fmt.Errorf("dist/ironlb.yaml has %d image lines naming ghcr.io/ironlb/ironlb, want 2 (controller, speaker)", n)
	}
	b = distImageLine.ReplaceAll(b, []byte("${1}"+img.Ref))
	p := filepath.Join(e.Dir, "ironlb-"+img.Version+".yaml")
	return p, os.WriteFile(p, b, 0o644)
}

// helmImage are helm's --set flags for img.
func helmImage(img Image) string {
	return "image.repository=" + ImageRepository + ",image.tag=" + img.Version
}

// Install installs img by path with the README's commands, waits for the
// rollouts, and records the time from the first command to every ironlb
// pod Ready (prefix names the figure).
func (e *Env) Install(ctx context.Context, path Path, img Image, prefix string) error {
	start := time.Now()
	switch path {
	case Manifests:
		file, err := e.manifests(img)
		if err != nil {
			return err
		}
		if _, err := e.Run(ctx, "kubectl", "apply", "-f", file); err != nil {
			return err
		}
		if _, err := e.Run(ctx, "kubectl", "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/name=ironlb"); err != nil {
			return err
		}
	case Helm:
		if _, err := e.Run(ctx, "helm", "install", "ironlb", "charts/ironlb", "--namespace", Namespace, "--create-namespace",
			"--set", helmImage(img)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown install path %q", path)
	}
	if err := e.rolloutStatus(ctx); err != nil {
		return err
	}
	if err := e.checkImages(ctx, img); err != nil {
		return err
	}
	e.recordDuration(prefix+"_install_to_ready", time.Since(start))
	return nil
}

// rolloutStatus waits for the controller's and the speakers' rollouts, as
// the README does.
func (e *Env) rolloutStatus(ctx context.Context) error {
	for _, w := range []string{"deployment/ironlb-controller", "daemonset/ironlb-speaker"} {
		if _, err := e.Run(ctx, "kubectl", "-n", Namespace, "rollout", "status", w, "--timeout=120s"); err != nil {
			return err
		}
	}
	return nil
}

// checkImages checks that every ironlb pod runs img, Ready, one speaker
// per live node.
func (e *Env) checkImages(ctx context.Context, img Image) error {
	pods, err := e.C.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=ironlb"})
	if err != nil {
		return err
	}
	var errs []error
	speakers := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Labels["app.kubernetes.io/component"] == "speaker" {
			speakers++
		}
		for _, c := range p.Spec.Containers {
			if c.Image != img.Ref {
				errs = append(errs, fmt.Errorf("pod %s runs %s, want %s", p.Name, c.Image, img.Ref))
			}
		}
		if !labkube.PodReady(&p) {
			errs = append(errs, fmt.Errorf("pod %s on %s not Ready", p.Name, p.Spec.NodeName))
		}
	}
	if speakers != len(e.C.Nodes) {
		errs = append(errs, fmt.Errorf("%d speakers, want one on each of %d nodes", speakers, len(e.C.Nodes)))
	}
	return errors.Join(errs...)
}

// tutorialRange is the address range in config/samples/legacy-configmap.yaml
// and the README: the tutorial's.
const tutorialRange = "192.168.1.87-192.168.1.97"

// ApplyLegacyConfig applies the tutorial's ConfigMap as the README ships
// it (config/samples/legacy-configmap.yaml: the tutorial's, in ironlb's
// namespace), its range edited to the lab's LAN as the README says to
// edit it to yours.
func (e *Env) ApplyLegacyConfig(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(e.Root, "config", "samples", "legacy-configmap.yaml"))
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), tutorialRange) {
		return fmt.Errorf("config/samples/legacy-configmap.yaml no longer holds the tutorial's range %s", tutorialRange)
	}
	p := filepath.Join(e.Dir, "legacy-configmap.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), tutorialRange, Pool)), 0o644); err != nil {
		return err
	}
	_, err = e.Run(ctx, "kubectl", "apply", "-f", p)
	return err
}

// ApplyCRDConfig applies the same pool as CRDs, the README's other form
// (config/samples/ippool.yaml and l2announcement.yaml), with the lab's
// range: an IPPool "lan" and its L2Announcement.
func (e *Env) ApplyCRDConfig(ctx context.Context) error {
	conf := `apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: lan
spec:
  addresses:
  - ` + Pool + `
---
apiVersion: ironlb.io/v1alpha1
kind: L2Announcement
metadata:
  name: lan
spec:
  ipPools:
  - lan
`
	p := filepath.Join(e.Dir, "pool.yaml")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		return err
	}
	_, err := e.Run(ctx, "kubectl", "apply", "-f", p)
	return err
}

// Doctor runs `ironlbctl doctor` until it passes (exit status 0), for up
// to 30 s, and records how long that took from the install's end: right
// after the rollouts the speakers are Ready but may not have joined each
// other yet (they wait for the memberlist Secret the controller creates,
// retrying after 1, 2, 4, 8 s), and doctor then fails its memberlist
// check. It also checks doctor's verdict on kube-proxy in nftables mode:
// OK, strictARP does not apply.
func (e *Env) Doctor(ctx context.Context, prefix string) error {
	start := time.Now()
	err := waitFor(ctx, "ironlbctl doctor passes", 30*time.Second, func() error {
		_, err := e.doctor(ctx)
		if err != nil {
			time.Sleep(time.Second)
		}
		return err
	})
	e.recordDuration(prefix+"_doctor_passes_after", time.Since(start))
	return err
}

// doctor runs `ironlbctl doctor` once and checks its kube-proxy verdict.
func (e *Env) doctor(ctx context.Context) (string, error) {
	out, err := e.Run(ctx, "ironlbctl", "doctor")
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "kube-proxy") {
			line = strings.TrimSpace(l)
			break
		}
	}
	switch {
	case line == "":
		return out, errors.Join(err, errors.New("doctor said nothing about kube-proxy"))
	case !strings.Contains(line, "OK") || !strings.Contains(line, "nftables"):
		return out, errors.Join(err, fmt.Errorf("doctor on kube-proxy in nftables mode: %q, want OK naming nftables", line))
	}
	return out, err
}
