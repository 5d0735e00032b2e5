# syntax=docker/dockerfile:1
# ironlb's image: the static binaries /ironlb (controller and speaker),
# /ironlb-controller (the controller alone, smaller in memory: see
# cmd/ironlb/controller_only.go) and /ironlbctl on distroless, running as uid 65532 by default. The speaker's
# DaemonSet runs it as root with NET_RAW and NET_ADMIN only (see
# config/speaker/daemonset.yaml).
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
		-o /out/ironlb-controller ./cmd/ironlb

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ironlb /out/ironlb-controller /out/ironlbctl /
USER 65532:65532
ENTRYPOINT ["/ironlb"]
