package engine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEventsTopStatsPause: the lifecycle shows in docker events (with
// filters and since/until), top lists the container's processes, stats
// reads its cgroup, pause freezes it.
func TestEventsTopStatsPause(t *testing.T) {
	d := startDaemon(t)
	since := fmt.Sprintf("%d", time.Now().Add(-time.Second).Unix())
	d.mustDocker("run", "-d", "--name", "ev", "--label", "team=a", testImage, "sleep", "100")

	out := d.mustDocker("top", "ev")
	if !strings.Contains(out, "PID") || !strings.Contains(out, "sleep 100") {
		t.Fatalf("docker top:\n%s", out)
	}
	out = d.mustDocker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", "ev")
	if f := strings.Fields(out); len(f) < 3 || f[0] != "ev" || f[1] != "1" {
		t.Fatalf("docker stats --no-stream: %q", out)
	}
	code, body := d.request("GET", "/containers/ev/stats?stream=0&one-shot=1", "")
	var st struct {
		Memory struct{ Usage uint64 } `json:"memory_stats"`
		CPU    struct {
			Usage struct {
				Total uint64 `json:"total_usage"`
			} `json:"cpu_usage"`
		} `json:"cpu_stats"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Memory.Usage == 0 || st.CPU.Usage.Total == 0 {
		t.Fatalf("stats one-shot: %d %s", code, body)
	}

	// Streamed: one sample a second, each with the previous as precpu.
	resp, err := d.http().Get("http://berth" + d.api("/containers/ev/stats"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(resp.Body)
	var s1, s2 struct {
		Read    time.Time `json:"read"`
		PreRead time.Time `json:"preread"`
	}
	if err := dec.Decode(&s1); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&s2); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !s2.PreRead.Equal(s1.Read) || s2.Read.Sub(s1.Read) < 900*time.Millisecond {
		t.Fatalf("streamed stats: %+v then %+v", s1, s2)
	}

	d.mustDocker("pause", "ev")
	if out := d.mustDocker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ev"); out != "paused true\n" {
		t.Fatalf("inspect after pause: %q", out)
	}
	if out := d.mustDocker("ps", "--format", "{{.Status}}"); !strings.Contains(out, "(Paused)") {
		t.Fatalf("ps after pause: %q", out)
	}
	if _, errOut, code := d.docker("pause", "ev"); code == 0 || !strings.Contains(errOut, "already paused") {
		t.Fatalf("second pause: %d %q", code, errOut)
	}
	d.mustDocker("unpause", "ev")
	if out := d.mustDocker("exec", "ev", "echo", "thawed"); out != "thawed\n" {
		t.Fatalf("exec after unpause: %q", out)
	}
	// Paused again: exec is refused, kill thaws it so that it can die.
	d.mustDocker("pause", "ev")
	if _, errOut, code := d.docker("exec", "ev", "true"); code == 0 || !strings.Contains(errOut, "is paused") {
		t.Fatalf("exec in a paused container: %d %q", code, errOut)
	}
	d.mustDocker("kill", "ev")
	d.mustDocker("rm", "ev")
	until := fmt.Sprintf("%d", time.Now().Add(time.Second).Unix())

	out = d.mustDocker("events", "--since", since, "--until", until, "--filter", "container=ev", "--format", "{{.Type}} {{.Action}}")
	var actions []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, "exec_") {
			actions = append(actions, l)
		}
	}
	want := "container create,container start,container top,container pause,container unpause,container pause,container kill,container die,container destroy"
	if strings.Join(actions, ",") != want {
		t.Fatalf("docker events:\n%s\nwant %s", out, want)
	}
	out = d.mustDocker("events", "--since", since, "--until", until, "--filter", "event=die", "--filter", "label=team=a",
		"--format", "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
	if out != "ev 137\n" {
		t.Fatalf("docker events --filter event=die: %q", out)
	}
	// docker neither refuses nor applies a filter key it does not know.
	out = d.mustDocker("events", "--since", since, "--until", until, "--filter", "nosuch=1", "--filter", "container=ev", "--filter", "event=die", "--format", "{{.Actor.Attributes.name}}")
	if out != "ev\n" {
		t.Fatalf("events with an unknown filter key: %q", out)
	}
}

// TestContainerPrune removes stopped containers only, minding label filters.
func TestContainerPrune(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("create", "--name", "c1", testImage, "true")
	d.mustDocker("run", "--name", "c2", testImage, "true")
	d.mustDocker("create", "--name", "c3", "--label", "keep=1", testImage, "true")
	d.mustDocker("run", "-d", "--name", "up", testImage, "sleep", "100")
	out := d.mustDocker("container", "prune", "-f", "--filter", "label!=keep=1")
	if !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("docker container prune: %q", out)
	}
	if out := d.mustDocker("ps", "-a", "--format", "{{.Names}}"); out != "up\nc3\n" && out != "c3\nup\n" {
		t.Fatalf("containers after prune: %q", out)
	}
}
