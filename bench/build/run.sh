#!/bin/bash
# bench/build/run.sh: the same small Dockerfile (FROM busybox, two RUN, COPY,
# ENV, WORKDIR, CMD) built cold (--no-cache, base image present) and fully
# cached, by berth, by a private dockerd (Debian docker.io 20.10) with the
# classic builder and with BuildKit, and by podman build (buildah inside),
# side by side with hyperfine, and the ratios.
#
# Usage: sudo bench/build/run.sh [runs]   (needs hyperfine, python3, busybox-static,
#        docker.io (dockerd + /usr/bin/docker 20.10), the docker 28 CLI at
#        /usr/local/bin/docker, podman, runc)
#
# Nothing leaves loopback: busybox comes from the test seed, is pushed to a
# `berth registry serve` on 127.0.0.1 and loaded into docker's and podman's
# private stores; dockerd and podman use that registry as their docker.io
# mirror. RUN steps have no network (berth: a private netns with lo;
# docker and podman: --network none). Every store is below one private
# directory, every process started is stopped by its PID.
set -euo pipefail
runs=${1:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
docker28=/usr/local/bin/docker
docker20=/usr/bin/docker
for tool in hyperfine python3 "$docker28" "$docker20" /usr/sbin/dockerd podman runc; do
	command -v "$tool" >/dev/null || { echo "install $tool" >&2; exit 1; }
done
work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
bridge=bbbld$$ # berth's own bridge and nftables table (berth_$bridge)
dsock=/run/berth-bench-build-$$.sock
daemon= registry= dockerd=
cleanup() {
	set +e
	[ -n "$dockerd" ] && { kill "$dockerd"; wait "$dockerd"; }
	[ -n "$daemon" ] && { kill "$daemon"; wait "$daemon"; }
	[ -f "$work/exec/supervisor.pid" ] && kill "$(cat "$work/exec/supervisor.pid")"
	[ -n "$registry" ] && { kill "$registry"; wait "$registry"; }
	sleep 0.5
	ip link del "$bridge" 2>/dev/null
	nft delete table ip "berth_$bridge" 2>/dev/null
	grep -F "$work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l
	rm -rf "$work" "$dsock"
} 2>/dev/null
trap cleanup EXIT

# --- berth: daemon with the seeded busybox, and a loopback registry ---
CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth" ./cmd/berth
go -C "$repo" run ./bench/cli/seed "$work/root" busybox:latest
echo "{\"bridge\": \"$bridge\", \"ip-forward\": false}" >"$work/daemon.json"
BERTH_REGISTRY_LOOPBACK_ONLY=1 "$work/berth" daemon --root "$work/root" --exec-root "$work/exec" \
	--host "unix://$work/berth.sock" --config "$work/daemon.json" >"$work/daemon.log" 2>&1 &
daemon=$!
export BERTH_HOST="unix://$work/berth.sock"
for _ in $(seq 200); do "$work/berth" version >/dev/null 2>&1 && break; sleep 0.05; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/berth" registry serve --addr "127.0.0.1:$port" --root "$work/registry" --metrics=false >"$work/registry.log" 2>&1 &
registry=$!
for _ in $(seq 200); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break; sleep 0.05; done
"$work/berth" tag busybox:latest "127.0.0.1:$port/library/busybox:latest"
"$work/berth" push -q "127.0.0.1:$port/library/busybox:latest" >/dev/null
"$work/berth" save -o "$work/busybox.tar" busybox:latest

# --- a private dockerd: no bridge, no iptables, the loopback mirror ---
mkdir -p "$work/docker/cli"
cat >"$work/docker/daemon.json" <<EOF
{"bridge": "none", "iptables": false, "ip-forward": false, "ip-masq": false,
 "registry-mirrors": ["http://127.0.0.1:$port"], "insecure-registries": ["127.0.0.1:$port"],
 "storage-driver": "overlay2", "exec-opts": ["native.cgroupdriver=cgroupfs"], "log-level": "warn"}
EOF
/usr/sbin/dockerd --config-file "$work/docker/daemon.json" --data-root "$work/docker/data" \
	--exec-root "$work/docker/exec" --pidfile "$work/docker/dockerd.pid" -H "unix://$dsock" \
	>"$work/docker/dockerd.log" 2>&1 &
dockerd=$!
denv=(env "DOCKER_HOST=unix://$dsock" "DOCKER_CONFIG=$work/docker/cli")
for _ in $(seq 600); do "${denv[@]}" "$docker20" version >/dev/null 2>&1 && break; sleep 0.1; done
"${denv[@]}" "$docker20" load -q -i "$work/busybox.tar" >/dev/null

# --- podman: private storage and configuration, runc (crun 1.8 refuses this host's hybrid cgroups) ---
mkdir -p "$work/podman"
cat >"$work/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
cat >"$work/podman/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:$port"
insecure = true
EOF
export CONTAINERS_CONF="$work/podman/containers.conf" CONTAINERS_REGISTRIES_CONF="$work/podman/registries.conf"
podman_args=(--root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay
	--tmpdir "$work/podman/tmp" --network-config-dir "$work/podman/net")
podman "${podman_args[@]}" load -q -i "$work/busybox.tar" >/dev/null
podman "${podman_args[@]}" tag localhost/busybox:latest docker.io/library/busybox:latest 2>/dev/null || true

# --- the Dockerfile ---
ctx="$work/ctx"
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
RUN echo one > /one
RUN echo two > /two
COPY app.txt /app/app.txt
ENV APP=demo
WORKDIR /app
CMD ["cat", "/app/app.txt"]
EOF
echo hello >"$ctx/app.txt"
cd "$ctx"

b="$work/berth build -q"
dc="env DOCKER_HOST=unix://$dsock DOCKER_CONFIG=$work/docker/cli DOCKER_BUILDKIT=0 $docker28 build -q --network none"
dk="env DOCKER_HOST=unix://$dsock DOCKER_CONFIG=$work/docker/cli DOCKER_BUILDKIT=1 $docker20 build -q --network none"
pb="podman ${podman_args[*]} build -q --network none --pull=never"
# One of each first: the cached runs find their cache.
for c in "$b" "$dc" "$dk" "$pb"; do $c -t bench:1 . >/dev/null; done
# Sanity: each tool's image runs and prints the file.
[ "$("$work/berth" run --rm bench:1)" = hello ] || { echo "berth's image is wrong" >&2; exit 1; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/cold.json" \
	-n berth "$b --no-cache -t bench:1 ." -n "docker classic" "$dc --no-cache -t bench:1 ." \
	-n "docker buildkit" "$dk --no-cache -t bench:1 ." -n "podman build" "$pb --no-cache -t bench:1 ." >&2
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/cached.json" \
	-n berth "$b -t bench:1 ." -n "docker classic" "$dc -t bench:1 ." \
	-n "docker buildkit" "$dk -t bench:1 ." -n "podman build" "$pb -t bench:1 ." >&2
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$work/cold.json" "$work/cached.json" <<'PY'
import json, sys
cold = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
cached = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}
print("| builder | cold (median) | cached (median) | berth/peer cold | berth/peer cached |")
print("|---|---|---|---|---|")
bc, bk = cold["berth"]["median"], cached["berth"]["median"]
for name in cold:
    c, k = cold[name], cached[name]
    print(f"| {name} | {c['median']*1000:.0f} ms ± {c['stddev']*1000:.0f} | {k['median']*1000:.1f} ms ± {k['stddev']*1000:.1f} "
          f"| {bc/c['median']:.2f} | {bk/k['median']:.2f} |")
PY
