package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunPID1AndExitCode(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo pid=$$; exit 3")
	out, errOut, code := e.run("exit3")
	if code != 3 {
		t.Fatalf("exit code %d, want 3 (stderr %s)", code, errOut)
	}
	if strings.TrimSpace(out) != "pid=1" {
		t.Fatalf("output %q, want pid=1", out)
	}
	if _, err := os.Stat(filepath.Join(e.root, "exit3")); !os.IsNotExist(err) {
		t.Fatalf("state dir left after run: %v", err)
	}
}

func TestHostnameAndDomainname(t *testing.T) {
	e := newEnv(t, "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
	e.spec.Hostname = "box-one"
	e.spec.Domainname = "example.test"
	out := e.mustRun("host")
	if out != "box-one\nexample.test\n" {
		t.Fatalf("got %q", out)
	}
}

func TestMountTable(t *testing.T) {
	e := newEnv(t, "cat", "/proc/self/mountinfo")
	out := e.mustRun("mounts")
	mounts := map[string]string{} // mount point → "fstype options"
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		pre, post, _ := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		mounts[f[4]] = g[0] + " " + f[5]
	}
	want := map[string]string{
		"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
		"/dev/mqueue": "mqueue", "/sys": "sysfs", "/tmp": "tmpfs",
	}
	for mp, fs := range want {
		got, ok := mounts[mp]
		if !ok || !strings.HasPrefix(got, fs+" ") {
			t.Errorf("mount %s: got %q, want type %s\n%s", mp, got, fs, out)
		}
	}
	if !strings.Contains(mounts["/"], "ro") {
		t.Errorf("root is not read-only: %q", mounts["/"])
	}
	if !strings.Contains(mounts["/sys"], "ro") {
		t.Errorf("/sys is not read-only: %q", mounts["/sys"])
	}
	// readonlyPaths and maskedPaths
	if !strings.Contains(mounts["/proc/sys"], "ro") {
		t.Errorf("/proc/sys not read-only: %q", mounts["/proc/sys"])
	}
	if _, ok := mounts["/proc/keys"]; !ok {
		t.Errorf("/proc/keys not masked")
	}
	for mp := range mounts {
		if strings.HasPrefix(mp, "/work") || strings.HasPrefix(mp, "/home") {
			t.Errorf("host mount %s visible in the container", mp)
		}
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t, "sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1-10; readlink /dev/fd; readlink /dev/ptmx; readlink /dev/stdout; echo x > /dev/null && echo ok")
	out := e.mustRun("devs")
	for _, want := range []string{"crw-rw-rw-", "/proc/self/fd", "pts/ptmx", "/proc/self/fd/1", "ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t, "grep", "^Cap", "/proc/self/status")
	e.spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"},
		Effective:   []string{"CAP_CHOWN", "CAP_KILL"},
		Permitted:   []string{"CAP_CHOWN", "CAP_KILL"},
		Inheritable: []string{"CAP_KILL"},
		Ambient:     []string{"CAP_KILL"},
	}
	out := e.mustRun("caps")
	// CAP_CHOWN=0, CAP_KILL=5, CAP_NET_RAW=13
	want := map[string]uint64{
		"CapInh": 1 << 5, "CapPrm": 1<<0 | 1<<5, "CapEff": 1<<0 | 1<<5,
		"CapBnd": 1<<0 | 1<<5 | 1<<13, "CapAmb": 1 << 5,
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		if w, ok := want[k]; ok && n != w {
			t.Errorf("%s = %x, want %x", k, n, w)
		}
	}
}

func TestUserAndGroups(t *testing.T) {
	e := newEnv(t, "sh", "-c", "id -u; id -g; id -G; umask")
	umask := uint32(0o077)
	e.spec.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 2000, 3000}, Umask: &umask}
	out := e.mustRun("user")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "1000" || lines[1] != "1001" || !strings.Contains(lines[2], "2000") || !strings.Contains(lines[2], "3000") || lines[3] != "0077" {
		t.Fatalf("got %q", out)
	}
}

func TestRlimits(t *testing.T) {
	e := newEnv(t, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c")
	e.spec.Process.Rlimits = []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456},
		{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
	}
	out := e.mustRun("rlimit")
	if out != "123\n456\n0\n" {
		t.Fatalf("got %q", out)
	}
}

func TestEnvCwdAndArgs(t *testing.T) {
	e := newEnv(t, "sh", "-c", `pwd; echo "$FOO"; echo "$0" "$1"`, "zero", "one two")
	e.spec.Process.Env = append(e.spec.Process.Env, "FOO=bar baz")
	e.spec.Process.Cwd = "/etc"
	out := e.mustRun("env")
	if out != "/etc\nbar baz\nzero one two\n" {
		t.Fatalf("got %q", out)
	}
}

func TestNoNewPrivileges(t *testing.T) {
	e := newEnv(t, "grep", "NoNewPrivs", "/proc/self/status")
	out := e.mustRun("nnp")
	if !strings.Contains(out, "1") {
		t.Fatalf("got %q", out)
	}
}

func TestSysctl(t *testing.T) {
	e := newEnv(t, "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax")
	e.spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.msgmax": "4242"}
	out := e.mustRun("sysctl")
	if out != "1\n4242\n" {
		t.Fatalf("got %q", out)
	}
}

func TestNamespacesAreNew(t *testing.T) {
	e := newEnv(t, "sh", "-c", "for n in net uts ipc mnt pid cgroup; do readlink /proc/self/ns/$n; done; ls /sys/class/net")
	out := e.mustRun("ns")
	for _, ns := range []string{"net", "uts", "ipc", "mnt", "pid", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if strings.Contains(out, host+"\n") {
			t.Errorf("container shares the host's %s namespace", ns)
		}
	}
	if !strings.HasSuffix(out, "lo\n") {
		t.Errorf("new network namespace should only have lo: %q", out)
	}
}

func TestJoinNamespaceByPath(t *testing.T) {
	// A sleeping container provides the namespaces a second one joins.
	a := newEnv(t, "sleep", "60")
	a.spec.Hostname = "shared-uts"
	a.writeSpec()
	if _, errOut, code := a.berth("run", "-d", "--bundle", a.bundle, "provider"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	st := a.waitStatus("provider", specs.StateRunning)
	b := newEnv(t, "sh", "-c", "hostname; readlink /proc/self/ns/net")
	b.root = a.root
	b.spec.Hostname = ""
	b.spec.Linux.CgroupsPath += "-joiner"
	for i, ns := range b.spec.Linux.Namespaces {
		switch ns.Type {
		case specs.UTSNamespace:
			b.spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/uts", st.Pid)
		case specs.NetworkNamespace:
			b.spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/net", st.Pid)
		}
	}
	out := b.mustRun("joiner")
	netns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", st.Pid))
	if out != "shared-uts\n"+netns+"\n" {
		t.Fatalf("got %q, want hostname shared-uts and %s", out, netns)
	}
}

func TestUserNamespaceMapping(t *testing.T) {
	e := newEnv(t, "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user")
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	out := e.mustRun("userns")
	f := strings.Fields(out)
	if len(f) < 8 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" || f[6] != "0" {
		t.Fatalf("got %q", out)
	}
	host, _ := os.Readlink("/proc/self/ns/user")
	if f[7] == host {
		t.Fatalf("container shares the host user namespace")
	}
}

func TestJoinUserNamespaceByPath(t *testing.T) {
	a := newEnv(t, "sleep", "60")
	a.spec.Linux.Namespaces = append(a.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	a.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	a.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
	a.writeSpec()
	if _, errOut, code := a.berth("run", "-d", "--bundle", a.bundle, "owner"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	st := a.waitStatus("owner", specs.StateRunning)
	b := newEnv(t, "sh", "-c", "cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user; echo pid=$$")
	b.root = a.root
	b.spec.Linux.CgroupsPath += "-joiner"
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: fmt.Sprintf("/proc/%d/ns/user", st.Pid)})
	out := b.mustRun("joiner")
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", st.Pid))
	f := strings.Fields(out)
	if len(f) < 6 || f[1] != "300000" || f[3] != "0" || f[4] != want || f[5] != "pid=1" {
		t.Fatalf("got %q, want uid_map 0 300000, uid 0, user ns %s, pid 1", out, want)
	}
}
