package install

import (
	"context"
	"fmt"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const systemNamespace = "ironlb-system"

// serviceAccountConfig reaches the API server with a token of the
// ServiceAccount ironlb-system/name, as the component's pod does.
func serviceAccountConfig(t *testing.T, name string) *rest.Config {
	t.Helper()
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(systemNamespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", systemNamespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// writeKubeconfig writes a kubeconfig file for cfg (server, CA, token), for
// a component started as a process.
func writeKubeconfig(t *testing.T, cfg *rest.Config, path string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// access is one request a component may or may not make.
type access struct {
	verb, group, resource, subresource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.name != "" {
		r += " " + a.name
	}
	if a.namespace != "" {
		return fmt.Sprintf("%s %s in %s", a.verb, r, a.namespace)
	}
	return fmt.Sprintf("%s %s", a.verb, r)
}

// TestRBAC asks the API server, as each component's ServiceAccount, whether
// it may do what it does, and checks that the neighbouring actions it has
// no use for are refused.
func TestRBAC(t *testing.T) {
	install(t)
	tests := []struct {
		sa               string
		allowed, refused []access
	}{{
		sa: "ironlb-controller",
		allowed: []access{
			{verb: "list", resource: "services"},
			{verb: "watch", resource: "services"},
			{verb: "update", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "patch", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "watch", resource: "namespaces"},
			{verb: "list", resource: "configmaps", namespace: systemNamespace},
			// The last good config versions (internal/controller/lastgood.go).
			{verb: "create", resource: "configmaps", namespace: systemNamespace},
			{verb: "update", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "create", resource: "events", namespace: "kubeflow"},
			{verb: "create", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			{verb: "watch", group: "ironlb.io", resource: "ippools"},
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "finalizers"},
			{verb: "update", group: "ironlb.io", resource: "l2announcements", subresource: "status"},
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
		},
		refused: []access{
			{verb: "update", resource: "services", namespace: "kubeflow"},
			{verb: "delete", resource: "services", namespace: "kubeflow"},
			{verb: "create", resource: "secrets", namespace: systemNamespace},
			{verb: "get", resource: "secrets", namespace: systemNamespace},
			{verb: "update", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "delete", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "create", resource: "configmaps", namespace: "kube-system"},
			{verb: "delete", group: "ironlb.io", resource: "ippools"},
			{verb: "create", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "update", resource: "nodes"},
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"},
			{verb: "list", resource: "pods"},
		},
	}, {
		sa: "ironlb-speaker",
		allowed: []access{
			{verb: "list", resource: "services"},
			{verb: "watch", resource: "nodes"},
			{verb: "watch", group: "discovery.k8s.io", resource: "endpointslices"},
			{verb: "list", resource: "configmaps", namespace: systemNamespace},
			{verb: "watch", group: "ironlb.io", resource: "l2announcements"},
			{verb: "create", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "update", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "delete", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "list", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "create", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "update", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "delete", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "get", resource: "secrets", namespace: systemNamespace},
			{verb: "create", resource: "secrets", namespace: systemNamespace},
			{verb: "create", resource: "events", namespace: "kubeflow"},
			// The speaker registry (internal/speaker/registry.go).
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
		},
		refused: []access{
			{verb: "update", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "update", resource: "services", namespace: "kubeflow"},
			{verb: "delete", resource: "nodes"},
			{verb: "update", resource: "nodes"},
			{verb: "get", resource: "secrets", namespace: "kube-system"},
			{verb: "list", resource: "secrets", namespace: systemNamespace},
			{verb: "update", resource: "secrets", namespace: systemNamespace},
			{verb: "delete", resource: "secrets", namespace: systemNamespace},
			{verb: "update", group: "ironlb.io", resource: "ippools"},
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "status"},
			{verb: "create", group: "ironlb.io", resource: "bgpsessionstates", namespace: "kubeflow"},
			{verb: "list", group: "ironlb.io", resource: "bgpsessionstates"},
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"},
			{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "list", resource: "pods"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.sa, func(t *testing.T) {
			cs, err := kubernetes.NewForConfig(serviceAccountConfig(t, tt.sa))
			if err != nil {
				t.Fatal(err)
			}
			check := func(a access, want bool) {
				t.Helper()
				r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
						Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name,
					}},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("access review %s: %v", a, err)
				}
				if r.Status.Allowed != want {
					t.Errorf("%s may %s: %v, want %v", tt.sa, a, r.Status.Allowed, want)
				}
			}
			for _, a := range tt.allowed {
				check(a, true)
			}
			for _, a := range tt.refused {
				check(a, false)
			}
		})
	}

	// And a real request: the speaker reads its own Secret, not others'.
	cs, err := kubernetes.NewForConfig(serviceAccountConfig(t, "ironlb-speaker"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Secrets("kube-system").Get(context.Background(), "anything", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("speaker reading a Secret in kube-system: %v, want Forbidden", err)
	}
	if want := `User "system:serviceaccount:ironlb-system:ironlb-speaker" cannot get resource "secrets" in API group "" in the namespace "kube-system"`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
