package main

import (
	"fmt"

	"github.com/ironlb/ironlb/internal/kubecr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// globalFlags are the flags every ironlbctl command shares.
type globalFlags struct {
	kubeconfig string
	namespace  string // where ironlb runs and its legacy ConfigMap lives
	configMap  string
}

// client connects like kubectl does: --kubeconfig, then $KUBECONFIG and
// ~/.kube/config, then the in-cluster config.
func (g *globalFlags) client() (client.Client, error) {
	var cfg *rest.Config
	var err error
	if g.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", g.kubeconfig)
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: kubecr.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("connect to the API server: %w", err)
	}
	return c, nil
}
