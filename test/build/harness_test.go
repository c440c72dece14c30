// Package build_test builds real Dockerfiles with a real `berth daemon`
// on temp directories, through the docker CLI's classic builder
// (DOCKER_BUILDKIT=0), berth's own CLI and the raw API, and checks the
// images' configs, layers and files by running them.
package build_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/network/nettest"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthbin"
)

const dockerCLI = "/usr/local/bin/docker"

var berth berthbin.Binary

func TestMain(m *testing.M) {
	clean := testutil.CgroupParents("berth")
	code := m.Run()
	clean()
	berth.Remove()
	os.Exit(code)
}

// binary builds berth once per test run.
func binary(t testing.TB) string { return berth.Path(t) }

type daemon struct {
	t              testing.TB
	root, execRoot string
	sock           string
	cmd            *exec.Cmd
	logs           *bytes.Buffer
	exited         chan struct{}
	net            nettest.Names // its own bridge and nftables table
}

// startDaemon runs a daemon on fresh directories holding the busybox test
// image as busybox:latest.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skip("test needs the docker CLI at " + dockerCLI)
	}
	dir := t.TempDir()
	d := &daemon{t: t, root: filepath.Join(dir, "root"), execRoot: filepath.Join(dir, "exec"), sock: filepath.Join(dir, "berth.sock"), net: nettest.New()}
	s, err := image.Open(context.Background(), d.root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Create(t, s, "busybox:latest")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d.start()
	t.Cleanup(d.cleanup)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.logs = &bytes.Buffer{}
	cfg := filepath.Join(d.root, "daemon.json")
	_ = os.WriteFile(cfg, []byte(d.net.ConfigJSON()), 0o600)
	d.cmd = exec.Command(binary(d.t), "daemon", "--root", d.root, "--exec-root", d.execRoot,
		"--host", "unix://"+d.sock, "--config", cfg, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	// Never a registry outside loopback, whatever the test asks for.
	d.cmd.Env = append(os.Environ(), "BERTH_REGISTRY_LOOPBACK_ONLY=1")
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := d.http().Get("http://berth/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-d.exited:
			d.t.Fatalf("daemon exited:\n%s", d.logs)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon did not answer /_ping:\n%s", d.logs)
		}
	}
}

// stop ends the daemon (SIGTERM), leaving its supervisor.
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		},
	}, Timeout: 2 * time.Minute}
}

// result is one CLI run.
type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

// run runs a CLI (docker or berth) against the daemon in dir.
func (d *daemon) run(dir string, env []string, bin string, args ...string) result {
	d.t.Helper()
	return d.runIn(dir, nil, env, bin, args...)
}

// runIn is run with stdin read from in.
func (d *daemon) runIn(dir string, in io.Reader, env []string, bin string, args ...string) result {
	d.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = in
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "BERTH_HOST=unix://"+d.sock,
		"DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"), "DOCKER_BUILDKIT=0")
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("%s %v: %v", bin, args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func (d *daemon) docker(args ...string) result { return d.run("", nil, dockerCLI, args...) }
func (d *daemon) berth(args ...string) result  { return d.run("", nil, binary(d.t), args...) }

func (d *daemon) must(r result) result {
	d.t.Helper()
	if r.code != 0 {
		d.t.Fatalf("%s\ndaemon log:\n%s", r, tail(d.logs.String(), 3000))
	}
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cleanup removes containers, stops the daemon and its supervisor, and
// reports leftovers: mounts, runtime state, build directories.
func (d *daemon) cleanup() {
	t := d.t
	select {
	case <-d.exited:
	default:
		if r := d.docker("ps", "-aq"); r.code == 0 {
			if ids := strings.Fields(r.out); len(ids) > 0 {
				d.docker(append([]string{"rm", "-f"}, ids...)...)
			}
		}
		d.stop()
	}
	entries, _ := os.ReadDir(filepath.Join(d.execRoot, "runtime"))
	for _, e := range entries {
		t.Errorf("runtime state left behind: %s", e.Name())
	}
	if b, err := os.ReadFile(filepath.Join(d.execRoot, "supervisor.pid")); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, d.root) || strings.Contains(l, d.execRoot) {
			f := strings.Fields(l)
			t.Errorf("mount left behind: %s", f[4])
			_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
	d.net.Cleanup(t, d.root)
	if left, _ := os.ReadDir(filepath.Join(d.root, "builder")); len(left) > 0 {
		t.Errorf("build directories left behind: %v", left)
	}
	// Every container is gone: any snapshot not committed is a leftover.
	if s, err := image.Open(context.Background(), d.root, image.Options{}); err == nil {
		_ = s.Snapshots().Walk(context.Background(), func(_ context.Context, i snapshot.Info) error {
			if i.Kind != snapshot.KindCommitted {
				t.Errorf("snapshot left behind: %s (%s)", i.Key, i.Kind)
			}
			return nil
		})
		s.Close()
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(d.logs.String(), 6000))
	}
}

// contextDir writes files (name → content) into a fresh directory.
func contextDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
