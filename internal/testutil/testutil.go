// Package testutil holds helpers shared by berth's tests: root checks and
// self-made busybox root filesystems (no network, no registry).
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test needs root")
	}
}

// RequireBusybox skips the test unless a static busybox is installed.
func RequireBusybox(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skip("test needs busybox-static (apt-get install busybox-static)")
	}
}

// BusyboxRootfs builds a minimal root filesystem at dir: busybox with one hard
// link per applet (hard links, not symlinks, so masking one path never masks
// busybox itself), /etc/passwd and /etc/group, and /tmp with mode 1777.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	RequireBusybox(t)
	if err := MakeBusyboxRootfs(dir); err != nil {
		t.Fatalf("make busybox rootfs: %v", err)
	}
}

// MakeBusyboxRootfs is BusyboxRootfs without a testing.TB, for benchmarks and tools.
func MakeBusyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777|os.ModeSticky); err != nil {
		return err
	}
	bb := filepath.Join(dir, "bin", "busybox")
	if err := copyFile(BusyboxPath, bb, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || rel == "bin/busybox" {
			continue
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(bb, dst); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

// CgroupParents notes which of the given top-level cgroup directories (such
// as "berth", the engine's default parent) exist in each hierarchy under
// /sys/fs/cgroup, and returns a function that removes the ones created
// since, once empty: a test run leaves the cgroup tree as it found it.
func CgroupParents(names ...string) (cleanup func()) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	existed := map[string]bool{}
	for _, h := range hierarchies {
		for _, n := range names {
			p := filepath.Join(h, n)
			if _, err := os.Stat(p); err == nil {
				existed[p] = true
			}
		}
	}
	return func() {
		for _, h := range hierarchies {
			for _, n := range names {
				if p := filepath.Join(h, n); !existed[p] {
					os.Remove(p) // fails, harmlessly, while not empty
				}
			}
		}
	}
}

// RemoveCgroup removes the cgroup directory name (such as "/berth-x")
// with everything below it, deepest first, from every hierarchy under
// /sys/fs/cgroup that this mount namespace shows. The cgroups must be
// empty of processes; a missing one is no error.
func RemoveCgroup(name string) error {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + name)
	if p := "/sys/fs/cgroup" + name; dirExists(p) {
		dirs = append(dirs, p)
	}
	var errs []error
	for _, top := range dirs {
		var tree []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- { // children before parents
			if err := os.Remove(tree[i]); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", tree[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Terminate ends a started process by its PID: SIGTERM, then SIGKILL after
// grace; exited is closed once the process has been waited for.
func Terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}
