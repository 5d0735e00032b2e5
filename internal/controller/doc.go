// Package controller connects Kubernetes objects to ironlb's pure parts: it
// reads config objects into one config.Config, keeps an ipam.Allocator in
// step with LoadBalancer Services, and writes each Service's IPs, condition
// and events. State lives in the API server (Services' status), so on start
// Restore rebuilds the allocator from it before anything new is assigned.
package controller
