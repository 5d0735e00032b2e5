# ironlb build, test and tooling. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/ironlb/ironlb/internal/version.Version=$(VERSION)
BIN := $(CURDIR)/bin
GO ?= go
GOTEST_FLAGS ?= -count=1 -timeout 40m
export KUBEBUILDER_ASSETS := $(BIN)

# Versions the tools report, set with -X as their own release builds set
# them: a kube-apiserver built from the module says v0.0.0-master otherwise,
# and helm then refuses the chart's kubeVersion. Both are read from
# hack/tools/go.mod, so they cannot drift from the pins.
KUBE_VERSION := $(shell awk '$$1=="k8s.io/kubernetes"{print $$2; exit}' hack/tools/go.mod)
KUBE_MINOR := $(word 2,$(subst ., ,$(KUBE_VERSION)))
HELM_VERSION := $(shell awk '$$1=="helm.sh/helm/v3"{print $$2; exit}' hack/tools/go.mod)
KUBE_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version, \
	-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(KUBE_MINOR) -X $(p).gitTreeState=clean)
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules,-X $(p).k8sVersionMajor=1 -X $(p).k8sVersionMinor=$(KUBE_MINOR))

TOOLS := etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl controller-gen staticcheck helm
TOOLS_HASH := $(shell { cat hack/tools/go.mod hack/tools/go.sum hack/tools/cmd/etcd/main.go; echo '$(KUBE_LDFLAGS) $(HELM_LDFLAGS)'; } | sha256sum | cut -c1-16)
TOOLS_STAMP := $(BIN)/.tools-$(TOOLS_HASH)

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/ironlb, bin/ironlb-controller and bin/ironlb-speaker (each daemon alone), bin/ironlbctl and its kubectl plugin name bin/kubectl-ironlb
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ironlb ./cmd/ironlb
	CGO_ENABLED=0 $(GO) build -trimpath -tags ironlb_controller -ldflags '$(LDFLAGS)' -o $(BIN)/ironlb-controller ./cmd/ironlb
	CGO_ENABLED=0 $(GO) build -trimpath -tags ironlb_speaker -ldflags '$(LDFLAGS)' -o $(BIN)/ironlb-speaker ./cmd/ironlb
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ironlbctl ./cmd/ironlbctl
	ln -f $(BIN)/ironlbctl $(BIN)/kubectl-ironlb

.PHONY: tools
tools: $(TOOLS_STAMP) ## build the pinned tools in hack/tools into bin/ (skipped when the pins are unchanged)

$(TOOLS_STAMP): hack/tools/go.mod hack/tools/go.sum hack/tools/cmd/etcd/main.go
	@echo ">> building pinned tools ($(TOOLS)); kube-apiserver takes a few minutes the first time"
	@mkdir -p $(BIN)
	cd hack/tools && $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $(BIN)/ \
		./cmd/etcd \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kube-proxy \
		k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kubectl \
		sigs.k8s.io/controller-tools/cmd/controller-gen \
		honnef.co/go/tools/cmd/staticcheck
	cd hack/tools && $(GO) build -trimpath -ldflags '$(HELM_LDFLAGS)' -o $(BIN)/ helm.sh/helm/v3/cmd/helm
	@rm -f $(BIN)/.tools-*
	@touch $@

# The oldest Kubernetes ironlb is tested against (test/versions): its
# kube-apiserver, from a module of its own (hack/oldkube/build.sh).
.PHONY: oldkube
oldkube: $(BIN)/kube-apiserver-1.21 ## build bin/kube-apiserver-1.21 from hack/oldkube, the oldest Kubernetes test/versions runs against (~10 min cold)

$(BIN)/kube-apiserver-1.21: hack/oldkube/go.mod hack/oldkube/go.sum hack/oldkube/build.sh hack/oldkube/openapi-packages.txt
	hack/oldkube/build.sh $@

.PHONY: generate
generate: tools ## regenerate deepcopy code, CRDs (config/crd/bases) and RBAC (config/rbac)
	$(BIN)/controller-gen object paths=./api/...
	$(BIN)/controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(BIN)/controller-gen rbac:roleName=ironlb-controller paths=./internal/controller/... output:rbac:artifacts:config=config/rbac/controller
	$(BIN)/controller-gen rbac:roleName=ironlb-speaker paths=./internal/speaker/... output:rbac:artifacts:config=config/rbac/speaker

GENERATED = api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/controller config/rbac/speaker

.PHONY: check-generated
check-generated: tools ## fail when generated files differ from what `make generate` writes
	@before=$$(find $(GENERATED) -type f 2>/dev/null | sort | xargs -r sha256sum); \
	$(MAKE) --no-print-directory generate >/dev/null; \
	after=$$(find $(GENERATED) -type f 2>/dev/null | sort | xargs -r sha256sum); \
	if [ "$$before" != "$$after" ]; then \
		echo "generated files were stale; 'make generate' has now rewritten them: commit the result"; \
		diff <(echo "$$before") <(echo "$$after") || true; exit 1; fi; \
	echo ">> generated files are up to date"

# The image the manifests run; config/default names it ghcr.io/ironlb/ironlb:dev.
# A release renders them with its tag: `make manifests VERSION=v0.1.0`.
# hack/render is kustomize run as `kubectl kustomize` runs it, byte for byte,
# so rendering needs no Kubernetes tool built.
IMAGE ?= ghcr.io/ironlb/ironlb
IMAGE_TAG ?= $(VERSION)
CHART := charts/ironlb

.PHONY: manifests
manifests: ## render dist/ironlb.yaml (the one-file install) and the chart's CRDs and RBAC from config/ (builds no Kubernetes tool)
	@mkdir -p dist $(CHART)/crds $(CHART)/files/rbac
	{ echo '# ironlb $(IMAGE_TAG): rendered by `make manifests` from config/default; do not edit.'; \
	  $(GO) run ./hack/render config/default | sed 's|image: ghcr.io/ironlb/ironlb:dev$$|image: $(IMAGE):$(IMAGE_TAG)|'; } > dist/ironlb.yaml.tmp
	@grep -q 'image: $(IMAGE):$(IMAGE_TAG)$$' dist/ironlb.yaml.tmp || { echo "manifests: no image line was set to $(IMAGE):$(IMAGE_TAG)"; exit 1; }
	mv dist/ironlb.yaml.tmp dist/ironlb.yaml
	$(GO) run ./hack/render config/crd > $(CHART)/crds/ironlb.io.yaml
	cp config/rbac/controller/role.yaml $(CHART)/files/rbac/controller.yaml
	cp config/rbac/speaker/role.yaml $(CHART)/files/rbac/speaker.yaml

# The image (`make image`, `make release`): the binaries of `make build` for
# each platform, FROM scratch as in the Dockerfile, written by hack/image with
# go-containerregistry; no Docker daemon, no base image.
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_ARCHIVE ?= dist/ironlb-image.tar

.PHONY: build-platforms
build-platforms: ## cross-build `make build` (CGO_ENABLED=0) for each of IMAGE_PLATFORMS into bin/OS_ARCH/
	@$(foreach p,$(IMAGE_PLATFORMS),GOOS=$(word 1,$(subst /, ,$(p))) GOARCH=$(word 2,$(subst /, ,$(p))) \
		$(MAKE) --no-print-directory build BIN=$(BIN)/$(subst /,_,$(p)) &&) true

.PHONY: image
image: build-platforms ## write the image for IMAGE_PLATFORMS as one OCI archive, dist/ironlb-image.tar, named IMAGE:IMAGE_TAG
	$(GO) run ./hack/image -bin $(BIN) -platforms '$(IMAGE_PLATFORMS)' -ref $(IMAGE):$(IMAGE_TAG) archive $(IMAGE_ARCHIVE)

# `make release REGISTRY=ghcr.io/you TAG=v0.2.0` pushes REGISTRY/ironlb:TAG
# (credentials from ~/.docker/config.json, as `docker login` writes them) and
# renders the manifests for it.
.PHONY: release
release: ## push the image for IMAGE_PLATFORMS as one index to REGISTRY/ironlb:TAG and render the manifests for it
	@[ -n "$(REGISTRY)" ] && [ -n "$(TAG)" ] || { echo "usage: make release REGISTRY=ghcr.io/you TAG=v0.2.0"; exit 2; }
	$(MAKE) --no-print-directory build-platforms VERSION=$(TAG)
	$(GO) run ./hack/image -bin $(BIN) -platforms '$(IMAGE_PLATFORMS)' -ref $(REGISTRY)/ironlb:$(TAG) push
	$(MAKE) --no-print-directory manifests IMAGE=$(REGISTRY)/ironlb VERSION=$(TAG)

.PHONY: lint
lint: tools ## go vet and staticcheck
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

.PHONY: test
test: tools oldkube check-generated build ## everything CI runs: unit, integration on a real API server, lab e2e (lab needs root)
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: bench
BENCH_SERVICES ?= 10000
BENCH_FAILOVER_RUNS ?= 10
BENCH_BGPWITHDRAW_RUNS ?= 20
BENCH_MANYNODES_NODES ?= 100
BENCH_MANYNODES_SERVICES ?= 1000
BENCH_MANYNODES_RUNS ?= 10
bench: tools build ## benchmark scenarios; each prints `name value unit` lines (lab ones need root)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20000x ./internal/ipam/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./internal/l2/
	$(GO) test -run '^$$' -bench 'Detection|LabLinkCut' -benchtime 20x ./internal/election/
	$(GO) test -run '^$$' -bench 'LabTraffic' -benchtime 1x ./internal/election/
	$(GO) run ./test/bench/burst -services $(BENCH_SERVICES)
	$(GO) run ./test/bench/failover -runs $(BENCH_FAILOVER_RUNS)
	$(GO) run ./test/bench/bgpscale -services $(BENCH_SERVICES) -runs 3
	$(GO) run ./test/bench/bgpscale -services $(BENCH_SERVICES) -runs 1 -router frr
	$(GO) run ./test/bench/bgpwithdraw -runs $(BENCH_BGPWITHDRAW_RUNS)
	$(GO) run ./test/bench/manynodes -nodes $(BENCH_MANYNODES_NODES) -services $(BENCH_MANYNODES_SERVICES) -runs $(BENCH_MANYNODES_RUNS)
	$(GO) run ./test/bench/faults
	$(GO) run ./test/bench/realnodes

.PHONY: demo
demo: tools build ## the user's scenario end to end in a local lab (needs root)
	$(GO) run ./hack/demo

.PHONY: clean
clean: ## remove build output (keeps the tools)
	rm -f $(BIN)/ironlb $(BIN)/ironlb-controller $(BIN)/ironlb-speaker $(BIN)/ironlbctl $(BIN)/kubectl-ironlb
