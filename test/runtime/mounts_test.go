package runtime_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBindMounts(t *testing.T) {
	host := t.TempDir()
	os.Chmod(host, 0o755)
	os.WriteFile(filepath.Join(host, "file"), []byte("from-host\n"), 0o644)
	e := newEnv(t, "sh", "-c", "cat /data/file; echo x > /data/new 2>&1 || echo ro-refused; cat /single; echo y > /rw/out && echo rw-ok")
	rw := t.TempDir()
	os.Chmod(rw, 0o777)
	e.spec.Mounts = append(e.spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		specs.Mount{Destination: "/single", Type: "bind", Source: filepath.Join(host, "file"), Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/rw", Source: rw, Options: []string{"bind", "rw"}},
	)
	out := e.mustRun("binds")
	if out != "from-host\nro-refused\nfrom-host\nrw-ok\n" {
		t.Fatalf("got %q", out)
	}
	if data, _ := os.ReadFile(filepath.Join(rw, "out")); string(data) != "y\n" {
		t.Fatalf("write through the rw bind did not reach the host: %q", data)
	}
	if _, err := os.Stat(filepath.Join(host, "new")); err == nil {
		t.Fatal("write through a read-only bind reached the host")
	}
}

func TestMountDestinationSymlinkStaysInside(t *testing.T) {
	// A rootfs whose /evil is a symlink to the host's /tmp-like directory:
	// the mount must land inside the rootfs, never on the host path.
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	os.Chmod(filepath.Dir(rootfs), 0o755)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, sharedRootfs, rootfs)
	target := t.TempDir()
	if err := os.Symlink(target, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", "ls -d /evil/*")
	e.spec.Root.Path = rootfs
	e.spec.Root.Readonly = false
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/evil/mnt", Type: "tmpfs", Source: "tmpfs"})
	e.mustRun("symlink")
	if _, err := os.Stat(filepath.Join(target, "mnt")); err == nil {
		t.Fatalf("a mount destination followed a symlink out of the rootfs to %s", target)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		d := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			return os.MkdirAll(d, info.Mode().Perm())
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			return os.Symlink(l, d)
		default:
			return os.Link(p, d)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	e := newEnv(t, "cat", "/proc/self/oom_score_adj")
	adj := 500
	e.spec.Process.OOMScoreAdj = &adj
	if out := e.mustRun("oomadj"); strings.TrimSpace(out) != "500" {
		t.Fatalf("got %q", out)
	}
}

func TestRootfsPropagationShared(t *testing.T) {
	e := newEnv(t, "sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo")
	e.spec.Linux.RootfsPropagation = "rshared"
	out := e.mustRun("prop")
	if !strings.Contains(out, "shared:") {
		t.Fatalf("root is not shared: %q", out)
	}
}

func TestCgroupNamespaceAfterCreate(t *testing.T) {
	e := newEnv(t, "sleep", "60")
	e.writeSpec()
	if _, errOut, code := e.berth("create", "--bundle", e.bundle, "cgns"); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	st := e.state("cgns")
	host, _ := os.Readlink("/proc/self/ns/cgroup")
	got, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(st.Pid), "ns/cgroup"))
	if got == host || got == "" {
		t.Fatalf("created container is in the host cgroup namespace %s", host)
	}
}

func TestNoMountNamespace(t *testing.T) {
	// Without a mount namespace the container shares the host's: its
	// mounts land under the rootfs in the host's namespace (chroot, not
	// pivot_root), and delete must take every one of them away.
	e := newEnv(t, "sh", "-c", "readlink /proc/self/ns/mnt; ls /bin/busybox; cat /proc/self/mountinfo | grep -c ' /proc '")
	var ns []specs.LinuxNamespace
	for _, n := range e.spec.Linux.Namespaces {
		if n.Type != specs.MountNamespace && n.Type != specs.CgroupNamespace {
			ns = append(ns, n)
		}
	}
	e.spec.Linux.Namespaces = ns
	out := e.mustRun("nomntns")
	host, _ := os.Readlink("/proc/self/ns/mnt")
	if !strings.HasPrefix(out, host+"\n/bin/busybox\n") {
		t.Fatalf("got %q, want the host mount namespace %s and the rootfs as /", out, host)
	}
	// exec into such a container lands in its chroot too.
	e.spec.Process.Args = []string{"sleep", "60"}
	e.writeSpec()
	if _, errOut, code := e.berth("run", "-d", "--bundle", e.bundle, "nomntns2"); code != 0 {
		t.Fatalf("run -d: %s", errOut)
	}
	e.waitStatus("nomntns2", specs.StateRunning)
	if out, errOut, _ := e.berth("exec", "nomntns2", "ls", "/bin/busybox"); out != "/bin/busybox\n" {
		t.Fatalf("exec: %q %s", out, errOut)
	}
	e.berth("delete", "--force", "nomntns2")
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), sharedRootfs) {
		t.Fatalf("mounts under the rootfs left on the host after delete:\n%s", mi)
	}
}
