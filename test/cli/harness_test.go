// Package cli_test drives the built `berth` binary against a real
// `berth daemon` on temp dirs, and runs the same commands through the docker
// CLI against that daemon, comparing tables and --format output.
package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/network/nettest"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthbin"
)

const (
	dockerCLI = "/usr/local/bin/docker"
	testImage = "busybox:latest"
)

var berth berthbin.Binary

// TestMain removes the engine's parent cgroups and the binary's temp dir
// after the run.
func TestMain(m *testing.M) {
	cleanCgroups := testutil.CgroupParents("berth", "berth-test")
	code := m.Run()
	cleanCgroups()
	berth.Remove()
	os.Exit(code)
}

// berthBinary builds the binary once into a temp dir, so parallel test
// runs in other worktrees never share it.
func berthBinary(t testing.TB) string { return berth.Path(t) }

// result is one CLI invocation.
type result struct {
	out, err string
	code     int
}

// run executes bin with env added to a clean environment (no DOCKER_HOST
// or BERTH_HOST leaking in from the caller).
func run(t testing.TB, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// daemon is a `berth daemon` on its own root, exec-root and socket.
type daemon struct {
	t              testing.TB
	dir, root, run string
	sock           string
	cmd            *exec.Cmd
	logs           bytes.Buffer
	done           chan struct{}
	net            nettest.Names
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skip("test needs the docker CLI at " + dockerCLI)
	}
	dir := t.TempDir()
	d := &daemon{t: t, dir: dir, root: filepath.Join(dir, "root"), run: filepath.Join(dir, "exec"),
		sock: filepath.Join(dir, "berth.sock"), done: make(chan struct{})}
	// The image store is seeded before the daemon opens it (bbolt has one
	// writer process at a time).
	s, err := image.Open(context.Background(), d.root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Create(t, s, testImage)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "daemon.json")
	d.net = nettest.New()
	if err := os.WriteFile(cfg, []byte(d.net.ConfigJSON()), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(berthBinary(t), "daemon", "--root", d.root, "--exec-root", d.run,
		"--host", "unix://"+d.sock, "--config", cfg)
	d.cmd.Stdout, d.cmd.Stderr = &d.logs, &d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := d.berth("version", "--format", "{{.Server.Os}}"); r.code == 0 {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("daemon exited:\n%s", d.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer:\n%s", d.logs.String())
		}
	}
}

func (d *daemon) env() []string {
	return []string{"DOCKER_HOST=unix://" + d.sock, "DOCKER_CONFIG=" + filepath.Join(d.dir, "docker-config")}
}

func (d *daemon) berth(args ...string) result {
	d.t.Helper()
	return run(d.t, d.env(), berthBinary(d.t), args...)
}

func (d *daemon) docker(args ...string) result {
	d.t.Helper()
	return run(d.t, d.env(), dockerCLI, args...)
}

// must runs berth and fails the test unless it exits 0.
func (d *daemon) must(args ...string) string {
	d.t.Helper()
	r := d.berth(args...)
	if r.code != 0 {
		d.t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// stop removes every container, stops the daemon, then its supervisor.
func (d *daemon) stop() {
	if ids := strings.Fields(d.berth("ps", "-aq").out); len(ids) > 0 {
		d.berth(append([]string{"rm", "-f"}, ids...)...)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	if b, err := os.ReadFile(filepath.Join(d.run, "supervisor.pid")); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 300 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	d.net.Cleanup(d.t, d.root)
	if d.t.Failed() {
		d.t.Logf("daemon log (tail):\n%s", tail(d.logs.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
