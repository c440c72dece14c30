#!/bin/bash
# bench/cli/run.sh: wall time of `berth ps`, `berth images` and
# `berth version` against the docker CLI (/usr/local/bin/docker), both
# talking to the same `berth daemon` on temp dirs, side by side in one
# hyperfine invocation per command so machine drift cancels in the ratio.
# The daemon holds one image and 10 containers (5 running, 5 exited).
#
# Usage: sudo bench/cli/run.sh [runs]   (needs hyperfine, busybox-static, python3)
set -euo pipefail
runs=${1:-50}
repo=$(cd "$(dirname "$0")/../.." && pwd)
docker=${DOCKER:-/usr/local/bin/docker}
for tool in hyperfine python3 "$docker"; do
	command -v "$tool" >/dev/null || { echo "install $tool" >&2; exit 1; }
done
work=$(mktemp -d /tmp/berth-bench-cli.XXXXXX)
daemon=
bridge=bbcli$$ # the daemon's own bridge and nftables table (berth_$bridge)
cleanup() {
	if [ -n "$daemon" ]; then
		ids=$("$work/berth" ps -aq 2>/dev/null || true)
		[ -n "$ids" ] && "$work/berth" rm -f $ids >/dev/null 2>&1 || true
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
		[ -f "$work/exec/supervisor.pid" ] && kill "$(cat "$work/exec/supervisor.pid")" 2>/dev/null || true
	fi
	sleep 0.3
	ip link del "$bridge" 2>/dev/null || true
	nft delete table ip "berth_$bridge" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth" ./cmd/berth
go -C "$repo" run ./bench/cli/seed "$work/root" busybox:latest
echo "{\"bridge\": \"$bridge\", \"ip-forward\": false}" > "$work/daemon.json"
"$work/berth" daemon --root "$work/root" --exec-root "$work/exec" --host "unix://$work/berth.sock" \
	--config "$work/daemon.json" >"$work/daemon.log" 2>&1 &
daemon=$!
export DOCKER_HOST="unix://$work/berth.sock" DOCKER_CONFIG="$work/docker-config"
for _ in $(seq 200); do "$work/berth" version >/dev/null 2>&1 && break; sleep 0.05; done
for i in 1 2 3 4 5; do
	"$work/berth" run -d --name "up$i" -l bench=cli busybox:latest sleep 600 >/dev/null
	"$work/berth" run --name "done$i" busybox:latest true
done

hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/ps.json" -n "berth ps -a" "$work/berth ps -a" -n "docker ps -a" "$docker ps -a" >/dev/null
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/images.json" -n "berth images" "$work/berth images" -n "docker images" "$docker images" >/dev/null
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/version.json" -n "berth version" "$work/berth version" -n "docker version" "$docker version" >/dev/null

echo "| command | berth (median) | docker CLI (median) | berth/docker (target ≤ 1.0) |"
echo "|---|---|---|---|"
for f in ps images version; do
	python3 - "$work/$f.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b, d = r[0], r[1]
print(f"| `{b['command']}` | {b['median']*1000:.1f} ms ± {b['stddev']*1000:.1f} | {d['median']*1000:.1f} ms ± {d['stddev']*1000:.1f} | {b['median']/d['median']:.2f} |")
PY
done
