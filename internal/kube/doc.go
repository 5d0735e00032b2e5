// Package kube is what the controller, the speaker and ironlbctl read from
// Kubernetes in one way: the configuration objects as config's Input
// (through a Reader), the facts of Services, EndpointSlices and Nodes
// that decide who gets and who announces an address, the names both
// daemons default to, and how both guard their metrics (MetricsAuth: only
// to callers the API server authorizes; ServeMetrics serves them for the
// speaker).
//
// It sits beneath the two daemons so that neither imports the other
// (ARCHITECTURE.md: the daemons are siblings), and so that a fact such as
// "is this node Ready" or "which addresses does this Service hold" is read
// the same way by the process that acts on it and by ironlbctl, which
// explains it. It links neither controller-runtime nor client-go's
// clientset (a test forbids them): the speaker, on every node, links this
// package and reads Kubernetes through a client of its own; what the
// controller-runtime users share besides lives in internal/kubecr. It
// holds no package state and starts nothing; ServeMetrics runs until its
// context ends.
package kube
