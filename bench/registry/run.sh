#!/bin/bash
# bench/registry/run.sh: push and pull of the same ~100 MB, 4-layer image to
# `berth registry serve` and to Debian's docker-registry (distribution 2.8)
# on loopback, side by side, with skopeo as the client of both.
#
# Each push goes to a freshly started, empty registry (otherwise the client
# finds the blobs and skips them); each pull copies the image from the
# registry into a fresh OCI layout. Runs alternate between the two
# registries so the machine's drift cancels in the ratios. Memory is the
# server's peak RSS (VmHWM) over one push and all its pulls; server CPU is
# user+system time from /proc/PID/stat, steadier than wall time on a shared
# machine because the client (skopeo) dominates the wall time of a pull.
#
# Usage: bench/registry/run.sh [runs]   (needs skopeo and docker-registry:
#        apt-get install skopeo docker-registry)
set -euo pipefail
runs=${1:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
for tool in skopeo docker-registry python3; do
	command -v "$tool" >/dev/null || { echo "install $tool (apt-get install skopeo docker-registry)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/berth-bench-registry.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth" ./cmd/berth
go -C "$repo" run ./bench/registry/genimage "$work/image"
echo "image: $(du -sb "$work/image" | cut -f1) bytes, 4 layers"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# start NAME ROOT PORT: starts a registry, sets $pid, waits until it answers.
start() {
	local name=$1 root=$2 port=$3
	rm -rf "$root"
	mkdir -p "$root"
	case $name in
	berth)
		"$work/berth" registry serve --addr "127.0.0.1:$port" --root "$root" >"$root.log" 2>&1 &
		;;
	distribution)
		cat >"$root.yml" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $root
http:
  addr: 127.0.0.1:$port
YML
		docker-registry serve "$root.yml" >"$root.log" 2>&1 &
		;;
	esac
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && return 0
		sleep 0.05
	done
	echo "$name did not start:" >&2
	cat "$root.log" >&2
	exit 1
}

stop() {
	kill "$1"
	wait "$1" 2>/dev/null || true
}

hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# cpu_s PID: user+system CPU seconds the process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }

declare -A push pull mem pushcpu pullcpu
for r in $(seq "$runs"); do
	for name in berth distribution; do
		port=$(freeport)
		start "$name" "$work/root-$name" "$port"
		dst="docker://127.0.0.1:$port/bench/image:v1"
		t0=$(now)
		skopeo copy -q --dest-tls-verify=false "oci:$work/image:v1" "$dst"
		t1=$(now)
		push[$name]+="$(echo "$t1 - $t0" | bc) "
		c0=$(cpu_s "$pid")
		pushcpu[$name]+="$c0 "
		for _ in 1 2 3; do
			rm -rf "$work/pulled"
			t0=$(now)
			skopeo copy -q --src-tls-verify=false "$dst" "oci:$work/pulled:v1"
			t1=$(now)
			pull[$name]+="$(echo "$t1 - $t0" | bc) "
		done
		pullcpu[$name]+="$(echo "($(cpu_s "$pid") - $c0) / 3" | bc -l) "
		mem[$name]+="$(hwm_kib "$pid") "
		stop "$pid"
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '\n%-14s %8s %8s %14s %14s %14s\n' registry "push s" "pull s" "push CPU s" "pull CPU s" "peak RSS MiB"
for name in berth distribution; do
	p=$(echo "${push[$name]}" | median)
	l=$(echo "${pull[$name]}" | median)
	pc=$(echo "${pushcpu[$name]}" | median)
	lc=$(echo "${pullcpu[$name]}" | median)
	m=$(echo "${mem[$name]}" | median)
	printf '%-14s %8.3f %8.3f %14.3f %14.3f %14.1f\n' "$name" "$p" "$l" "$pc" "$lc" "$(echo "$m / 1024" | bc -l)"
	eval "${name}_push=$p ${name}_pull=$l ${name}_mem=$m ${name}_pc=$pc ${name}_lc=$lc"
done
ratio() { echo "$1 / $2" | bc -l; }
printf '\nberth/distribution: push %.2fx time (%.2fx server CPU), pull %.2fx time (%.2fx server CPU), peak RSS %.2fx\n' \
	"$(ratio "$berth_push" "$distribution_push")" "$(ratio "$berth_pc" "$distribution_pc")" \
	"$(ratio "$berth_pull" "$distribution_pull")" "$(ratio "$berth_lc" "$distribution_lc")" \
	"$(ratio "$berth_mem" "$distribution_mem")"
echo "(medians of $runs pushes and $((runs * 3)) pulls each; skopeo $(skopeo --version | awk '{print $3}'), $(docker-registry --version | awk '{print $3}'))"
