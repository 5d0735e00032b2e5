//go:build tools

// Package oldkube records the programs this module pins, so `go mod tidy`
// keeps them: kube-apiserver, and openapi-gen, which writes the one file
// of it that Kubernetes generated at build time and left out of its module
// (pkg/generated/openapi/zz_generated.openapi.go; build.sh).
package oldkube

import (
	_ "k8s.io/kube-openapi/cmd/openapi-gen"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
