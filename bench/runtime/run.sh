#!/bin/sh
# bench/runtime/run.sh: `berth runtime run`, `runc run` and `crun run` of the same
# busybox bundle running /bin/true, side by side in one hyperfine invocation,
# without and with a network namespace. Prints medians and berth's ratios.
#
# crun 1.8 refuses this hybrid cgroup host, so everything runs inside a private
# mount namespace with /sys/fs/cgroup/unified unmounted (a pure v1 view; nothing
# changes outside that namespace). berth is also measured on the host's own view.
#
# Usage: sudo bench/runtime/run.sh [runs]   (needs hyperfine, runc, crun, python3)
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

report() { # label json
	python3 - "$1" "$2" <<'PY'
import json, sys
label, path = sys.argv[1:]
r = {x["command"]: x for x in json.load(open(path))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
print(f"{label}: berth {med['berth']:.1f} ms, runc {med['runc']:.1f} ms, crun {med['crun']:.1f} ms"
      f" | berth/crun {med['berth']/med['crun']:.2f}x (target <= 1.5), berth/runc {med['berth']/med['runc']:.2f}x (target <= 0.6)")
PY
}

# All three in a pure cgroup v1 view (crun's requirement).
unshare --mount --propagation private sh -eu <<SH
umount /sys/fs/cgroup/unified
hyperfine -N --warmup 20 --runs $runs --export-json $work/v1-nonet.json \
	-n berth "$work/berth runtime --root $work/state-berth run --bundle $work/nonet bb" \
	-n runc "runc --root $work/state-runc run --bundle $work/nonet rr" \
	-n crun "crun --root $work/state-crun run --bundle $work/nonet cc" >/dev/null
hyperfine -N --warmup 20 --runs $runs --export-json $work/v1-net.json \
	-n berth "$work/berth runtime --root $work/state-berth run --bundle $work/net bb" \
	-n runc "runc --root $work/state-runc run --bundle $work/net rr" \
	-n crun "crun --root $work/state-crun run --bundle $work/net cc" >/dev/null
SH
report "pure v1 view, no netns" "$work/v1-nonet.json"
report "pure v1 view, netns   " "$work/v1-net.json"

# berth and runc on the host's own hybrid view (crun refuses it).
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/hybrid.json" \
	-n berth "$work/berth runtime --root $work/state-berth run --bundle $work/nonet bb" \
	-n runc "runc --root $work/state-runc run --bundle $work/nonet rr" >/dev/null
python3 - "$work/hybrid.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f"hybrid host view, no netns: berth {r['berth']:.1f} ms, runc {r['runc']:.1f} ms | berth/runc {r['berth']/r['runc']:.2f}x")
PY
