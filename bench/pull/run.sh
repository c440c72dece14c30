#!/bin/sh
# Cold pull benchmark: berth vs download-only vs one-core gunzip of the same
# blobs, from Debian's docker-registry on loopback. The image is built once
# and cached in $CACHE (default /var/tmp/berth-bench-pull).
#
#   bench/pull/run.sh [-runs N] [-v] [-cpuprofile FILE]
#
# Wait for a quiet machine (load1 < 0.5): the measurement is CPU-bound.
# On this VM's unjournalled ext4, creating many files right after deleting
# many is slow for minutes; set CACHE to a fresh filesystem (or tmpfs) to
# measure berth rather than the allocator.
set -eu
cd "$(dirname "$0")/../.."
CACHE=${CACHE:-/var/tmp/berth-bench-pull}
command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)" >&2; exit 1; }
go build -o "${TMPDIR:-/tmp}/berth-bench-pull" ./bench/pull
exec "${TMPDIR:-/tmp}/berth-bench-pull" -cache "$CACHE" "$@"
