package cli_test

import (
	"os"
	"strings"
	"testing"
)

// TestRunLimitAndNamespaceFlags: docker's limit, sysctl and namespace flags
// of `run` reach the container the same way through berth's CLI and
// docker's, and their bad values fail with docker's messages.
func TestRunLimitAndNamespaceFlags(t *testing.T) {
	d := startDaemon(t)
	hostPidNS, _ := os.Readlink("/proc/self/ns/pid")
	hostIpcNS, _ := os.Readlink("/proc/self/ns/ipc")
	hostName, _ := os.Hostname()
	script := strings.Join([]string{
		"ulimit -n", "ulimit -Hn", "cat /proc/sys/kernel/msgmax", "cat /proc/self/oom_score_adj",
		"cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpuset.cpus",
		"cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
		"cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.low",
		"readlink /proc/self/ns/pid", "readlink /proc/self/ns/ipc", "hostname",
	}, "; ")
	args := []string{"run", "--rm", "--ulimit", "nofile=512:1024", "--sysctl", "kernel.msgmax=4242",
		"--oom-score-adj", "500", "--cpuset-cpus", "0", "--cpu-period", "100000", "--cpu-quota", "50000",
		"--memory-reservation", "32m", "--pid", "host", "--ipc", "host", "--uts", "host",
		testImage, "sh", "-c", script}
	// --sysctl of an ipc sysctl with --ipc host is refused: drop the pair.
	withoutSysctl := append([]string(nil), args[:4]...)
	withoutSysctl = append(withoutSysctl, args[6:]...)
	out := d.must(withoutSysctl...)
	want := []string{"512", "1024", "", "500", "0", "50000", "33554432", hostPidNS, hostIpcNS, hostName}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("berth run: %q", out)
	}
	for i, w := range want {
		if w != "" && lines[i] != w {
			t.Errorf("line %d = %q, want %q (all: %q)", i, lines[i], w, out)
		}
	}
	if r := d.docker(withoutSysctl...); r.code != 0 || r.out != out {
		t.Errorf("docker run gave %q (exit %d, %s), berth %q", r.out, r.code, r.err, out)
	}

	// A namespaced sysctl in the container's own ipc namespace.
	if o := d.must("run", "--rm", "--sysctl", "kernel.msgmax=4242", testImage, "cat", "/proc/sys/kernel/msgmax"); o != "4242\n" {
		t.Errorf("--sysctl: %q", o)
	}

	// --device maps a host node under another name; the cgroup lets it be used.
	devScript := "ls -l /dev/z2 | cut -c1; dd if=/dev/z2 bs=1 count=1 2>/dev/null | wc -c"
	if o := d.must("run", "--rm", "--device", "/dev/zero:/dev/z2", testImage, "sh", "-c", devScript); o != "c\n1\n" {
		t.Errorf("--device: %q", o)
	}
	if r := d.docker("run", "--rm", "--device", "/dev/zero:/dev/z2", testImage, "sh", "-c", devScript); r.out != "c\n1\n" {
		t.Errorf("docker run --device: %q %s", r.out, r.err)
	}

	// Health check and log options land in the configuration.
	d.must("create", "--name", "hc", "--health-cmd", "true", "--health-interval", "5s", "--health-retries", "7",
		"--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--stop-timeout", "3", testImage, "true")
	got := d.must("inspect", "-f", "{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Retries}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{.Config.StopTimeout}}", "hc")
	// Templates run on the API type first, as docker's: a duration prints as one.
	if got != `["CMD-SHELL","true"] 5s 7 1m 3`+"\n" {
		t.Errorf("inspect: %q", got)
	}

	runErrors(t, d, []runError{
		{[]string{"--ulimit", "bogus=1:2"}, "invalid ulimit type: bogus"},
		{[]string{"--ulimit", "nofile=20:10"}, "ulimit soft limit must be less than or equal to hard limit"},
		{[]string{"--sysctl", "vm.swappiness=1"}, "is not in a separate kernel namespace"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-retries", "-1"}, "--health-retries cannot be negative"},
		{[]string{"--uts", "host", "--hostname", "x"}, "conflicting options: hostname and the UTS mode"},
		{[]string{"--device", "/nonexistent"}, "error gathering device information while adding custom device \"/nonexistent\""},
		{[]string{"--device-cgroup-rule", "x 1:2 r"}, "invalid device cgroup format 'x 1:2 r'"},
	})
	if n := strings.TrimSpace(d.must("ps", "-aq", "--filter", "status=created")); strings.Count(n, "\n") > 0 || n == "" {
		t.Errorf("bad runs left containers behind: %q", n)
	}
}

// TestRunMoreFlags: --cidfile, --label-file, --annotation, --cgroup-parent,
// --cgroupns, -a and the block I/O throttles, and the flags berth refuses
// (another user namespace, storage options, GPUs) with docker's words.
func TestRunMoreFlags(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	cid := dir + "/cid"
	labels := dir + "/labels"
	if err := os.WriteFile(labels, []byte("# comment\nteam=a\nrole=db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostCgroupNS, _ := os.Readlink("/proc/self/ns/cgroup")
	out := d.must("run", "--cidfile", cid, "--name", "more", "--label-file", labels, "--label", "role=web",
		"--annotation", "org.example/a=1", "--cgroupns", "host", "--cgroup-parent", "berth-test-parent",
		testImage, "sh", "-c", "readlink /proc/self/ns/cgroup; grep -c berth-test-parent /proc/self/cgroup")
	t.Cleanup(func() {
		for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "net_cls", "perf_event", "hugetlb", "unified", ""} {
			os.Remove("/sys/fs/cgroup/" + c + "/berth-test-parent")
		}
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != hostCgroupNS || lines[1] == "0" {
		t.Errorf("--cgroupns host / --cgroup-parent: %q (host cgroup ns %s)", out, hostCgroupNS)
	}
	id, _ := os.ReadFile(cid)
	if got := d.must("inspect", "-f", "{{.Id}} {{.Config.Labels.team}} {{.Config.Labels.role}} {{index .HostConfig.Annotations \"org.example/a\"}}", "more"); got != string(id)+" a web 1\n" {
		t.Errorf("inspect: %q (cidfile %q)", got, id)
	}
	if r := d.berth("run", "--cidfile", cid, testImage, "true"); r.code != 125 || !strings.Contains(r.err, "container ID file found") {
		t.Errorf("existing --cidfile: exit %d %q", r.code, r.err)
	}

	// -a stdout: stderr is not attached.
	if o := d.must("run", "--rm", "-a", "stdout", testImage, "sh", "-c", "echo out; echo err >&2"); o != "out\n" {
		t.Errorf("-a stdout: %q", o)
	}

	// Any block device of the host will do for a throttle.
	blk := ""
	if ents, err := os.ReadDir("/sys/block"); err == nil {
		for _, e := range ents {
			if _, err := os.Stat("/dev/" + e.Name()); err == nil {
				blk = "/dev/" + e.Name()
				break
			}
		}
	}
	if blk == "" {
		t.Fatal("no block device on this host to throttle")
	}
	o := d.must("run", "--rm", "--device-read-bps", blk+":1mb", testImage, "sh", "-c",
		"cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device 2>/dev/null || cat /sys/fs/cgroup/io.max")
	if !strings.Contains(o, "1048576") {
		t.Errorf("--device-read-bps %s: %q", blk, o)
	}

	runErrors(t, d, []runError{
		{[]string{"--userns", "remap"}, "invalid userns mode"},
		{[]string{"--storage-opt", "size=1G"}, "--storage-opt is supported only for overlay over xfs"},
		{[]string{"--gpus", "all"}, "could not select device driver"},
		{[]string{"--blkio-weight", "5"}, "range is 10 to 1000"},
		{[]string{"--device-read-bps", "/dev/vda"}, "bad format"},
		{[]string{"-a", "stdout", "-d"}, "conflicting options: cannot specify both --attach and --detach"},
	})
}

// runError is a `run` that must fail with status 125 and msg on stderr.
type runError struct {
	args []string
	msg  string
}

func runErrors(t *testing.T, d *daemon, cases []runError) {
	t.Helper()
	for _, c := range cases {
		r := d.berth(append(append([]string{"run", "--rm"}, c.args...), testImage, "true")...)
		if r.code != 125 || !strings.Contains(r.err, c.msg) {
			t.Errorf("berth run %v: exit %d, stderr %q; want 125 and %q", c.args, r.code, r.err, c.msg)
		}
	}
}
