#!/bin/sh
# setup.sh: install what berth needs, build bin/berth and run berth's main job.
# Today that job is running a container from an OCI bundle with `berth runtime`.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (containers need it): sudo $0" >&2; exit 1; }
./hack/deps.sh
CGO_ENABLED=0 go build -trimpath -o bin/berth ./cmd/berth
echo "built bin/berth ($(du -h bin/berth | cut -f1), static)"

demo=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
./bench/lib/busybox-rootfs.sh "$demo/rootfs"
(cd "$demo" && "$OLDPWD/bin/berth" runtime spec)
# A non-interactive process for the demo: no terminal, a greeting.
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"sh", "-c", "echo hello from a berth container: pid $$, host $(hostname), $(id)"/' "$demo/config.json"
./bin/berth runtime --root "$demo/state" run --bundle "$demo" demo
