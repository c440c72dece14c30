#!/bin/sh
# bench/engine/run.sh: berth's daemon side by side with a private dockerd
# (Debian docker.io) and podman in one run, on the same busybox image from
# one loopback registry: `run --rm busybox true` latency, 50 containers run
# and removed sequentially and 4-way parallel, daemon idle memory, memory
# per running container. Prints each figure and berth's ratio.
#
#   sudo bench/engine/run.sh [-runs 30] [-rounds 5] [-n 50] [-par 4] [-mem 20]
#                            [-peers docker,podman] [-podman-runtime crun|runc]
#                            [-podman-network none]
#
# The peers run privately (internal/testutil/dockerd; podman with its own
# containers.conf, storage and registries.conf): nothing touches a system
# docker or podman, and no registry outside loopback is reachable to them.
# crun (podman's runtime) refuses this host's hybrid cgroup layout, so the
# driver runs in a private mount namespace with /sys/fs/cgroup/unified
# unmounted; berth's daemon and dockerd are started in the host's mount
# namespace (nsenter), so only podman sees that view. Wait for a quiet
# machine (load1 < 0.5) first.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
missing=
for p in docker.io:/usr/sbin/dockerd containerd:/usr/bin/containerd runc:/usr/sbin/runc podman:/usr/bin/podman \
	crun:/usr/bin/crun conmon:/usr/bin/conmon hyperfine:/usr/bin/hyperfine busybox-static:/bin/busybox; do
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
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; }
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
[ -x /usr/local/bin/docker ] || { echo "needs the docker CLI at /usr/local/bin/docker" >&2; exit 1; }

work=$(mktemp -d /var/tmp/berth-bench-engine.XXXXXX)
cleanup() {
	# The driver removes what it started; this catches what a crash left:
	# mounts below the work directory (host namespace), then the files.
	grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done
	# The peers' cgroup parents, as the host's namespace shows them (the
	# driver's view lacks the unified hierarchy); deepest first.
	if [ -f "$work/cgroups" ]; then
		while read -r cg; do
			for d in /sys/fs/cgroup/*"$cg" /sys/fs/cgroup"$cg"; do
				[ -d "$d" ] && { find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
			done
		done <"$work/cgroups"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth-bin" ./cmd/berth
CGO_ENABLED=0 go -C "$repo" build -o "$work/driver" ./bench/engine
go -C "$repo" run ./bench/cli/seed "$work/berth-root" busybox:latest

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); berth $(git -C "$repo" rev-parse --short HEAD); $(dockerd --version); $(podman --version)"
rc=0
HOSTNS=/proc/$$/ns/mnt unshare --mount --propagation private sh -c '
	umount /sys/fs/cgroup/unified 2>/dev/null || true
	driver=$0 berth=$1 work=$2 seed=$3
	shift 3
	exec "$driver" -berth "$berth" -work "$work" -seed "$seed" -hostns "$HOSTNS" "$@"
' "$work/driver" "$work/berth-bin" "$work" "$work/berth-root" "$@" || rc=$?
# The private dockerd's bridge is named bd-<random>; say so if one is left.
if ip -o link | grep -q ': bd-'; then
	echo "warning: a bd-* bridge is left (possibly from another run):" >&2
	ip -o link | grep ': bd-' >&2
fi
exit $rc
