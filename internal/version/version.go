// Package version holds the version string stamped into ironlb's binaries at
// build time, so every program and log line can say exactly what is running.
package version

// Version is set by the linker: -ldflags "-X github.com/ironlb/ironlb/internal/version.Version=v0.1.0".
// It stays "dev" for plain `go build` and `go test` binaries.
var Version = "dev"
