# syntax=docker/dockerfile:1
# ironlb's image: the static binaries /ironlb (controller and speaker),
# /ironlb-controller and /ironlb-speaker (each daemon alone, smaller in
# memory: see cmd/ironlb/controller_only.go and speaker_only.go) and
# /ironlbctl, running as uid 65532 by default. The speaker's DaemonSet runs
# it as root with NET_RAW and NET_ADMIN only (see
# config/speaker/daemonset.yaml).
#
# `make image` builds the same image without a Docker daemon or a base image
# (hack/image, an OCI archive of both architectures), and `make release`
# pushes it; hack/image's test fails when this file's final stage and that
# image differ in files, user, entrypoint or any other setting. With Docker:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     -t ghcr.io/ironlb/ironlb:$(git describe --tags --always --dirty) --push .

# The builder runs on the build machine's platform and cross-compiles
# (CGO_ENABLED=0), so a multi-arch build needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	for cmd in ironlb ironlbctl; do \
		GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
			-ldflags "-s -w -X github.com/ironlb/ironlb/internal/version.Version=${VERSION}" \
			-o /out/$cmd ./cmd/$cmd || exit 1; \
	done; \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags ironlb_controller \
		-ldflags "-s -w -X github.com/ironlb/ironlb/internal/version.Version=${VERSION}" \
		-o /out/ironlb-controller ./cmd/ironlb; \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags ironlb_speaker \
		-ldflags "-s -w -X github.com/ironlb/ironlb/internal/version.Version=${VERSION}" \
		-o /out/ironlb-speaker ./cmd/ironlb

# FROM scratch rather than distroless/static, so that `make image` can build
# the same image with no base image to pull: the binaries are static and need
# nothing of distroless but the nonroot user's /etc/passwd and /etc/group
# entries (hack/image/rootfs). They need no CA certificates (the API server's
# CA comes with the ServiceAccount token; BGP and gossip use no TLS), no time
# zones, and no /tmp (both pods run with a read-only root file system).
FROM scratch
COPY hack/image/rootfs/ /
COPY --from=build /out/ironlb /out/ironlb-controller /out/ironlb-speaker /out/ironlbctl /
USER 65532:65532
ENTRYPOINT ["/ironlb"]
