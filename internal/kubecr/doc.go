// Package kubecr is what the controller-runtime users, the controller and
// ironlbctl, share: the scheme their clients are built with, the adapter
// that lets kube.ReadInput and kube.ReadLastGood read through a
// controller-runtime client, and the options of the controller's metrics
// endpoint.
//
// It is apart from internal/kube so that the speaker, which reads
// Kubernetes through its own small client (internal/apiclient), links
// neither controller-runtime nor client-go's clientset and scheme: those
// cost each node about 13 MiB of resident memory. It holds no package
// state and starts nothing.
package kubecr
