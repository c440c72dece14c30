package engine_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunEcho(t *testing.T) {
	d := startDaemon(t)
	out := d.mustDocker("run", "--rm", testImage, "echo", "hi")
	if out != "hi\n" {
		t.Fatalf("docker run echo: got %q", out)
	}
	_, _, code := d.docker("run", testImage, "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 {
		t.Fatalf("exit code: got %d, want 3", code)
	}
	if out := d.mustDocker("ps", "-aq"); len(strings.Fields(out)) != 1 {
		t.Fatalf("docker ps -aq after a --rm run and a plain run: %q", out)
	}
	// A --rm container whose start fails is removed, so the CLI's wait for
	// "removed" ends: exit 127 promptly, nothing left.
	requireDockerCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI, "run", "--rm", testImage, "/no/such/cmd")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"))
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatal("docker run --rm of a missing command hangs")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 127 {
		t.Fatalf("docker run --rm of a missing command: %v, want exit 127", err)
	}
	if out := d.mustDocker("ps", "-aq"); len(strings.Fields(out)) != 1 {
		t.Fatalf("a --rm container whose start failed was left: %q", out)
	}
}

func TestVersionInfo(t *testing.T) {
	d := startDaemon(t)
	out := d.mustDocker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}} {{.Server.Os}}")
	if f := strings.Fields(out); len(f) != 3 || f[2] != "linux" {
		t.Fatalf("docker version: %q", out)
	}
	out = d.mustDocker("info", "--format", "{{.Driver}} {{.LoggingDriver}} {{.Images}}")
	// berth names its driver as docker 25+ with the containerd image store
	// does; Debian's docker 20.10 says overlay2.
	if out != "overlayfs json-file 1\n" && !(onDocker && out == "overlay2 json-file 1\n") {
		t.Fatalf("docker info: %q", out)
	}
	out = d.mustDocker("images", "--format", "{{.Repository}}:{{.Tag}}")
	if out != "busybox:latest\n" {
		t.Fatalf("docker images: %q", out)
	}
	out = d.mustDocker("image", "inspect", "--format", "{{.Os}} {{len .RootFS.Layers}}", testImage)
	if !strings.HasPrefix(out, "linux ") {
		t.Fatalf("docker image inspect: %q", out)
	}
}

func TestDetachedLifecycle(t *testing.T) {
	d := startDaemon(t)
	id := strings.TrimSpace(d.mustDocker("run", "-d", "--name", "web", "--label", "app=web", testImage,
		"sh", "-c", "trap 'exit 143' TERM; echo started; echo oops >&2; sleep 100 & wait"))
	if len(id) != 64 {
		t.Fatalf("docker run -d: id %q", id)
	}
	out := d.mustDocker("ps", "--format", "{{.Names}} {{.Status}}")
	if !strings.HasPrefix(out, "web Up ") {
		t.Fatalf("docker ps: %q", out)
	}
	if out := d.mustDocker("ps", "-q", "--filter", "label=app=web"); strings.TrimSpace(out) != id[:12] {
		t.Fatalf("docker ps --filter label: %q", out)
	}
	if out := d.mustDocker("ps", "-q", "--filter", "label=app=db"); out != "" {
		t.Fatalf("docker ps --filter label=app=db: %q", out)
	}
	out = d.mustDocker("inspect", "--format", "{{.State.Status}} {{.State.Running}} {{.Name}} {{.Config.Labels.app}}", "web")
	if out != "running true /web web\n" {
		t.Fatalf("docker inspect: %q", out)
	}
	waitFor(t, func() bool {
		o, e, _ := d.docker("logs", "web")
		return o == "started\n" && e == "oops\n"
	}, "docker logs to show both streams")
	if o, _, _ := d.docker("logs", "--timestamps", "web"); !strings.HasSuffix(o, "Z started\n") {
		t.Fatalf("docker logs --timestamps: %q", o)
	}
	// A name in use: 409 with docker's message.
	_, errOut, code := d.docker("run", "-d", "--name", "web", testImage, "true")
	if code == 0 || !strings.Contains(errOut, `Conflict. The container name "/web" is already in use by container "`+id+`"`) {
		t.Fatalf("name conflict: exit %d, %q", code, errOut)
	}
	d.mustDocker("rename", "web", "web2")
	start := time.Now()
	d.mustDocker("stop", "-t", "5", "web2")
	if time.Since(start) > 4*time.Second {
		t.Fatalf("docker stop took %v: the trap should end the container at SIGTERM", time.Since(start))
	}
	out = d.mustDocker("wait", "web2")
	if strings.TrimSpace(out) != "143" {
		t.Fatalf("docker wait after stop: %q", out)
	}
	out = d.mustDocker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "web2")
	if out != "exited 143\n" {
		t.Fatalf("docker inspect after stop: %q", out)
	}
	// Restart an exited container and see the log continue.
	d.mustDocker("start", "web2")
	waitFor(t, func() bool { o, _, _ := d.docker("logs", "web2"); return o == "started\nstarted\n" }, "second start's output")
	d.mustDocker("kill", "web2")
	d.mustDocker("rm", "web2")
	if out := d.mustDocker("ps", "-aq"); out != "" {
		t.Fatalf("docker ps -aq after rm: %q", out)
	}
}

func TestBadInput(t *testing.T) {
	d := startDaemon(t)
	for _, args := range [][]string{{"container", "inspect", "nosuch"}, {"rm", "nosuch"}, {"stop", "nosuch"}, {"logs", "nosuch"}} {
		_, errOut, code := d.docker(args...)
		if code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
			t.Errorf("docker %v: exit %d, %q", args, code, errOut)
		}
	}
	// docker 24+ answers 400 "invalid JSON: …"; Debian's 20.10 still a 500.
	resp, body := d.request("POST", d.api("/containers/create"), "{not json")
	if (resp != 400 || !strings.Contains(body, `"message":"invalid JSON`)) && !(onDocker && resp == 500) {
		t.Errorf("malformed create body: %d %s", resp, body)
	}
	resp, body = d.request("GET", d.api("/containers/nosuch/json"), "")
	if resp != 404 || body != `{"message":"No such container: nosuch"}`+"\n" {
		t.Errorf("unknown container: %d %q", resp, body)
	}
	resp, body = d.request("GET", d.api("/nothing/here"), "")
	if resp != 404 || !strings.Contains(body, `"message":"page not found"`) {
		t.Errorf("unknown route: %d %s", resp, body)
	}
	resp, body = d.request("GET", "/v9.99/info", "")
	if resp != 400 || !strings.Contains(body, "too new") {
		t.Errorf("version too new: %d %s", resp, body)
	}
	resp, body = d.request("POST", "/containers/create?name=bad%20name", `{"Image":"busybox"}`)
	if resp != 400 || !strings.Contains(body, "Invalid container name") {
		t.Errorf("invalid name: %d %s", resp, body)
	}
	resp, body = d.request("POST", "/containers/create", `{"Image":"nosuchimage:1"}`)
	if resp != 404 || !strings.Contains(body, "No such image: nosuchimage:1") {
		t.Errorf("unknown image: %d %s", resp, body)
	}
	d.mustDocker("create", "--name", "c1", testImage, "true")
	_, errOut, code := d.docker("kill", "c1")
	if code == 0 || !strings.Contains(errOut, "is not running") {
		t.Errorf("kill of a created container: exit %d, %q", code, errOut)
	}
	if out := d.mustDocker("ps", "-a", "--format", "{{.Names}} {{.Status}}"); out != "c1 Created\n" {
		t.Errorf("state after bad input: %q", out)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (d *daemon) request(method, path, body string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunOptions(t *testing.T) {
	d := startDaemon(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := d.mustDocker("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "--tmpfs", "/scratch",
		"--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", "--read-only", "--cap-drop", "ALL",
		"-v", host+":/data:ro", testImage,
		"sh", "-c", `echo $FOO $(pwd) $(id -u) $(cat /data/f); touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs; touch /data/z 2>/dev/null || echo bind-ro; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; ip link show lo | grep -q UP && echo lo-up`)
	want := "bar /tmp 65534 from-host\nro\ntmpfs\nbind-ro\n50\nlo-up\n"
	if out != want {
		t.Fatalf("docker run with options:\ngot  %q\nwant %q", out, want)
	}
}
