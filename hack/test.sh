#!/bin/sh
# test.sh: every test of berth. Needs root (namespaces, mounts, cgroups).
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "tests need root: sudo $0" >&2; exit 1; }
./hack/deps.sh
export CGO_ENABLED=0
# Network safety net: no test may reach a registry outside loopback, even by
# a typo in an image name (internal/distribution refuses before resolving).
export BERTH_REGISTRY_LOOPBACK_ONLY=1
go vet ./...
# arm64 builds too: the runtime's raw-syscall child code must fit the
# linker's nosplit stack limit there, which is tighter than amd64's.
GOARCH=arm64 go build -o /dev/null ./cmd/berth
go test -count=1 -timeout 25m ./...
