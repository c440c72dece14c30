// Package engine_test drives a real `berth daemon` with the real docker CLI
// and the Go client: no mocks. Each test gets its own --root, --exec-root
// and socket; cleanup removes every container through the API, stops the
// daemon and its supervisor by pid, and checks that no mount, cgroup or
// process is left behind.
//
// BERTH_TEST_TARGET=docker runs the same tests against a private dockerd
// (Debian docker.io, internal/testutil/dockerd) instead, so what berth
// claims to share with docker is checked against docker; tests that look
// at berth's internals skip there (berthOnly).
package engine_test

import (
	"bytes"
	"context"
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

	"github.com/berth-dev/berth/internal/archive"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/imagearchive"
	"github.com/berth-dev/berth/internal/network/nettest"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/berthbin"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
)

// onDocker is set by BERTH_TEST_TARGET=docker: the tests drive a private
// dockerd instead of berth.
var onDocker = os.Getenv("BERTH_TEST_TARGET") == "docker"

// berthOnly skips a test (or the rest of one) that inspects berth's own
// internals when the suite runs against dockerd.
func berthOnly(t testing.TB, why string) {
	t.Helper()
	if onDocker {
		t.Skip("BERTH_TEST_TARGET=docker: " + why)
	}
}

const (
	dockerCLI = "/usr/local/bin/docker"
	testImage = "busybox:latest"
)

var berth berthbin.Binary

// binary builds berth once per test run.
func binary(t testing.TB) string { return berth.Path(t) }

// daemon is one running `berth daemon`.
type daemon struct {
	t        testing.TB
	root     string
	execRoot string
	sock     string
	cmd      *exec.Cmd
	logs     *bytes.Buffer
	exited   chan struct{}
	net      nettest.Names // its own bridge and nftables table
	// peer is the private dockerd in BERTH_TEST_TARGET=docker mode.
	peer *dockerd.Daemon
	// version is the API version raw requests use (see api): dockerd
	// 20.10 answers up to 1.41.
	version string
}

// api prefixes an API path with the version both targets speak.
func (d *daemon) api(path string) string { return "/v" + d.version + path }

// seedImage puts the busybox test image into root's image store before a
// daemon opens it (bbolt allows one process at a time).
func seedImage(t testing.TB, root string, seeds ...func(testing.TB, *image.Service)) {
	s, err := image.Open(context.Background(), root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if onDocker {
		createFlat(t, s)
	} else {
		imagetest.Create(t, s, testImage)
	}
	for _, seed := range seeds {
		seed(t, s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// createFlat makes the test image as one layer holding the tree the
// three layers of imagetest's image unpack to: docker's overlay2 cannot
// apply that image's second layer, which hardlinks a file of the first
// (berth can).
func createFlat(t testing.TB, s *image.Service) {
	_, tree := imagetest.Layers(t)
	var layer bytes.Buffer
	if err := archive.Tar(context.Background(), tree, &layer); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFromLayers(context.Background(), testImage, imagetest.Config(), &layer); err != nil {
		t.Fatal(err)
	}
}

// startDaemon starts a daemon on fresh directories with the test image
// and what seeds add to its image store.
func startDaemon(t *testing.T, seeds ...func(testing.TB, *image.Service)) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	dir := t.TempDir()
	d := &daemon{
		t: t, root: filepath.Join(dir, "root"), execRoot: filepath.Join(dir, "exec"),
		sock: filepath.Join(dir, "berth.sock"), net: nettest.New(), version: "1.50",
	}
	seedImage(t, d.root, seeds...)
	if onDocker {
		d.startDocker(t, dir)
		return d
	}
	d.start()
	t.Cleanup(d.cleanup)
	return d
}

// startDocker starts a private dockerd (live restore on, as berth always
// is) with a loopback berth registry as its mirror, and loads the images
// seeded into d.root's berth store with `docker load`.
func (d *daemon) startDocker(t *testing.T, dir string) {
	requireDockerCLI(t)
	if err := dockerd.Available(); err != nil {
		t.Skip(err)
	}
	peer, err := dockerd.Prepare(dockerd.Options{Dir: filepath.Join(dir, "dockerd"), Mirror: startRegistry(t), LiveRestore: true, LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	d.peer, d.sock, d.version = peer, peer.Sock, "1.41"
	d.execRoot = peer.ExecRoot()
	t.Cleanup(func() {
		if err := peer.Cleanup(); err != nil {
			t.Logf("dockerd cleanup: %v", err)
		}
	})
	d.start()
	t.Cleanup(d.cleanup)
	archive := filepath.Join(dir, "images.tar")
	saveSeeded(t, d.root, archive)
	d.mustDocker("load", "-i", archive)
}

// saveSeeded writes every image of root's berth store to path as a
// `docker save` tarball.
func saveSeeded(t testing.TB, root, path string) {
	ctx := context.Background()
	s, err := image.Open(ctx, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range list {
		names = append(names, img.RepoTags...)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := imagearchive.New(s).Save(ctx, f, names...); err != nil {
		t.Fatal(err)
	}
}

func (d *daemon) start() {
	d.t.Helper()
	d.logs = &bytes.Buffer{}
	if d.peer != nil {
		d.cmd = d.peer.Command()
	} else {
		d.cmd = exec.Command(binary(d.t), "daemon", "--root", d.root, "--exec-root", d.execRoot,
			"--host", "unix://"+d.sock, "--config", filepath.Join(d.root, "no-daemon.json"), "--log-level", "debug")
		_ = os.WriteFile(filepath.Join(d.root, "no-daemon.json"), []byte(d.net.ConfigJSON()), 0o600)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
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
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the daemon with SIGKILL, leaving the supervisor running.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

func (d *daemon) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		},
	}, Timeout: 30 * time.Second}
}

// docker runs the docker CLI against the daemon.
func (d *daemon) docker(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	return d.dockerIn(nil, args...)
}

// dockerIn runs the docker CLI with stdin read from in.
func (d *daemon) dockerIn(in io.Reader, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	requireDockerCLI(d.t)
	cmd := exec.Command(dockerCLI, args...)
	cmd.Stdin = in
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("docker %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// mustDocker runs the docker CLI and fails the test unless it succeeds.
func (d *daemon) mustDocker(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.docker(args...)
	if code != 0 {
		d.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s\ndaemon log:\n%s", strings.Join(args, " "), code, out, errOut, tail(d.logs.String(), 3000))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (d *daemon) supervisorPid() int {
	b, err := os.ReadFile(filepath.Join(d.execRoot, "supervisor.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// cleanup removes every container, stops the daemon and the supervisor,
// and checks that nothing is left: no mounts under the temp dirs, no
// container cgroups, no supervisor.
func (d *daemon) cleanup() {
	t := d.t
	select {
	case <-d.exited:
	default:
		if out, _, code := d.docker("ps", "-aq"); code == 0 {
			if ids := strings.Fields(out); len(ids) > 0 {
				d.docker(append([]string{"rm", "-f"}, ids...)...)
			}
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if d.peer != nil {
		if t.Failed() {
			t.Logf("dockerd log:\n%s", tail(d.logs.String(), 6000))
		}
		return // dockerd's leftovers are removed by peer.Cleanup
	}
	leftovers := d.runtimeIDs()
	if pid := d.supervisorPid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Anything the API could not remove is killed by hand, then reported.
	for _, id := range leftovers {
		if pid := statePid(filepath.Join(d.execRoot, "runtime", id)); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
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
	if len(leftovers) > 0 {
		t.Errorf("runtime state left behind for %v", leftovers)
	}
	d.net.Cleanup(t, d.root)
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(d.logs.String(), 6000))
		if b, err := os.ReadFile(filepath.Join(d.execRoot, "supervisor.log")); err == nil {
			t.Logf("supervisor log:\n%s", tail(string(b), 4000))
		}
	}
}

func (d *daemon) runtimeIDs() []string {
	entries, _ := os.ReadDir(filepath.Join(d.execRoot, "runtime"))
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

func statePid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return 0
	}
	i := bytes.Index(b, []byte(`"pid":`))
	if i < 0 {
		return 0
	}
	s := b[i+6:]
	j := bytes.IndexAny(s, ",}")
	if j < 0 {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(s[:j])))
	return pid
}

// requireDockerCLI skips a test that drives the real docker CLI when it is
// not installed (a fresh machine has none; this project's machines do).
func requireDockerCLI(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skip("test needs the docker CLI at " + dockerCLI)
	}
}
