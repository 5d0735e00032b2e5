package labcluster

import (
	"context"
	"fmt"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/internal/apiservertest"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/labnet"
)

// SpeakerKubeconfig installs ironlb's own ServiceAccounts and RBAC
// (config/rbac: the roles `make generate` writes from the speaker's and
// the controller's markers, and their bindings), requests a token for the
// speaker's ServiceAccount and writes a kubeconfig with it, whose path it
// returns. A speaker started with it (StartSpeaker(name, "--kubeconfig",
// path)) has exactly the rights an installed speaker has, where the lab's
// speakers otherwise run as the cluster admin.
func (c *Cluster) SpeakerKubeconfig(ctx context.Context) (string, error) {
	root, err := apiservertest.RepoRoot()
	if err != nil {
		return "", err
	}
	for _, f := range []string{"service_accounts.yaml", "speaker/role.yaml", "bindings.yaml"} {
		objs, err := labnet.ReadManifest(filepath.Join(root, "config", "rbac", f))
		if err != nil {
			return "", err
		}
		for _, o := range objs {
			if err := c.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				return "", fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
			}
		}
	}
	cs, err := kubernetes.NewForConfig(c.CP.Config)
	if err != nil {
		return "", err
	}
	hour := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(kube.DefaultNamespace).CreateToken(ctx, "ironlb-speaker",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for the speaker's ServiceAccount: %w", err)
	}
	cfg, err := clientcmd.LoadFromFile(c.CP.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, a := range cfg.AuthInfos {
		a.Token = tok.Status.Token
	}
	path := filepath.Join(c.Lab.Dir(), "speaker.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}
