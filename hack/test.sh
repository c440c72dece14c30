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
# Test packages run in parallel and share the cgroup parents their daemons
# make (/berth, /berth-test): one package's TestMain cannot tell another's
# from the machine's. The suite removes, at the end, those that did not
# exist before it (rmdir: only empty ones go).
made=
for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
	[ -d "$h" ] || continue
	for n in berth berth-test; do
		[ -d "$h/$n" ] || made="$made $h/$n"
	done
done
rc=0
go test -count=1 -timeout 25m ./... || rc=$?
for d in $made; do
	[ -d "$d" ] && rmdir "$d" 2>/dev/null || true
done
exit $rc
