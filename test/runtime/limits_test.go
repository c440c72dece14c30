package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	dockerseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func int64p(v int64) *int64 { return &v }

func TestMemoryLimitOOMKills(t *testing.T) {
	// dd with a 64 MiB block size allocates and fills a 64 MiB buffer.
	e := newEnv(t, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; dd if=/dev/zero of=/dev/null bs=64M count=1; echo rc=$?")
	e.spec.Linux.Resources = &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: int64p(16 << 20), Swap: int64p(16 << 20)},
	}
	out, _, code := e.run("oom")
	if !strings.HasPrefix(out, "16777216\n") {
		t.Fatalf("memory limit not visible in the container: %q", out)
	}
	// The kernel kills dd (the shell reports 137) or the whole container.
	if !strings.Contains(out, "rc=137") && code != 137 {
		t.Fatalf("allocation beyond the limit was not OOM-killed: exit code %d, output %q", code, out)
	}
}

func TestPidsLimit(t *testing.T) {
	e := newEnv(t, "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait; echo all-forked")
	e.spec.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: int64p(4)}}
	out, errOut, _ := e.run("pids")
	if !strings.HasPrefix(out, "4\n") || strings.Contains(out, "all-forked") || !strings.Contains(errOut, "can't fork") {
		t.Fatalf("pids limit not enforced: %q %s", out, errOut)
	}
}

func TestCPULimits(t *testing.T) {
	e := newEnv(t, "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpuset/cpuset.cpus")
	shares, period := uint64(512), uint64(100000)
	e.spec.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Quota: int64p(50000), Period: &period, Cpus: "0"}}
	out := e.mustRun("cpu")
	if out != "512\n50000\n100000\n0\n" {
		t.Fatalf("got %q", out)
	}
}

func TestCgroupRemovedOnDelete(t *testing.T) {
	e := newEnv(t, "true")
	e.mustRun("cgdel")
	for _, sub := range []string{"memory", "pids", "cpu", "freezer"} {
		p := filepath.Join("/sys/fs/cgroup", sub, "berth-test", sanitize(t.Name()))
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the container was deleted", p)
		}
	}
}

func TestSeccompErrno(t *testing.T) {
	e := newEnv(t, "sh", "-c", "mkdir /tmp/a 2>&1; echo rc=$?; touch /tmp/b && echo touched")
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
		},
	}
	out := e.mustRun("seccomp")
	if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "rc=1") || !strings.Contains(out, "touched") {
		t.Fatalf("got %q", out)
	}
}

func TestSeccompDockerDefaultProfile(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo ok; grep Seccomp: /proc/self/status; unshare -n true 2>&1 || echo unshare-refused")
	prof, err := dockerseccomp.GetDefaultProfile(e.spec)
	if err != nil {
		t.Fatal(err)
	}
	e.spec.Linux.Seccomp = prof
	out := e.mustRun("dockerprofile")
	if !strings.HasPrefix(out, "ok\nSeccomp:\t2\n") || !strings.Contains(out, "unshare-refused") {
		t.Fatalf("got %q", out)
	}
}

func TestSeccompWithoutNoNewPrivs(t *testing.T) {
	e := newEnv(t, "sh", "-c", "mkdir /tmp/x 2>&1; grep NoNewPrivs /proc/self/status")
	e.spec.Process.NoNewPrivileges = false
	e.spec.Process.User = specs.User{UID: 1000, GID: 1000}
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}
	out := e.mustRun("seccomp-nnp")
	if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "NoNewPrivs:\t0") {
		t.Fatalf("got %q", out)
	}
}

func TestPidsLimitOfOne(t *testing.T) {
	// The init is a multi-threaded Go program: the limit must only bind
	// the container's process, which here cannot fork at all.
	e := newEnv(t, "sh", "-c", "echo alive; read v < /sys/fs/cgroup/pids/pids.max; echo $v; ls / >/dev/null && echo forked")
	e.spec.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: int64p(1)}}
	out, errOut, _ := e.run("pids1")
	if !strings.HasPrefix(out, "alive\n1\n") || strings.Contains(out, "forked") || !strings.Contains(errOut, "can't fork") {
		t.Fatalf("got %q, %q", out, errOut)
	}
}
