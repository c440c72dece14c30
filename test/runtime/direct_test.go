package runtime_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestDirectInitParity runs one container with the direct init (a raw fork
// of berth, the default) and with the exec'd init (BERTH_DIRECT_INIT=0, the
// path terminals, user namespaces and container hooks take): what the
// process sees must be the same.
func TestDirectInitParity(t *testing.T) {
	script := strings.Join([]string{
		"id", "hostname", "pwd", "umask", "ulimit -n", "ulimit -s",
		"grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status",
		"cat /proc/sys/kernel/msgmax",
		// Mount points, options and types; not the ids, which differ.
		"awk '{print $5, $6, $(NF-2), $(NF-1), $(NF)}' /proc/self/mountinfo",
		"ls -l /dev | awk '{print $1, $5, $6, $NF}'",
		"ls /sys/fs/cgroup", "cat /proc/1/comm", "ls /proc/self/fd",
	}, "; ")
	var outs [2]string
	for i, direct := range []bool{true, false} {
		e := newEnv(t, "sh", "-c", script)
		if !direct {
			e.environ = []string{"BERTH_DIRECT_INIT=0"}
		}
		e.spec.Hostname = "parity"
		e.spec.Process.Cwd = "/tmp"
		e.spec.Process.User = specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{10, 20}}
		umask := uint32(0o027)
		e.spec.Process.User.Umask = &umask
		e.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}}
		e.spec.Process.Capabilities.Ambient = []string{"CAP_NET_BIND_SERVICE"}
		e.spec.Process.Capabilities.Inheritable = []string{"CAP_NET_BIND_SERVICE"}
		e.spec.Linux.Sysctl = map[string]string{"kernel.msgmax": "4242"}
		// Without no_new_privs the filter is loaded before the last steps
		// of the init, which it must not break (close_range refused).
		e.spec.Process.NoNewPrivileges = false
		e.spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"chroot", "close_range"}, Action: specs.ActErrno}}}
		e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: t.TempDir(), Options: []string{"rbind", "ro"}})
		outs[i] = e.mustRun("parity")
	}
	if outs[0] != outs[1] {
		t.Fatalf("the direct init differs from the exec'd one:\ndirect:\n%s\nexec'd:\n%s", outs[0], outs[1])
	}
	if !strings.Contains(outs[0], "uid=65534") || !strings.Contains(outs[0], "4242") || !strings.Contains(outs[0], "CapAmb:\t0000000000000400") {
		t.Fatalf("the settings did not apply:\n%s", outs[0])
	}
}

// TestSignalsStartDefault: a container's process starts with every signal
// at its default action, even when berth's caller ignores some (the
// engine's supervisor ignores SIGHUP and SIGPIPE), on both init paths.
func TestSignalsStartDefault(t *testing.T) {
	for _, direct := range []bool{true, false} {
		e := newEnv(t, "grep", "-E", "^Sig(Ign|Cgt|Blk)", "/proc/self/status")
		e.writeSpec()
		cmd := exec.Command("sh", "-c", `trap "" HUP PIPE; exec "$@"`, "sh", berthBin, "runtime", "--root", e.root, "run", "--bundle", e.bundle, "sig")
		if !direct {
			cmd.Env = append(os.Environ(), "BERTH_DIRECT_INIT=0")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("direct=%v: %v: %s", direct, err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasSuffix(l, "0000000000000000") {
				t.Errorf("direct=%v: %s", direct, l)
			}
		}
	}
}

// TestExecParity: `runtime exec` as a direct child (the default) and
// through berth's exec stage see the same process.
func TestExecParity(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.writeSpec()
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "ex"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	if _, errOut, code := e.berth("start", "ex"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	// /proc/self/cgroup: inside the container's cgroup namespace, a
	// process in the container's cgroups sees "/" in every hierarchy.
	script := "id; pwd; echo $FOO; umask; grep -E '^(Cap|NoNewPrivs|Seccomp:|SigIgn)' /proc/self/status; ls /proc/self/fd; cat /proc/self/comm; cat /proc/self/cgroup"
	var outs [2]string
	for i, env := range [][]string{nil, {"BERTH_DIRECT_INIT=0"}} {
		e.environ = env
		out, errOut, code := e.berth("exec", "--cwd", "/tmp", "--env", "FOO=bar", "ex", "sh", "-c", script)
		if code != 0 {
			t.Fatalf("exec (%v): exit %d: %s", env, code, errOut)
		}
		outs[i] = out
	}
	if outs[0] != outs[1] {
		t.Fatalf("direct exec differs:\ndirect:\n%s\nexec'd:\n%s", outs[0], outs[1])
	}
	if !strings.Contains(outs[0], "/tmp\nbar\n") {
		t.Fatalf("exec options did not apply:\n%s", outs[0])
	}
	for _, line := range strings.Split(outs[0], "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && strings.HasPrefix(parts[2], "/") && parts[2] != "/" {
			t.Fatalf("exec'd process outside the container's cgroup (%s):\n%s", line, outs[0])
		}
	}
	e.environ = nil
	if _, errOut, code := e.berth("exec", "ex", "nosuchcmd"); code == 0 || !strings.Contains(errOut, "executable file not found") {
		t.Fatalf("exec of a missing command: exit %d %q", code, errOut)
	}
}

// TestInitJoinsEveryCgroup: the init is in the container's cgroup in every
// hierarchy, on both init paths. The direct init gets there without a pid
// written to cgroup.procs (it moves itself through the v1 tasks files and
// is born in its cgroup2 directory), the exec'd one by pid.
func TestInitJoinsEveryCgroup(t *testing.T) {
	for _, direct := range []bool{true, false} {
		e := newEnv(t, "cat", "/proc/self/cgroup")
		if !direct {
			e.environ = []string{"BERTH_DIRECT_INIT=0"}
		}
		// Without a cgroup namespace the paths are the host's.
		var nss []specs.LinuxNamespace
		for _, ns := range e.spec.Linux.Namespaces {
			if ns.Type != specs.CgroupNamespace {
				nss = append(nss, ns)
			}
		}
		e.spec.Linux.Namespaces = nss
		out := e.mustRun("cgjoin")
		want := e.spec.Linux.CgroupsPath
		joined := 0
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				t.Fatalf("direct=%v: bad /proc/self/cgroup line %q", direct, line)
			}
			switch parts[1] {
			case "hugetlb", "net_cls,net_prio", "net_cls", "net_prio", "rdma", "misc":
				continue // joined only when the container sets a limit there
			}
			if parts[2] != want {
				t.Errorf("direct=%v: hierarchy %q: init is in %q, want %q", direct, parts[1], parts[2], want)
			}
			joined++
		}
		if joined == 0 {
			t.Fatalf("direct=%v: no hierarchy in %q", direct, out)
		}
	}
}

// TestProcessAttributes: process.ioPriority, process.scheduler and
// linux.personality (runtime-spec 1.1/1.2) reach the container's process
// on both init paths and in an exec; a bad value fails create.
func TestProcessAttributes(t *testing.T) {
	script := "cat /proc/self/personality; awk '/^policy/ {print \"policy=\" $3}' /proc/self/sched; awk '{print \"nice=\" $19}' /proc/self/stat; ionice -p $$"
	want := func(out string) bool {
		return strings.Contains(out, "00000008\n") && strings.Contains(out, "policy=3\n") &&
			strings.Contains(out, "nice=5\n") && strings.Contains(out, "best-effort: prio 6")
	}
	set := func(e *env) {
		e.spec.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5}
		e.spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
		e.spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	}
	for _, direct := range []bool{true, false} {
		e := newEnv(t, "sh", "-c", script)
		if !direct {
			e.environ = []string{"BERTH_DIRECT_INIT=0"}
		}
		set(e)
		if out := e.mustRun("attrs"); !want(out) {
			t.Fatalf("direct=%v: attributes not applied:\n%s", direct, out)
		}
	}
	e := newEnv(t, "sleep", "60")
	e.spec.Linux.CgroupsPath += "-exec" // its own: the runs above remove theirs
	set(e)
	e.writeSpec()
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "at"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	if _, errOut, code := e.berth("start", "at"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	for _, env := range [][]string{nil, {"BERTH_DIRECT_INIT=0"}} {
		e.environ = env
		out, errOut, code := e.berth("exec", "at", "sh", "-c", script)
		if code != 0 || !want(out) {
			t.Fatalf("exec (%v): exit %d %s\n%s", env, code, errOut, out)
		}
	}
	bad := newEnv(t, "true")
	bad.spec.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_NOPE", Priority: 1}
	if _, errOut, code := bad.run("badattr"); code == 0 || !strings.Contains(errOut, "IOPRIO_CLASS_NOPE") {
		t.Fatalf("a bad ioPriority class: exit %d %q", code, errOut)
	}
}
