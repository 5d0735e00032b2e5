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
			// The Service record store (svcstore.go) and the status patch.
			{verb: "list", resource: "services"},
			{verb: "watch", resource: "services"},
			{verb: "patch", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "list", resource: "namespaces"},
			{verb: "watch", resource: "namespaces"},
			// The legacy ConfigMap, cached with a field selector on its name.
			{verb: "list", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "watch", resource: "configmaps", namespace: systemNamespace, name: "config"},
			// The last good config versions (internal/controller/lastgood.go).
			{verb: "create", resource: "configmaps", namespace: systemNamespace},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "update", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "create", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			{verb: "patch", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			{verb: "list", group: "ironlb.io", resource: "ippools"},
			{verb: "watch", group: "ironlb.io", resource: "ippools"},
			{verb: "watch", group: "ironlb.io", resource: "bfdprofiles"},
			{verb: "list", group: "ironlb.io", resource: "ipreservations"},
			{verb: "watch", group: "ironlb.io", resource: "ipreservations"},
			{verb: "patch", group: "ironlb.io", resource: "ippools"}, // the finalizer
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "l2announcements", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "bgppeers", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "bgpannouncements", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "bfdprofiles", subresource: "status"},
			{verb: "update", group: "ironlb.io", resource: "ipreservations", subresource: "status"},
			// The speakers' memberlist key (internal/controller/memberlistkey.go).
			{verb: "create", resource: "secrets", namespace: systemNamespace},
			{verb: "get", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			// Leader election.
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "ironlb-controller"},
			{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "ironlb-controller"},
			// The metrics endpoint's authentication and authorization.
			{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
			{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"},
		},
		refused: []access{
			{verb: "get", resource: "services", namespace: "kubeflow", name: "minio-service"},
			{verb: "update", resource: "services", namespace: "kubeflow"},
			{verb: "update", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "delete", resource: "services", namespace: "kubeflow"},
			// No Secret but the key, which it never reads after creating.
			{verb: "get", resource: "secrets", namespace: systemNamespace, name: "router-md5"},
			{verb: "get", resource: "secrets", namespace: systemNamespace, name: "ironlb-controller-token"},
			{verb: "list", resource: "secrets", namespace: systemNamespace},
			{verb: "update", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			{verb: "create", resource: "secrets", namespace: "kube-system"},
			// No ConfigMap but its two, and only as it uses them.
			{verb: "list", resource: "configmaps"},
			{verb: "list", resource: "configmaps", namespace: systemNamespace},
			{verb: "watch", resource: "configmaps", namespace: systemNamespace},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "other"},
			{verb: "get", resource: "configmaps", namespace: "kube-system", name: "kube-proxy"},
			{verb: "update", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "delete", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "create", resource: "configmaps", namespace: "kube-system"},
			{verb: "get", group: "ironlb.io", resource: "ippools", name: "default"},
			{verb: "update", group: "ironlb.io", resource: "ippools"},
			{verb: "delete", group: "ironlb.io", resource: "ippools"},
			{verb: "patch", group: "ironlb.io", resource: "l2announcements"},
			// IPReservations are the operator's (ironlbctl reserve runs as the user).
			{verb: "create", group: "ironlb.io", resource: "ipreservations"},
			{verb: "update", group: "ironlb.io", resource: "ipreservations"},
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "finalizers"},
			{verb: "patch", group: "ironlb.io", resource: "ippools", subresource: "status"},
			{verb: "create", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "create", resource: "events", namespace: "kubeflow"},
			{verb: "update", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			{verb: "update", resource: "nodes"},
			{verb: "list", resource: "nodes"},
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"},
			{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "speaker-node-1"},
			{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "speaker-node-1"},
			{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "ironlb-controller"},
			{verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "list", resource: "pods"},
		},
	}, {
		sa: "ironlb-speaker",
		allowed: []access{
			{verb: "list", resource: "services"},
			{verb: "watch", resource: "services"},
			{verb: "list", resource: "nodes"},
			{verb: "watch", resource: "nodes"},
			{verb: "list", group: "discovery.k8s.io", resource: "endpointslices"},
			{verb: "watch", group: "discovery.k8s.io", resource: "endpointslices"},
			// The legacy ConfigMap, cached with a field selector on its
			// name, and the last good config versions, read once.
			{verb: "list", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "watch", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "list", group: "ironlb.io", resource: "ippools"},
			{verb: "watch", group: "ironlb.io", resource: "l2announcements"},
			{verb: "watch", group: "ironlb.io", resource: "bgppeers"},
			{verb: "list", group: "ironlb.io", resource: "serviceannouncements"},
			{verb: "watch", group: "ironlb.io", resource: "serviceannouncements"},
			{verb: "create", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "update", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "delete", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "get", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "list", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "create", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "update", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "delete", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			// The memberlist key, and the BGP passwords the BGPPeers name.
			{verb: "get", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			{verb: "get", resource: "secrets", namespace: systemNamespace, name: "router-md5"},
			{verb: "create", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			{verb: "patch", group: "events.k8s.io", resource: "events", namespace: "kubeflow"},
			// The speaker registry (internal/speaker/registry.go).
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "speaker-node-1"},
			{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "speaker-node-1"},
			{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace, name: "speaker-node-1"},
			{verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			// The metrics endpoint's authentication and authorization.
			{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
			{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"},
		},
		refused: []access{
			{verb: "get", resource: "services", namespace: "kubeflow", name: "minio-service"},
			{verb: "update", resource: "services", subresource: "status", namespace: "kubeflow"},
			{verb: "update", resource: "services", namespace: "kubeflow"},
			{verb: "get", resource: "nodes", name: "node-1"},
			{verb: "delete", resource: "nodes"},
			{verb: "update", resource: "nodes"},
			// Every node runs a speaker: it reads no ConfigMap but its two.
			{verb: "get", resource: "configmaps", namespace: "kube-system", name: "kube-proxy"},
			{verb: "list", resource: "configmaps", namespace: "kube-system"},
			{verb: "list", resource: "configmaps"},
			{verb: "watch", resource: "configmaps"},
			{verb: "list", resource: "configmaps", namespace: systemNamespace},
			{verb: "watch", resource: "configmaps", namespace: systemNamespace},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "config"},
			{verb: "get", resource: "configmaps", namespace: systemNamespace, name: "other"},
			{verb: "list", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "update", resource: "configmaps", namespace: systemNamespace, name: "ironlb-last-good"},
			{verb: "create", resource: "configmaps", namespace: systemNamespace},
			// Secrets: by name, in ironlb's namespace only, and none
			// created: a speaker that could create a token Secret for the
			// controller's ServiceAccount could read it back.
			{verb: "create", resource: "secrets", namespace: systemNamespace},
			{verb: "get", resource: "secrets", namespace: "kube-system", name: "anything"},
			{verb: "get", resource: "secrets", namespace: "kubeflow", name: "anything"},
			{verb: "list", resource: "secrets"},
			{verb: "list", resource: "secrets", namespace: systemNamespace},
			{verb: "watch", resource: "secrets", namespace: systemNamespace},
			{verb: "update", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			{verb: "patch", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			{verb: "delete", resource: "secrets", namespace: systemNamespace, name: "ironlb-memberlist"},
			{verb: "create", resource: "secrets", namespace: "kube-system"},
			{verb: "get", group: "ironlb.io", resource: "ippools", name: "default"},
			{verb: "update", group: "ironlb.io", resource: "ippools"},
			{verb: "update", group: "ironlb.io", resource: "ippools", subresource: "status"},
			{verb: "get", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow", name: "minio-service"},
			{verb: "patch", group: "ironlb.io", resource: "serviceannouncements", namespace: "kubeflow"},
			{verb: "create", group: "ironlb.io", resource: "bgpsessionstates", namespace: "kubeflow"},
			{verb: "list", group: "ironlb.io", resource: "bgpsessionstates"},
			{verb: "watch", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "patch", group: "ironlb.io", resource: "bgpsessionstates", namespace: systemNamespace},
			{verb: "create", resource: "events", namespace: "kubeflow"},
			{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"},
			{verb: "watch", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
			{verb: "patch", group: "coordination.k8s.io", resource: "leases", namespace: systemNamespace},
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

	// And real requests, as the speaker makes them: it lists and watches
	// the legacy ConfigMap with a field selector on its name, which the
	// API server authorizes as a request for that name; nothing else.
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(serviceAccountConfig(t, "ironlb-speaker"))
	if err != nil {
		t.Fatal(err)
	}
	byName := metav1.ListOptions{FieldSelector: "metadata.name=config"}
	if _, err := cs.CoreV1().ConfigMaps(systemNamespace).List(ctx, byName); err != nil {
		t.Errorf("speaker listing the legacy ConfigMap by name: %v", err)
	}
	w, err := cs.CoreV1().ConfigMaps(systemNamespace).Watch(ctx, byName)
	if err != nil {
		t.Errorf("speaker watching the legacy ConfigMap by name: %v", err)
	} else {
		w.Stop()
	}
	forbidden := func(what string, err error, want string) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("speaker %s: %v, want Forbidden", what, err)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("speaker %s: error %q does not say %q", what, err, want)
		}
	}
	const user = `User "system:serviceaccount:ironlb-system:ironlb-speaker"`
	_, err = cs.CoreV1().ConfigMaps(systemNamespace).List(ctx, metav1.ListOptions{})
	forbidden("listing every ConfigMap of "+systemNamespace, err,
		user+` cannot list resource "configmaps" in API group "" in the namespace "ironlb-system"`)
	_, err = cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	forbidden("reading a ConfigMap in kube-system", err,
		user+` cannot get resource "configmaps" in API group "" in the namespace "kube-system"`)
	_, err = cs.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{})
	forbidden("reading a Secret in kube-system", err,
		user+` cannot get resource "secrets" in API group "" in the namespace "kube-system"`)
	_, err = cs.CoreV1().Secrets(systemNamespace).List(ctx, metav1.ListOptions{})
	forbidden("listing the Secrets of "+systemNamespace, err,
		user+` cannot list resource "secrets" in API group "" in the namespace "ironlb-system"`)
}
