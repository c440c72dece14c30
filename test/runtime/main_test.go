// Package runtime_test drives `berth runtime` as a separate binary, the way
// runc's callers do: real namespaces, mounts, cgroups and processes.
package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthbin"
)

var (
	berthBin     string // built once per test binary
	sharedRootfs string // read-only busybox rootfs shared by the tests
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("runtime tests need root; skipping")
		return 0
	}
	if _, err := os.Stat(testutil.BusyboxPath); err != nil {
		fmt.Println("runtime tests need busybox-static; skipping")
		return 0
	}
	dir, err := os.MkdirTemp("", "berth-runtime-test-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	os.Chmod(dir, 0o755)
	defer os.RemoveAll(dir)
	bin, err := berthbin.Build()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(filepath.Dir(bin))
	berthBin = bin
	sharedRootfs = filepath.Join(dir, "rootfs")
	if err := testutil.MakeBusyboxRootfs(sharedRootfs); err != nil {
		fmt.Println("make rootfs:", err)
		return 1
	}
	code := m.Run()
	// The tests' cgroups live under one parent per hierarchy; remove it.
	for _, sub := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""} {
		os.Remove(filepath.Join("/sys/fs/cgroup", sub, "berth-test"))
	}
	return code
}

// env is one test's runtime: its own state root and bundle.
type env struct {
	t      *testing.T
	root   string
	bundle string
	spec   *specs.Spec
	// environ is added to berth's environment (BERTH_DIRECT_INIT=0 …).
	environ []string
}

func newEnv(t *testing.T, args ...string) *env {
	t.Helper()
	dir := t.TempDir()
	// The root of a user namespace must be able to reach the bundle.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	e := &env{t: t, root: filepath.Join(dir, "state"), bundle: filepath.Join(dir, "bundle")}
	if err := os.MkdirAll(e.bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	s := runtime.DefaultSpec()
	s.Root.Path = sharedRootfs
	s.Process.Terminal = false
	s.Process.Args = args
	s.Linux.CgroupsPath = "/berth-test/" + sanitize(t.Name())
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	e.spec = s
	t.Cleanup(e.cleanup)
	return e
}

func sanitize(s string) string {
	return strings.NewReplacer("/", "-", " ", "_").Replace(s)
}

func (e *env) writeSpec() {
	e.t.Helper()
	data, err := json.MarshalIndent(e.spec, "", " ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.bundle, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// berth runs `berth runtime --root ROOT args...` and returns stdout, stderr and the exit code.
func (e *env) berth(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(berthBin, append([]string{"runtime", "--root", e.root}, args...)...)
	cmd.Dir = e.bundle
	if len(e.environ) > 0 {
		cmd.Env = append(os.Environ(), e.environ...)
	}
	// Files, not pipes: a created container keeps the stdio it was given,
	// and a pipe would make Wait block until the container exits.
	outF, errF := tempFile(e.t), tempFile(e.t)
	cmd.Stdout, cmd.Stderr = outF, errF
	err := cmd.Run()
	out, errb := readBack(outF), readBack(errF)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("berth %v: %v", args, err)
	}
	return out, errb, code
}

func tempFile(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readBack(f *os.File) string {
	data, _ := os.ReadFile(f.Name())
	return string(data)
}

// run writes the spec and runs the container to completion.
func (e *env) run(id string) (string, string, int) {
	e.t.Helper()
	e.writeSpec()
	return e.berth("run", "--bundle", e.bundle, id)
}

func (e *env) mustRun(id string) string {
	e.t.Helper()
	out, errOut, code := e.run(id)
	if code != 0 {
		e.t.Fatalf("run %s: exit %d\nstdout: %s\nstderr: %s", id, code, out, errOut)
	}
	return out
}

func (e *env) state(id string) specs.State {
	e.t.Helper()
	out, errOut, code := e.berth("state", id)
	if code != 0 {
		e.t.Fatalf("state %s: exit %d: %s", id, code, errOut)
	}
	var st specs.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("state %s: %v: %s", id, err, out)
	}
	return st
}

func (e *env) waitStatus(id string, want specs.ContainerState) specs.State {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, code := e.berth("state", id)
		if code != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // not created yet
			continue
		}
		var st specs.State
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			e.t.Fatalf("state %s: %v: %q", id, err, out)
		}
		if st.Status == want || time.Now().After(deadline) {
			if st.Status != want {
				e.t.Fatalf("container %s is %s, want %s", id, st.Status, want)
			}
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cleanup force-deletes whatever the test left and checks that nothing
// remains: no state, no cgroup.
func (e *env) cleanup() {
	entries, _ := os.ReadDir(e.root)
	for _, ent := range entries {
		if ent.IsDir() {
			e.berth("delete", "--force", ent.Name())
		}
	}
	cg := filepath.Join("/sys/fs/cgroup/memory/berth-test", sanitize(e.t.Name()))
	if _, err := os.Stat(cg); err == nil {
		e.t.Errorf("cgroup %s left behind", cg)
		os.Remove(cg)
	}
}
