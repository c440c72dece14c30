#!/bin/sh
# busybox-rootfs.sh DIR: a minimal root filesystem from Debian's busybox-static,
# one hard link per applet (hard links, so masking a path never masks busybox).
set -eu
dir=$1
mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/root"
chmod 1777 "$dir/tmp"
cp /bin/busybox "$dir/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$dir/$(dirname "$applet")"
	ln -f "$dir/bin/busybox" "$dir/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$dir/etc/group"
