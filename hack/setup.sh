#!/bin/sh
# setup.sh: install what berth needs, build bin/berth and run berth's main job:
# start the daemon (on temporary dirs), put a busybox image in it, and run a
# container from that image with the berth CLI. Everything it starts is
# stopped and removed at the end.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (containers need it): sudo $0" >&2; exit 1; }
./hack/deps.sh
CGO_ENABLED=0 go build -trimpath -o bin/berth ./cmd/berth
echo "built bin/berth ($(du -h bin/berth | cut -f1), static)"

demo=$(mktemp -d /tmp/berth-demo.XXXXXX)
daemon=
bridge=bdemo$$ # its own bridge (and nftables table berth_$bridge), removed at the end
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
	# The supervisor outlives the daemon on purpose (live restore): stop it too.
	if [ -f "$demo/exec/supervisor.pid" ]; then
		kill "$(cat "$demo/exec/supervisor.pid")" 2>/dev/null || true
		sleep 0.2
	fi
	# The daemon's default bridge and nftables table stay for live restore.
	ip link del "$bridge" 2>/dev/null || true
	nft delete table ip "berth_$bridge" 2>/dev/null || true
	grep -o " $demo[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$demo"
	# The daemon's cgroup parent, if nothing else uses it (rmdir refuses a
	# parent that still has containers).
	for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT

# 1. The OCI runtime alone: a container from a bundle.
./bench/lib/busybox-rootfs.sh "$demo/bundle/rootfs"
(cd "$demo/bundle" && "$repo/bin/berth" runtime spec)
sed -i -e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"sh", "-c", "echo hello from berth runtime: pid $$ in $(hostname)"/' "$demo/bundle/config.json"
./bin/berth runtime --root "$demo/runtime" run --bundle "$demo/bundle" demo

# 2. The daemon, an image, and the CLI.
go run ./bench/cli/seed "$demo/root" busybox:latest
echo "{\"bridge\": \"$bridge\", \"ip-forward\": false}" >"$demo/daemon.json"
./bin/berth daemon --root "$demo/root" --exec-root "$demo/exec" --host "unix://$demo/berth.sock" \
	--config "$demo/daemon.json" >"$demo/daemon.log" 2>&1 &
daemon=$!
export BERTH_HOST="unix://$demo/berth.sock"
for _ in $(seq 50); do ./bin/berth version >/dev/null 2>&1 && break; sleep 0.1; done
./bin/berth images
./bin/berth run --rm busybox sh -c 'echo hello from a berth container: $(id)'
