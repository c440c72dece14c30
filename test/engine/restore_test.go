package engine_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestLiveRestore kills the daemon with SIGKILL while containers run, one
// of which exits meanwhile; a new daemon on the same directories finds the
// running one running (and stoppable) and the other exited with its code.
func TestLiveRestore(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "--name", "keep", testImage, "sh", "-c", "trap 'exit 0' TERM; echo before; sleep 100 & wait")
	waitFor(t, func() bool { o, _, _ := d.docker("logs", "keep"); return o == "before\n" }, "first output")
	d.mustDocker("run", "-d", "--name", "quit", testImage, "sh", "-c", "sleep 1; exit 7")
	supPid := d.supervisorPid()
	d.kill()
	time.Sleep(1500 * time.Millisecond) // "quit" exits while no daemon runs
	d.start()
	if p := d.supervisorPid(); !onDocker && p != supPid {
		t.Fatalf("supervisor changed from %d to %d across a daemon restart", supPid, p)
	}
	out := d.mustDocker("ps", "-a", "--format", "{{.Names}} {{.State}}")
	if !strings.Contains(out, "keep running") || !strings.Contains(out, "quit exited") {
		t.Fatalf("docker ps after restart: %q", out)
	}
	if out := d.mustDocker("inspect", "--format", "{{.State.ExitCode}}", "quit"); out != "7\n" {
		t.Fatalf("exit code recorded while the daemon was down: %q", out)
	}
	if out := d.mustDocker("logs", "keep"); out != "before\n" {
		t.Fatalf("logs after restart: %q", out)
	}
	d.mustDocker("stop", "keep")
	if out := d.mustDocker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "keep"); out != "exited 0\n" {
		t.Fatalf("after stop: %q", out)
	}
}

// TestGoClient drives the daemon with github.com/moby/moby/client.
func TestGoClient(t *testing.T) {
	d := startDaemon(t)
	c, err := client.New(client.WithHost("unix://"+d.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ping, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if ping.APIVersion == "" || ping.OSType != "linux" {
		t.Fatalf("ping: %+v", ping)
	}
	created, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: testImage, Cmd: []string{"sh", "-c", "echo from-go"}},
		Name:   "goclient",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := c.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: "not-running"})
	select {
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			t.Fatalf("exit code %d", res.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatal(err)
	}
	logs, err := c.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(logs)
	logs.Close()
	// Multiplexed: an 8-byte header, then the line.
	if len(raw) != 8+len("from-go\n") || raw[0] != 1 || string(raw[8:]) != "from-go\n" {
		t.Fatalf("logs frame: %q", raw)
	}
	_, err = c.ContainerInspect(ctx, "nosuch", client.ContainerInspectOptions{})
	if err == nil || !strings.Contains(err.Error(), "No such container: nosuch") {
		t.Fatalf("inspect of an unknown container: %v", err)
	}
}
