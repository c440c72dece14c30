package engine_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
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

// TestHealthProbeTimeoutKills: a probe that outlives --health-timeout is
// reported as a failure and killed, as docker does, so that hung probes do
// not pile up in the container.
func TestHealthProbeTimeoutKills(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "--name", "hang", "--health-cmd", "sleep 54321", "--health-timeout", "300ms",
		"--health-interval", "500ms", "--health-retries", "1", testImage, "sleep", "100")
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.State.Health.Status}}", "hang")
		return strings.TrimSpace(o) == "unhealthy"
	}, "the container to turn unhealthy")
	if o := d.mustDocker("inspect", "-f", "{{(index .State.Health.Log 0).Output}}", "hang"); !strings.Contains(o, "Health check exceeded timeout") {
		t.Fatalf("probe output: %q", o)
	}
	// At most the probe in flight remains, not one per interval.
	time.Sleep(2 * time.Second)
	ps := d.mustDocker("exec", "hang", "ps", "-o", "args")
	if n := strings.Count(ps, "sleep 54321"); n > 1 {
		t.Fatalf("%d timed-out probes still run:\n%s", n, ps)
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

// withHealthImage adds "hc:1": the test image with a HEALTHCHECK in its
// config (a docker field the store keeps as it is), as docker build makes.
func withHealthImage(t testing.TB, s *image.Service) {
	imageWithConfig("hc:1", func(cfg map[string]any) {
		cfg["Healthcheck"] = map[string]any{
			"Test": []string{"CMD-SHELL", "test -e /tmp/ready"}, "Interval": int64(200 * time.Millisecond), "Retries": 1,
		}
	})(t, s)
}

// imageWithConfig returns a seed that adds image name: the test image with
// its config's "config" object changed by edit.
func imageWithConfig(name string, edit func(cfg map[string]any)) func(testing.TB, *image.Service) {
	return func(t testing.TB, s *image.Service) { seedWithConfig(t, s, name, edit) }
}

func seedWithConfig(t testing.TB, s *image.Service, name string, edit func(cfg map[string]any)) {
	ctx := context.Background()
	d, err := s.Inspect(ctx, testImage)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := content.ReadBlob(ctx, s.Content(), d.Config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg["config"].(map[string]any))
	op, err := s.Begin(ctx, "test image "+name)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Done(ctx)
	cfgBytes, _ := json.Marshal(cfg)
	cfgDesc, _, err := s.WriteJSONBytes(ctx, op, d.Config.MediaType, cfgBytes)
	if err != nil {
		t.Fatal(err)
	}
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cfgDesc, Layers: d.Layers}
	mBytes, _ := json.Marshal(m)
	mDesc, _, err := s.WriteJSONBytes(ctx, op, v1.MediaTypeImageManifest, mBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, name, mDesc); err != nil {
		t.Fatal(err)
	}
}

// TestImageHealthcheck: the image's HEALTHCHECK applies, and a
// --health-interval without a command keeps the image's test.
func TestImageHealthcheck(t *testing.T) {
	d := startDaemon(t, withHealthImage)
	d.mustDocker("run", "-d", "--name", "ih", "--health-retries", "2", "hc:1", "sh", "-c", "sleep 1; touch /tmp/ready; sleep 100")
	if o := d.mustDocker("inspect", "-f", "{{index .Config.Healthcheck.Test 1}} {{.Config.Healthcheck.Retries}}", "ih"); o != "test -e /tmp/ready 2\n" {
		t.Fatalf("merged healthcheck: %q", o)
	}
	waitFor(t, func() bool {
		o, _, _ := d.docker("inspect", "-f", "{{.State.Health.Status}}", "ih")
		return o == "healthy\n"
	}, "the image's healthcheck to pass")
	d.mustDocker("run", "-d", "--name", "none", "--no-healthcheck", "hc:1", "sleep", "100")
	if o := d.mustDocker("inspect", "-f", "{{.State.Health}}", "none"); o != "<nil>\n" {
		t.Fatalf("--no-healthcheck: %q", o)
	}
}
