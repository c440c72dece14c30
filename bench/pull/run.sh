#!/bin/sh
# Cold pull benchmark: berth vs a private dockerd (Debian docker.io) vs
# podman, alternating in one run, plus download-only and one-core gunzip of
# the same blobs, from Debian's docker-registry on loopback. The image is
# built once and cached in $CACHE (default /var/tmp/berth-bench-pull); every
# store goes below $CACHE too, so all tools write to the same filesystem.
#
#   bench/pull/run.sh [-runs N] [-peers docker,podman] [-wipe fresh|delete]
#                     [-settle 2s] [-v] [-cpuprofile FILE] [-berth daemon|inproc]
#
# berth pulls with `berth pull -q` against a private `berth daemon` (own root,
# socket, bridge and nftables table), as docker pulls through dockerd;
# -berth inproc drives the packages inside the benchmark process instead.
#
# Run as root. Wait for a quiet machine (load1 < 0.5): the measurement is
# CPU-bound. On this VM's unjournalled ext4, creating many files right after
# deleting many is slow for minutes (the inode allocator skips recently
# freed inodes): -wipe fresh (the default) gives each run new stores and
# deletes them at the end; -wipe delete empties them between runs the
# tools' own way (docker rmi + image prune, podman rmi -a).
set -eu
cd "$(dirname "$0")/../.."
CACHE=${CACHE:-/var/tmp/berth-bench-pull}
missing=
for p in docker-registry:/usr/bin/docker-registry docker.io:/usr/sbin/dockerd podman:/usr/bin/podman; do
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
links_before=$(ip -o link | awk -F': ' '{print $2}' | sort)
go build -o "${TMPDIR:-/tmp}/berth-bench-pull" ./bench/pull
CGO_ENABLED=0 go build -o "${TMPDIR:-/tmp}/berth-bench-pull-berth" ./cmd/berth
rc=0
"${TMPDIR:-/tmp}/berth-bench-pull" -cache "$CACHE" -berth-bin "${TMPDIR:-/tmp}/berth-bench-pull-berth" "$@" || rc=$?
# The private dockerd runs with "bridge": "none" and "iptables": false, and
# podman only pulls: neither should leave a link behind. Say so if one did.
links_after=$(ip -o link | awk -F': ' '{print $2}' | sort)
if [ "$links_before" != "$links_after" ]; then
	echo "warning: network links changed during the run:" >&2
	printf '%s\n' "$links_after" | grep -vxF "$links_before" >&2 || true
fi
exit $rc
