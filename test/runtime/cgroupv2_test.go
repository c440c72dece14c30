package runtime_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCgroupV2View runs a container on a pure cgroup v2 host view: a private
// mount namespace where /sys/fs/cgroup is a cgroup2 mount. This host's v2
// hierarchy has no memory/cpu/pids controllers (they are bound to v1), so
// limits cannot be checked here, but the v2 path is: the cgroup is made, the
// init placed in it, a cgroup namespace rooted there and a cgroup2 mount.
func TestCgroupV2View(t *testing.T) {
	e := newEnv(t, "sh", "-c", "grep '^0::' /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //'")
	e.spec.Linux.CgroupsPath = "/berth-test-v2/" + sanitize(t.Name())
	e.writeSpec()
	script := `set -e
umount -R /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
"$0" runtime --root "$1" run --bundle "$2" v2
test -d /sys/fs/cgroup/berth-test-v2/$3 && echo left || echo removed
rmdir /sys/fs/cgroup/berth-test-v2`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, berthBin, e.root, e.bundle, sanitize(t.Name())).CombinedOutput()
	if err != nil {
		t.Fatalf("run on a cgroup2 view: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 || lines[0] != "0::/" || !strings.HasPrefix(lines[1], "cgroup2 ") || lines[2] != "removed" {
		t.Fatalf("got %q; want the container rooted in its own cgroup2, and the cgroup removed after", out)
	}
}
