package engine_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHealthCheck: a --health-cmd probe makes the container healthy, then
// unhealthy after --health-retries failures, with events and ps status.
func TestHealthCheck(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok && echo fine",
		"--health-interval", "200ms", "--health-retries", "2", testImage, "sh", "-c", "touch /tmp/ok; sleep 100")
	health := func() string {
		o, _, _ := d.docker("inspect", "-f", "{{.State.Health.Status}}", "hc")
		return strings.TrimSpace(o)
	}
	waitFor(t, func() bool { return health() == "healthy" }, "the container to turn healthy")
	if o := d.mustDocker("ps", "--format", "{{.Status}}"); !strings.Contains(o, "(healthy)") {
		t.Fatalf("ps of a healthy container: %q", o)
	}
	if o := d.mustDocker("inspect", "-f", "{{(index .State.Health.Log 0).Output}}", "hc"); o != "fine\n\n" {
		t.Fatalf("probe output: %q", o)
	}
	d.mustDocker("exec", "hc", "rm", "/tmp/ok")
	waitFor(t, func() bool { return health() == "unhealthy" }, "the container to turn unhealthy")
	if o := d.mustDocker("inspect", "-f", "{{.State.Health.FailingStreak}}", "hc"); atoi(o) < 2 {
		t.Fatalf("failing streak: %q", o)
	}
	out := d.mustDocker("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "container=hc", "--format", "{{.Action}}")
	if !strings.Contains(out, "health_status: healthy\n") || !strings.Contains(out, "health_status: unhealthy\n") {
		t.Fatalf("health events:\n%s", out)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// TestOOMKilled: a container over its memory limit is killed by the
// kernel and says so (State.OOMKilled, an oom event, exit 137).
func TestOOMKilled(t *testing.T) {
	d := startDaemon(t)
	_, _, code := d.docker("run", "--name", "hog", "--memory", "8m", "--memory-swap", "8m", testImage, "tail", "/dev/zero")
	if code != 137 {
		t.Fatalf("docker run of a memory hog: exit %d", code)
	}
	if o := d.mustDocker("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"); o != "true 137\n" {
		t.Fatalf("inspect of the OOM-killed container: %q", o)
	}
	out := d.mustDocker("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "event=oom", "--format", "{{.Actor.Attributes.name}}")
	if out != "hog\n" {
		t.Fatalf("oom events: %q", out)
	}
}
