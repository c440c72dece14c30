package main

// The peers: a private dockerd (Debian docker.io) driven with its own CLI,
// and podman with private storage and configuration, both pulling from the
// same loopback registry as berth. Nothing here touches the system's
// docker or podman state: every path, socket and config is below one
// private directory, and everything started is stopped by its PID.

import (
	"context"
	"fmt"
	"github.com/berth-dev/berth/internal/testutil/podman"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// puller is one tool pulling the image cold, once per run.
type puller interface {
	name() string
	// reset gives the next pull an empty store (outside the timing).
	reset(ctx context.Context, run int) error
	pull(ctx context.Context) error
	close()
}

// wipeMode says how a store is emptied between runs.
type wipeMode string

const (
	// wipeDelete removes the previous run's image the tool's own way
	// (docker rmi + prune, podman rmi -a, RemoveAll of berth's root), as a
	// user would. On this VM's unjournalled ext4 every pull after a delete
	// pays the inode allocator's skipping of recently freed inodes.
	wipeDelete wipeMode = "delete"
	// wipeFresh gives each run a new empty store on the same filesystem
	// (a restarted dockerd on a new --data-root, a new podman --root, a new
	// berth root) and deletes them all at the end, so no pull runs right
	// after a mass delete.
	wipeFresh wipeMode = "fresh"
)

func runCmd(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// ---- docker ----

// dockerPeer is a private dockerd: own data root, exec root, pidfile,
// socket and config; no bridge, no iptables; the loopback registry as
// mirror and insecure registry so no name ever resolves to docker.io.
type dockerPeer struct {
	dir, ref, registry string
	mode               wipeMode
	sock               string
	cmd                *exec.Cmd
	waitDone           chan struct{} // closed when cmd has been waited for
	dataRoot           string
	logf               *os.File
}

func newDockerPeer(ctx context.Context, dir, registry, ref string, mode wipeMode) (*dockerPeer, error) {
	for _, bin := range []string{"/usr/sbin/dockerd", "/usr/bin/docker"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("needs %s (apt-get install docker.io; bench/pull/run.sh does it)", bin)
		}
	}
	d := &dockerPeer{dir: dir, ref: ref, registry: registry, mode: mode,
		// unix socket paths are short: keep it in /run, named after us.
		sock: fmt.Sprintf("/run/berth-bench-pull-%d.sock", os.Getpid())}
	cfg := fmt.Sprintf(`{
  "bridge": "none",
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false,
  "registry-mirrors": ["http://%[1]s"],
  "insecure-registries": ["%[1]s"],
  "storage-driver": "overlay2",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "log-level": "warn",
  "max-concurrent-downloads": 3
}
`, registry)
	if err := os.MkdirAll(filepath.Join(dir, "cli"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	var err error
	if d.logf, err = os.Create(filepath.Join(dir, "dockerd.log")); err != nil {
		return nil, err
	}
	return d, d.start(ctx, filepath.Join(dir, "data-0"))
}

func (d *dockerPeer) name() string { return "docker" }

func (d *dockerPeer) start(ctx context.Context, dataRoot string) error {
	d.dataRoot = dataRoot
	d.cmd = exec.Command("/usr/sbin/dockerd",
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", dataRoot,
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"-H", "unix://"+d.sock)
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	// Its own process group, so a Ctrl-C of the benchmark reaches us first
	// and we stop it (and its containerd) in order.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	d.waitDone = exited
	go func() { d.cmd.Wait(); close(exited) }()
	return waitPing(ctx, d.sock, exited, "dockerd", d.logf.Name(), 60*time.Second)
}

// terminate ends pid with SIGTERM, then SIGKILL after 20 s; done closes
// once it is reaped.
func terminate(pid int, done <-chan struct{}) {
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
}

// waitPing waits until the daemon on sock answers /_ping, failing when it
// exits first (see logName) or does not answer within limit.
func waitPing(ctx context.Context, sock string, exited <-chan struct{}, what, logName string, limit time.Duration) error {
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	for deadline := time.Now().Add(limit); ; {
		if resp, err := client.Get("http://daemon/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start; see %s", what, logName)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s; see %s", what, sock, logName)
		}
	}
}

func (d *dockerPeer) env() []string {
	return []string{"DOCKER_HOST=unix://" + d.sock, "DOCKER_CONFIG=" + filepath.Join(d.dir, "cli")}
}

func (d *dockerPeer) reset(ctx context.Context, run int) error {
	if run == 0 {
		return nil // started empty
	}
	if d.mode == wipeFresh {
		if err := d.stop(); err != nil {
			return err
		}
		return d.start(ctx, filepath.Join(d.dir, fmt.Sprintf("data-%d", run)))
	}
	if err := runCmd(ctx, d.env(), "/usr/bin/docker", "rmi", "-f", d.ref); err != nil {
		return err
	}
	if err := runCmd(ctx, d.env(), "/usr/bin/docker", "image", "prune", "-af"); err != nil {
		return err
	}
	return noLayers(filepath.Join(d.dataRoot, "overlay2"))
}

func (d *dockerPeer) pull(ctx context.Context) error {
	return runCmd(ctx, d.env(), "/usr/bin/docker", "pull", "-q", d.ref)
}

// stop ends dockerd by its PID (SIGTERM, then SIGKILL after 20 s); it
// stops the containerd it started itself.
func (d *dockerPeer) stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	pid := d.cmd.Process.Pid
	terminate(pid, d.waitDone)
	d.cmd = nil
	// dockerd's own containerd (started under exec-root) normally exits
	// with it; kill any that did not, by PID.
	killUnder(filepath.Join(d.dir, "exec"))
	return nil
}

func (d *dockerPeer) close() {
	d.stop()
	os.Remove(d.sock)
	if d.logf != nil {
		d.logf.Close()
	}
}

// ---- podman ----

// podmanPeer runs podman with private containers.conf, storage.conf and
// registries.conf (CONTAINERS_CONF and friends). Pulling runs no
// container, so crun's cgroup trouble on this host does not matter.
type podmanPeer struct {
	dir, ref string
	mode     wipeMode
	root     string // current graphroot
	runRoot  string
	// runBase holds the runroots: podman wants them shorter than 50
	// characters, so they live in /run (tmpfs, like podman's default).
	runBase string
	envv    []string // points podman at its private configuration
}

func newPodmanPeer(dir, registry, ref string, mode wipeMode) (*podmanPeer, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("needs podman (apt-get install podman; bench/pull/run.sh does it)")
	}
	p := &podmanPeer{dir: dir, ref: ref, mode: mode, runBase: fmt.Sprintf("/run/berth-bench-pull-%d", os.Getpid())}
	env, err := podman.WriteConfig(dir, filepath.Join(dir, "graph-0"), filepath.Join(p.runBase, "run-0"), registry)
	if err != nil {
		return nil, err
	}
	p.envv = env
	p.root, p.runRoot = filepath.Join(dir, "graph-0"), filepath.Join(p.runBase, "run-0")
	return p, nil
}

func (p *podmanPeer) name() string { return "podman" }

func (p *podmanPeer) env() []string { return p.envv }

func (p *podmanPeer) podman(ctx context.Context, args ...string) error {
	return runCmd(ctx, p.env(), "podman", append([]string{"--root", p.root, "--runroot", p.runRoot}, args...)...)
}

func (p *podmanPeer) reset(ctx context.Context, run int) error {
	if run == 0 {
		return nil
	}
	if p.mode == wipeFresh {
		// The old graphroot keeps its private bind mount until the end.
		p.root = filepath.Join(p.dir, fmt.Sprintf("graph-%d", run))
		p.runRoot = filepath.Join(p.runBase, fmt.Sprintf("run-%d", run))
		return nil
	}
	if err := p.podman(ctx, "rmi", "-a", "-f"); err != nil {
		return err
	}
	return noLayers(filepath.Join(p.root, "overlay"))
}

// noLayers checks, rather than assumes, that an overlay driver's directory
// holds no layer after the image was removed: a leftover layer would make
// the next pull warm. "l" is the drivers' directory of short link names.
func noLayers(dir string) error {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "l" {
			return fmt.Errorf("%s still holds layer %s after the image was removed", dir, e.Name())
		}
	}
	return nil
}

func (p *podmanPeer) pull(ctx context.Context) error {
	return p.podman(ctx, "pull", "-q", p.ref)
}

func (p *podmanPeer) close() {
	if err := testutil.UnmountUnder(p.runBase); err != nil {
		fmt.Fprintln(os.Stderr, "pull bench: cleanup:", err)
	}
	os.RemoveAll(p.runBase)
}

// ---- cleanup helpers ----

// killUnder kills, by PID, processes whose command line names a path
// below dir (only ours can: dir is private to this run).
func killUnder(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir+"/") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
