#!/bin/sh
# bench/network/run.sh: networking of berth's daemon side by side with a
# private dockerd (Debian docker.io) on the same busybox image: start time
# of `run --rm busybox true` with the default bridge and with --network
# none (the difference is networking's share of a start), and throughput
# through a published port on 127.0.0.1. See bench/network/main.go for the
# method; docs/benchmarks.md ("Network") for results.
#
#   sudo bench/network/run.sh [-runs 30] [-rounds 5] [-mib 512]
#
# The peer runs privately (internal/testutil/dockerd: own data root,
# sockets, bridge, subnet, "iptables": false): nothing touches a system
# docker, no registry is contacted (the image goes over by save/load).
# berth's daemon gets its own bridge and nftables table, removed at the end.
# Wait for a quiet machine (load1 < 0.5) first.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
missing=
for p in docker.io:/usr/sbin/dockerd containerd:/usr/bin/containerd runc:/usr/sbin/runc \
	hyperfine:/usr/bin/hyperfine busybox-static:/bin/busybox nftables:/usr/sbin/nft; do
	[ -x "${p#*:}" ] || missing="$missing ${p%%:*}"
done
if [ -n "$missing" ]; then
	# policy-rc.d answering 101 keeps dpkg from starting the system dockerd.
	made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
[ -x /usr/local/bin/docker ] || { echo "needs the docker CLI at /usr/local/bin/docker" >&2; exit 1; }

work=$(mktemp -d /var/tmp/berth-bench-network.XXXXXX)
cleanup() {
	grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth-bin" ./cmd/berth
CGO_ENABLED=0 go -C "$repo" build -o "$work/driver" ./bench/network
go -C "$repo" run ./bench/cli/seed "$work/berth-root" busybox:latest >/dev/null
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); berth $(git -C "$repo" rev-parse --short HEAD); $(dockerd --version)"
"$work/driver" -berth "$work/berth-bin" -work "$work" -seed "$work/berth-root" "$@"
