package engine_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestartPolicies: a crashing container comes back with growing
// back-off (on-failure:N stops after N restarts, always goes on until
// stopped), a stopped one stays stopped, and a daemon that starts again
// brings back an "always" container that died while it was down.
func TestRestartPolicies(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "--name", "fail3", "--restart", "on-failure:3", testImage, "sh", "-c", "echo run; exit 3")
	d.mustDocker("run", "-d", "--name", "ok", "--restart", "on-failure", testImage, "true")
	d.mustDocker("run", "-d", "--name", "crash", "--restart", "always", testImage, "sh", "-c", "echo up; sleep 0.2; exit 1")
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "fail3")
		return o == "3 exited\n"
	}, "on-failure:3 to give up after 3 restarts")
	if o := d.mustDocker("logs", "fail3"); o != "run\nrun\nrun\nrun\n" {
		t.Fatalf("logs of fail3: %q", o)
	}
	time.Sleep(300 * time.Millisecond)
	if o := d.mustDocker("inspect", "-f", "{{.RestartCount}} {{.State.ExitCode}}", "fail3"); o != "3 3\n" {
		t.Fatalf("fail3 restarted beyond its limit: %q", o)
	}
	if o := d.mustDocker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "ok"); o != "0 exited\n" {
		t.Fatalf("on-failure restarted a clean exit: %q", o)
	}
	// RestartCount counts a restart when it is decided (before the
	// back-off), as docker does: wait for the starts themselves.
	waitFor(t, func() bool {
		events, _, _ := d.docker("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
			"--filter", "container=crash", "--filter", "event=start", "--format", "{{.Action}}")
		return strings.Count(events, "start") >= 4
	}, "always to bring the crashing container back (four start events)")
	if o := d.mustDocker("inspect", "-f", "{{.RestartCount}}", "crash"); atoi(o) < 3 {
		t.Fatalf("RestartCount of crash after four starts: %q", o)
	}
	d.mustDocker("stop", "-t", "1", "crash")
	time.Sleep(500 * time.Millisecond)
	o := d.mustDocker("inspect", "-f", "{{.State.Status}} {{.State.Restarting}}", "crash")
	if o != "exited false\n" {
		t.Fatalf("crash after docker stop: %q", o)
	}

	// unless-stopped: brought back until the user stops it, and not by
	// the daemon's start after that.
	d.mustDocker("run", "-d", "--name", "us", "--restart", "unless-stopped", testImage, "sh", "-c", "sleep 0.2; exit 1")
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.RestartCount}}", "us")
		return atoi(o) >= 1
	}, "unless-stopped to bring the container back")
	d.mustDocker("stop", "-t", "1", "us")

	// always + a daemon restart: the container died while no daemon ran.
	d.mustDocker("run", "-d", "--name", "svc", "--restart", "always", testImage, "sh", "-c", "sleep 0.5; exit 2")
	d.kill()
	time.Sleep(time.Second)
	d.start()
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.RestartCount}}", "svc")
		n, _ := strconv.Atoi(strings.TrimSpace(o))
		return n >= 1
	}, "the daemon to restart svc after its own restart")
	// The manually stopped "always" container is started again by the
	// daemon's start too, as docker does.
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.State.StartedAt}}", "crash")
		st, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(o))
		return err == nil && time.Since(st) < 5*time.Second
	}, "the stopped always container to start with the daemon")
	if o := d.mustDocker("inspect", "-f", "{{.State.Status}}", "us"); o != "exited\n" {
		t.Fatalf("the stopped unless-stopped container after a daemon restart: %q", o)
	}
	d.mustDocker("rm", "-f", "crash", "svc")
}

// TestInit: --init runs berth's reaper as PID 1 (at /sbin/docker-init),
// which passes the exit code and signals on and reaps orphans.
func TestInit(t *testing.T) {
	d := startDaemon(t)
	out := d.mustDocker("run", "--rm", "--init", testImage, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
	// docker's tini shows "/sbin/docker-init -- sh -c …", berth's reaper
	// "/sbin/docker-init supervise reap -- sh -c …".
	if !strings.HasPrefix(out, "/sbin/docker-init ") || !strings.Contains(out, " -- sh -c ") || strings.HasSuffix(out, "\n1\n") {
		t.Fatalf("--init: %q", out)
	}
	if _, _, code := d.docker("run", "--rm", "--init", testImage, "sh", "-c", "sleep 5 & exit 3"); code != 3 {
		t.Fatalf("--init exit code: %d", code)
	}
	d.mustDocker("run", "-d", "--name", "sleeper", "--init", testImage, "sleep", "100")
	// The reaper catches signals once it runs (it started its child then);
	// a SIGTERM in the first milliseconds, while the Go runtime boots,
	// would be lost (see internal/engine/NOTES.md).
	waitFor(t, func() bool {
		o, _, _ := d.docker("top", "sleeper")
		return strings.Contains(o, "sleep 100")
	}, "the reaper to start its child")
	// 143, not 137: the SIGTERM reached sleep through the reaper (the
	// stop's SIGKILL after its timeout would give 137).
	d.mustDocker("stop", "-t", "30", "sleeper")
	if o := d.mustDocker("inspect", "-f", "{{.State.ExitCode}}", "sleeper"); o != "143\n" {
		t.Fatalf("exit code after stop: %q", o)
	}
}
