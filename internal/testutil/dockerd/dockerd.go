// Package dockerd runs a private Debian docker.io daemon beside berth, for
// the differential end-to-end tests (BERTH_TEST_TARGET=docker in
// test/engine) and the side-by-side benchmark (bench/engine). Nothing it
// starts touches the system's docker: data root, exec root, pidfile,
// socket, config, bridge, subnet and cgroup parent are its own, iptables
// and ip-forward are off, and registry traffic cannot leave the machine
// (a loopback registry as mirror, and a proxy on a closed loopback port
// for every other registry host).
package dockerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// Binary is where Debian's docker.io package installs the daemon.
const Binary = "/usr/sbin/dockerd"

// deadProxy is a loopback port nothing listens on (the discard service's
// number): dockerd sends any registry request that is not for loopback
// there, so a fallback from the mirror to docker.io fails at once instead
// of reaching the internet. Go's proxy rules never proxy loopback hosts.
const deadProxy = "http://127.0.0.1:9"

// Options say how to run the daemon.
type Options struct {
	// Dir holds everything: data-root, exec-root, daemon.json, pidfile.
	Dir string
	// Mirror is host:port of a loopback registry, used as registry mirror
	// and insecure registry. Empty: no mirror (pulls of docker.io names
	// then fail at the dead proxy).
	Mirror string
	// LiveRestore keeps containers running while the daemon is down, as
	// berth always does.
	LiveRestore bool
	// LogLevel is dockerd's --log-level (default "warn").
	LogLevel string
	// Wrapper runs dockerd under another command, such as nsenter into the
	// host's mount namespace from a private one (bench/engine).
	Wrapper []string
}

// Daemon is one private dockerd's setup. Prepare makes it; Command gives
// the process to start (again after a kill); Cleanup removes everything.
type Daemon struct {
	opts Options
	// Sock is the API socket (in /run: unix socket paths are short).
	Sock string
	// Bridge is the default bridge's name; Subnet its address (CIDR).
	Bridge, Subnet string
	// CgroupParent is the cgroup directory the containers go below.
	CgroupParent string

	// containerd runs beside dockerd, started by Prepare, not by dockerd:
	// a containerd that dockerd starts writes its log into a pipe to
	// dockerd, so a SIGKILLed dockerd (the live-restore tests) leaves it
	// to die of SIGPIPE, and dockerd's restart then waits for the zombie.
	containerd *exec.Cmd
	ctrdExited chan struct{}
}

// containerdConfig keeps every path of containerd below the private dir
// and turns off the CRI plugin (as dockerd's own containerd does).
const containerdConfig = `version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "%[1]s/containerd/containerd.sock"
[debug]
  address = "%[1]s/containerd/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/containerd/opt"
`

// Available says why the daemon cannot run here, or nil.
func Available() error {
	for _, bin := range []string{Binary, "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2"} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("needs %s (apt-get install docker.io)", bin)
		}
	}
	return nil
}

// Prepare writes the daemon's configuration and creates its bridge with a
// free /24 subnet.
func Prepare(opts Options) (*Daemon, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tag := hex.EncodeToString(b[:])
	d := &Daemon{opts: opts,
		Sock:         "/run/berth-dockerd-" + tag + ".sock",
		Bridge:       "bd-" + tag,
		CgroupParent: "/berth-dockerd-" + tag,
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := d.makeBridge(b[0]); err != nil {
		return nil, err
	}
	if err := d.startContainerd(); err != nil {
		d.removeBridge()
		return nil, err
	}
	cfg := map[string]any{
		"bridge":     d.Bridge,
		"iptables":   false,
		"ip6tables":  false,
		"ip-forward": false,
		"ip-masq":    false,
		// Networks the tests create: a /16 of their own, so they do not
		// take 172.17-31 (the default) from other daemons on the host.
		"default-address-pools": []map[string]any{{"base": fmt.Sprintf("10.198.%d.0/20", int(b[1])&0xf0), "size": 24}},
		"storage-driver":        "overlay2",
		"exec-opts":             []string{"native.cgroupdriver=cgroupfs"},
		"cgroup-parent":         d.CgroupParent,
		"live-restore":          opts.LiveRestore,
		"log-level":             opts.LogLevel,
		"pidfile":               filepath.Join(opts.Dir, "dockerd.pid"),
		"data-root":             filepath.Join(opts.Dir, "data"),
		"exec-root":             filepath.Join(opts.Dir, "exec"),
		"hosts":                 []string{"unix://" + d.Sock},
		"containerd":            d.containerdSock(),
	}
	if opts.Mirror != "" {
		cfg["registry-mirrors"] = []string{"http://" + opts.Mirror}
		cfg["insecure-registries"] = []string{opts.Mirror}
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(d.configFile(), raw, 0o644); err != nil {
		_ = d.Cleanup()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) containerdSock() string {
	return filepath.Join(d.opts.Dir, "containerd", "containerd.sock")
}

// startContainerd starts containerd with its output in a file and waits
// (up to a minute) for its socket.
func (d *Daemon) startContainerd() error {
	dir := filepath.Join(d.opts.Dir, "containerd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(containerdConfig, d.opts.Dir)), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append(slices.Clone(d.opts.Wrapper), "/usr/bin/containerd", "--config", cfg, "--log-level", "warn")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	d.containerd, d.ctrdExited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.ctrdExited) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.containerdSock()); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-d.ctrdExited:
			return fmt.Errorf("containerd exited at start; see %s", logf.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not listen on %s; see %s", d.containerdSock(), logf.Name())
		}
	}
}

func (d *Daemon) configFile() string { return filepath.Join(d.opts.Dir, "daemon.json") }

// ExecRoot is the daemon's --exec-root (containerd runs below it).
func (d *Daemon) ExecRoot() string { return filepath.Join(d.opts.Dir, "exec") }

// makeBridge creates the default bridge with the first 10.199.N.0/24 (N
// from seed on) that no interface or route on the host uses; dockerd takes
// the bridge's address as its subnet.
func (d *Daemon) makeBridge(seed byte) error {
	used, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip route: %w: %s", err, used)
	}
	for i := 0; i < 256; i++ {
		n := (int(seed) + i) % 256
		prefix := fmt.Sprintf("10.199.%d.", n)
		if strings.Contains(string(used), prefix) {
			continue
		}
		d.Subnet = prefix + "1/24"
		for _, args := range [][]string{
			{"link", "add", d.Bridge, "type", "bridge"},
			{"addr", "add", d.Subnet, "dev", d.Bridge},
			{"link", "set", d.Bridge, "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				d.removeBridge()
				return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	}
	return errors.New("no free 10.199.N.0/24 for the dockerd bridge")
}

func (d *Daemon) removeBridge() {
	_ = exec.Command("ip", "link", "del", d.Bridge).Run()
}

// Command returns dockerd ready to start. Its environment routes registry
// traffic for any non-loopback host to a closed port.
func (d *Daemon) Command() *exec.Cmd {
	args := append(slices.Clone(d.opts.Wrapper), Binary, "--config-file", d.configFile())
	cmd := exec.Command(args[0], args[1:]...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(strings.ToUpper(kv), "=")
		return k == "HTTP_PROXY" || k == "HTTPS_PROXY" || k == "NO_PROXY" || k == "DOCKER_HOST"
	})
	cmd.Env = append(env, "HTTP_PROXY="+deadProxy, "HTTPS_PROXY="+deadProxy, "NO_PROXY=localhost,127.0.0.0/8")
	// Its own process group: a Ctrl-C of the caller does not reach it
	// before the caller stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Env is what the docker CLI needs to talk to this daemon.
func (d *Daemon) Env() []string {
	return []string{"DOCKER_HOST=unix://" + d.Sock, "DOCKER_CONFIG=" + filepath.Join(d.opts.Dir, "cli")}
}

// Ping reports whether the daemon answers /_ping.
func (d *Daemon) Ping(ctx context.Context) bool {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.Sock)
	}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Start starts the daemon with output to logPath and waits (up to a
// minute) until it answers. The caller stops it with Stop.
func (d *Daemon) Start(ctx context.Context, logPath string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := d.Command()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	for deadline := time.Now().Add(time.Minute); !d.Ping(ctx); {
		select {
		case <-exited:
			return nil, fmt.Errorf("dockerd exited at start; see %s", logPath)
		case <-ctx.Done():
			d.Stop(cmd, exited)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop(cmd, exited)
			return nil, fmt.Errorf("dockerd did not answer on %s; see %s", d.Sock, logPath)
		}
	}
	return cmd, nil
}

// Stop ends a started dockerd by its PID: SIGTERM, SIGKILL after 20 s;
// exited is closed once the process has been waited for.
func (d *Daemon) Stop(cmd *exec.Cmd, exited <-chan struct{}) {
	testutil.Terminate(cmd.Process, exited, 20*time.Second)
}

// ContainerdPid is the pid of the daemon's containerd.
func (d *Daemon) ContainerdPid() int { return d.containerd.Process.Pid }

// Cleanup runs after dockerd has exited: it stops containerd, kills, by
// PID, whatever of its shims and containers is left (found by the private
// dir in their command line, and by the cgroup parent), unmounts everything below
// Dir, and removes the bridge, the cgroup parent, the socket and Dir.
func (d *Daemon) Cleanup() error {
	var errs []error
	if d.containerd != nil {
		d.Stop(d.containerd, d.ctrdExited)
	}
	killMatching(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && strings.Contains(string(b), d.opts.Dir+"/")
	})
	killMatching(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return err == nil && strings.Contains(string(b), d.CgroupParent+"/")
	})
	if err := testutil.UnmountUnder(d.opts.Dir); err != nil {
		errs = append(errs, err)
	}
	d.removeBridge()
	if err := testutil.RemoveCgroup(d.CgroupParent); err != nil {
		errs = append(errs, err)
	}
	_ = os.Remove(d.Sock)
	if err := os.RemoveAll(d.opts.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killMatching SIGKILLs every process match accepts and waits (up to 5 s)
// for them to go.
func killMatching(match func(pid int) bool) {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !match(pid) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		for i := 0; i < 500 && syscall.Kill(pid, 0) == nil && !zombie(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}
