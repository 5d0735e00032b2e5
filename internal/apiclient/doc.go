// Package apiclient talks to the Kubernetes API server for the speaker with
// only client-go's rest and tools/cache packages: a typed client over one
// rest.RESTClient per GroupVersion (Client), informers read back like
// controller-runtime's cache (Cache), and an events.k8s.io/v1 event writer
// (Recorder).
//
// It exists for memory: controller-runtime and client-go's clientset
// (k8s.io/client-go/kubernetes, its scheme, its typed packages and
// tools/events, which imports it) register every built-in kind at init, which
// costs about 13 MiB of resident memory in a daemon that runs on every node.
// This package knows only the kinds of the scheme its caller passes in, and a
// test (deps_test.go) keeps those packages out of its dependencies.
package apiclient
