// Package kube is what the controller, the speaker and ironlbctl read from
// Kubernetes in one way: the scheme, the configuration objects as
// config's Input, the facts of Services, EndpointSlices and Nodes that
// decide who gets and who announces an address, the names both daemons
// default to, and how both serve their metrics (MetricsServer: only to
// callers the API server authorizes).
//
// It sits beneath the two daemons so that neither imports the other
// (ARCHITECTURE.md: the daemons are siblings), and so that a fact such as
// "is this node Ready" or "which addresses does this Service hold" is read
// the same way by the process that acts on it and by ironlbctl, which
// explains it. It holds no package state and starts nothing.
package kube
