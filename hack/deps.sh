#!/bin/sh
# deps.sh: the Debian packages berth uses at run and test time.
#   busybox-static  test images and the demo bundle
#   docker-registry, skopeo  registry interop tests (images issue)
#   tmux            interactive terminal tests
#   iproute2, nftables  networking
set -eu
pkgs="busybox-static docker-registry skopeo tmux iproute2 nftables ca-certificates"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
command -v go >/dev/null || { echo "berth needs Go (https://go.dev/dl/) on PATH" >&2; exit 1; }
