#!/usr/bin/env bash
# Build the oldest kube-apiserver ironlb is tested against (test/versions)
# from the Kubernetes module pinned in go.mod, with this repository's Go:
#
#	hack/oldkube/build.sh [output]   # default: bin/kube-apiserver-1.21
#
# Kubernetes 1.21 generated one file of kube-apiserver at build time and
# left it out of the module: pkg/generated/openapi/zz_generated.openapi.go,
# the OpenAPI definitions of the built-in types. openapi-gen, from the
# kube-openapi that 1.21 pins, writes it here from the packages listed in
# openapi-packages.txt (those tagged +k8s:openapi-gen in 1.21's build, less
# the component configurations the API server does not serve), into a copy
# of the module (hard links where the file system allows) that a temporary
# go.mod replaces it with: go build -overlay may not replace files in the
# module cache. GODEBUG=gotypesalias=0: that generator's gengo predates
# go/types' Alias nodes and cannot read them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../bin/kube-apiserver-1.21}
cd "$here"
kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$kube" | cut -d. -f2)
work=$(mktemp -d)
# The module copy's directories are read-only, as in the module cache.
trap 'find "$work" -type d -exec chmod u+w {} + 2>/dev/null; rm -rf "$work"' EXIT

go build -o "$work/openapi-gen" k8s.io/kube-openapi/cmd/openapi-gen
: > "$work/header.txt"
GODEBUG=gotypesalias=0 "$work/openapi-gen" --logtostderr=false \
	-i "$(paste -sd, openapi-packages.txt)" \
	-p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
	-h "$work/header.txt" -o "$work/gen" -r "$work/api-violations.report"

src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
cp -al "$src" "$work/kubernetes" 2>/dev/null || cp -r "$src" "$work/kubernetes"
chmod u+w "$work/kubernetes/pkg/generated/openapi"
cp "$work/gen/k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go" "$work/kubernetes/pkg/generated/openapi/"
cp go.mod go.sum "$work/"
echo "replace k8s.io/kubernetes => $work/kubernetes" >> "$work/go.mod"

# The version kube-apiserver reports (and helm's --kube-version checks),
# set as Kubernetes' own release build sets it.
ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
go build -trimpath -modfile "$work/go.mod" -ldflags "$ldflags" -o "$out" k8s.io/kubernetes/cmd/kube-apiserver
echo "built $out ($kube)"
