#!/bin/sh
# bench/runtime/run.sh: `berth runtime run`, `runc run` and `crun run` of the same
# busybox bundle running /bin/true, side by side in interleaved hyperfine rounds,
# without and with a network namespace. Prints medians and berth's ratios.
#
# crun 1.8 refuses this hybrid cgroup host, so everything runs inside a private
# mount namespace with /sys/fs/cgroup/unified unmounted (a pure v1 view; nothing
# changes outside that namespace). berth is also measured on the host's own view.
#
# Usage: sudo [ROUNDS=5] bench/runtime/run.sh [runs]   (needs hyperfine, runc, crun, python3)
set -eu
runs=${1:-200}
repo=$(cd "$(dirname "$0")/../.." && pwd)
for tool in hyperfine runc crun python3; do
	command -v "$tool" >/dev/null || { echo "install $tool (apt-get install hyperfine runc crun)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/berth-bench-runtime.XXXXXX)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/berth" ./cmd/berth
"$repo/bench/lib/busybox-rootfs.sh" "$work/rootfs"

# One bundle per variant: /bin/true, no terminal, rootfs shared read-only.
mkbundle() { # name netns(yes|no)
	mkdir -p "$work/$1"
	(cd "$work/$1" && runc spec)
	python3 - "$work/$1/config.json" "$work/rootfs" "$2" <<'PY'
import json, sys
path, rootfs, netns = sys.argv[1:]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
if netns == "no":
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"), indent=1)
PY
}
mkbundle nonet no
mkbundle net yes

# Each figure is the median over ROUNDS hyperfine invocations of RUNS/ROUNDS
# runs each: hyperfine times one command's runs back to back, so rounds
# interleave the runtimes and load that changes during the run hits all.
rounds=${ROUNDS:-5}
per=$(( (runs + rounds - 1) / rounds ))
report() { # label json...
	python3 - "$@" <<'PY'
import json, sys, statistics
label, paths = sys.argv[1], sys.argv[2:]
times = {}
for p in paths:
    for x in json.load(open(p))["results"]:
        times.setdefault(x["command"], []).extend(x["times"])
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
n = len(next(iter(times.values())))
if "crun" in med:
    print(f"{label}: berth {med['berth']:.1f} ms, runc {med['runc']:.1f} ms, crun {med['crun']:.1f} ms ({n} runs each)"
          f" | berth/crun {med['berth']/med['crun']:.2f}x (target <= 1.5), berth/runc {med['berth']/med['runc']:.2f}x (target <= 0.6)")
else:
    print(f"{label}: berth {med['berth']:.1f} ms, runc {med['runc']:.1f} ms ({n} runs each) | berth/runc {med['berth']/med['runc']:.2f}x")
PY
}

# All three in a pure cgroup v1 view (crun's requirement).
unshare --mount --propagation private sh -eu <<SH
umount /sys/fs/cgroup/unified
for r in \$(seq $rounds); do
	for v in nonet net; do
		hyperfine -N --warmup 5 --runs $per --export-json $work/v1-\$v-\$r.json \
			-n berth "$work/berth runtime --root $work/state-berth run --bundle $work/\$v bb" \
			-n runc "runc --root $work/state-runc run --bundle $work/\$v rr" \
			-n crun "crun --root $work/state-crun run --bundle $work/\$v cc" >/dev/null
	done
done
SH
report "pure v1 view, no netns" "$work"/v1-nonet-*.json
report "pure v1 view, netns   " "$work"/v1-net-*.json

# berth and runc on the host's own hybrid view (crun refuses it).
for r in $(seq "$rounds"); do
	hyperfine -N --warmup 5 --runs "$per" --export-json "$work/hybrid-$r.json" \
		-n berth "$work/berth runtime --root $work/state-berth run --bundle $work/nonet bb" \
		-n runc "runc --root $work/state-runc run --bundle $work/nonet rr" >/dev/null
done
report "hybrid host view, no netns" "$work"/hybrid-*.json
