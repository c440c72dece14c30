package build_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// inspect returns an image's config and layers as `docker image inspect`
// shows them.
func (d *daemon) inspect(ref string) (dockerspec.DockerOCIImageConfig, []string, string) {
	d.t.Helper()
	r := d.must(d.docker("image", "inspect", "-f", "{{json .Config}}|{{json .RootFS.Layers}}|{{.Id}}", ref))
	parts := strings.SplitN(strings.TrimSpace(r.out), "|", 3)
	var cfg dockerspec.DockerOCIImageConfig
	var layers []string
	if err := json.Unmarshal([]byte(parts[0]), &cfg); err != nil {
		d.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(parts[1]), &layers); err != nil {
		d.t.Fatal(err)
	}
	return cfg, layers, parts[2]
}

const multiStage = `# a builder stage "compiles" a program, the final stage only copies it
ARG BASE=busybox
FROM ${BASE} AS builder
ARG VERSION=1.0
WORKDIR /src
COPY src/ ./
RUN printf '#!/bin/sh\necho "app %s: $(cat /opt/app/msg.txt) $*"\n' "$VERSION" > /src/app && chmod 755 /src/app

FROM busybox AS unused
RUN echo this stage must not run && exit 1

FROM busybox
LABEL org.example.name=app
ENV APP_HOME=/opt/app MODE=prod
COPY --from=builder /src/app $APP_HOME/bin/app
COPY --from=builder --chown=65534:65534 --chmod=640 /src/msg.txt /opt/app/msg.txt
USER nobody
WORKDIR $APP_HOME
EXPOSE 8080 53/udp
VOLUME /data
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -f /opt/app/msg.txt
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/app/bin/app"]
CMD ["--serve"]
`

// TestMultiStage builds a two-stage Dockerfile with docker's classic
// builder and checks the image: config, layers, file owners and modes,
// the program from the first stage running in the second.
func TestMultiStage(t *testing.T) {
	d := startDaemon(t)
	_, baseLayers, _ := d.inspect("busybox")
	dir := contextDir(t, map[string]string{"Dockerfile": multiStage, "src/msg.txt": "hello from src"})
	r := d.must(d.run(dir, nil, dockerCLI, "build", "--build-arg", "VERSION=2.5", "--label", "built.by=test", "-t", "app:1", "-t", "app:latest", "."))
	if strings.Contains(r.out, "must not run") || strings.Contains(r.out, "exit 1") {
		t.Errorf("the unused stage ran:\n%s", r.out)
	}
	for _, want := range []string{"Step 1/20 : ARG BASE=busybox\nStep 2/20 : FROM ${BASE} AS builder", "Step 7/20 : FROM busybox\n", "Step 20/20 : LABEL built.by=test\n", " ---> Running in ", "Successfully tagged app:1", "Successfully tagged app:latest"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
	cfg, layers, id := d.inspect("app:1")
	if !strings.Contains(r.out, "Successfully built "+strings.TrimPrefix(id, "sha256:")[:12]) {
		t.Errorf("built ID is not %s:\n%s", id, r.out)
	}
	check := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("%s = %s, want %s", what, g, w)
		}
	}
	if !slices.Contains(cfg.Env, "APP_HOME=/opt/app") || !slices.Contains(cfg.Env, "MODE=prod") {
		t.Errorf("Env = %v", cfg.Env)
	}
	for _, e := range cfg.Env {
		if strings.HasPrefix(e, "VERSION=") {
			t.Errorf("a build arg leaked into the image's Env: %v", cfg.Env)
		}
	}
	check("Cmd", cfg.Cmd, []string{"--serve"})
	check("Entrypoint", cfg.Entrypoint, []string{"/opt/app/bin/app"})
	check("WorkingDir", cfg.WorkingDir, "/opt/app")
	check("User", cfg.User, "nobody")
	check("Labels", cfg.Labels, map[string]string{"org.example.name": "app", "built.by": "test"})
	check("ExposedPorts", cfg.ExposedPorts, map[string]struct{}{"8080/tcp": {}, "53/udp": {}})
	check("Volumes", cfg.Volumes, map[string]struct{}{"/data": {}})
	check("StopSignal", cfg.StopSignal, "SIGTERM")
	if h := cfg.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD-SHELL", "test -f /opt/app/msg.txt"}) ||
		h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Retries != 4 {
		t.Errorf("Healthcheck = %+v", cfg.Healthcheck)
	}
	// Two COPY layers on the base; WORKDIR found its directory made.
	if len(layers) != len(baseLayers)+2 || !slices.Equal(layers[:len(baseLayers)], baseLayers) {
		t.Errorf("layers = %v, base %v", layers, baseLayers)
	}
	if out := d.must(d.docker("run", "--rm", "app:1")).out; out != "app 2.5: hello from src --serve\n" {
		t.Errorf("run: %q", out)
	}
	if out := d.must(d.docker("run", "--rm", "--entrypoint", "stat", "app:latest", "-c", "%u:%g %a %n", "/opt/app/msg.txt", "/opt/app/bin/app")).out; out != "65534:65534 640 /opt/app/msg.txt\n0:0 755 /opt/app/bin/app\n" {
		t.Errorf("stat: %q", out)
	}
	if out := d.must(d.docker("run", "--rm", "--entrypoint", "id", "app:1", "-u")).out; out != "65534\n" {
		t.Errorf("id -u: %q", out)
	}
	// --target builds the first stage alone.
	r = d.must(d.run(dir, nil, dockerCLI, "build", "--build-arg", "VERSION=2.5", "--target", "builder", "-t", "app:builder", "."))
	if !strings.Contains(r.out, "Step 6/6 : RUN") || !strings.Contains(r.out, "Using cache") {
		t.Errorf("--target builder:\n%s", r.out)
	}
	if out := d.must(d.docker("run", "--rm", "app:builder", "cat", "/src/app")).out; !strings.Contains(out, "app 2.5:") {
		t.Errorf("the builder stage's program: %q", out)
	}
	if r := d.docker("ps", "-aq"); strings.TrimSpace(r.out) != "" {
		t.Errorf("containers left behind: %s", r.out)
	}
}

// TestCache checks the layer cache with berth's own CLI: a second build
// is all cache hits and runs nothing, a changed file invalidates from its
// COPY on, the cache survives a daemon restart and goes with builder prune.
func TestCache(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{
		"Dockerfile": "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /one /a.txt > /both\nCOPY b.txt /b.txt\nCMD [\"cat\", \"/both\", \"/b.txt\"]\n",
		"a.txt":      "a1\n", "b.txt": "b1\n",
	})
	iid := filepath.Join(t.TempDir(), "iid")
	build := func(args ...string) (string, string) {
		t.Helper()
		r := d.must(d.run(dir, nil, binary(t), append([]string{"build", "--iidfile", iid, "-t", "cache:1"}, append(args, ".")...)...))
		b, err := os.ReadFile(iid)
		if err != nil {
			t.Fatal(err)
		}
		return r.out, string(b)
	}
	out, id1 := build()
	if !strings.HasPrefix(out, "Sending build context to Docker daemon ") {
		t.Errorf("berth build does not say it sends the context, as docker does:\n%s", out)
	}
	if n := strings.Count(out, "Using cache"); n != 0 {
		t.Errorf("cold build used the cache %d times:\n%s", n, out)
	}
	out, id2 := build()
	if n := strings.Count(out, "Using cache"); n != 5 || strings.Contains(out, "Running in") || id1 != id2 {
		t.Errorf("second build: %d cache hits, id %s then %s:\n%s", n, id1, id2, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = build()
	if n := strings.Count(out, "Using cache"); n != 3 || strings.Contains(out, "Running in") {
		t.Errorf("after changing b.txt: %d cache hits (want 3, nothing run):\n%s", n, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = build()
	if n := strings.Count(out, "Using cache"); n != 1 || strings.Count(out, "Running in") != 1 {
		t.Errorf("after changing a.txt: %d cache hits (want 1, one RUN):\n%s", n, out)
	}
	if got := d.must(d.docker("run", "--rm", "cache:1")).out; got != "one\na2\nb2\n" {
		t.Errorf("run: %q", got)
	}
	d.stop()
	d.start()
	out, _ = build()
	if n := strings.Count(out, "Using cache"); n != 5 {
		t.Errorf("after a daemon restart: %d cache hits:\n%s", n, out)
	}
	out, _ = build("--no-cache")
	if strings.Contains(out, "Using cache") {
		t.Errorf("--no-cache used the cache:\n%s", out)
	}
	cacheCount := func() string {
		t.Helper()
		for _, l := range strings.Split(d.must(d.docker("system", "df", "--format", "{{.Type}}={{.TotalCount}}")).out, "\n") {
			if n, ok := strings.CutPrefix(l, "Build Cache="); ok {
				return n
			}
		}
		return "none"
	}
	n0 := cacheCount()
	if n0 == "0" || n0 == "none" {
		t.Errorf("docker system df: build cache count %s", n0)
	}
	// Entries newer than the until filter stay.
	d.must(d.docker("builder", "prune", "-f", "--filter", "until=24h"))
	if n := cacheCount(); n != n0 {
		t.Errorf("builder prune --filter until=24h: %s entries left of %s", n, n0)
	}
	r := d.must(d.docker("builder", "prune", "-f"))
	if n := cacheCount(); n != "0" {
		t.Errorf("docker system df after prune: build cache count %s", n)
	}
	if !strings.Contains(r.out, "Total reclaimed space:") {
		t.Errorf("docker builder prune: %s", r)
	}
	out, _ = build()
	if strings.Contains(out, "Using cache") {
		t.Errorf("the cache survived builder prune:\n%s", out)
	}
	r = d.must(d.berth("builder", "prune", "-f"))
	if !strings.Contains(r.out, "Deleted build cache objects:") {
		t.Errorf("berth builder prune: %s", r)
	}
	if got := d.must(d.docker("run", "--rm", "cache:1")).out; got != "one\na2\nb2\n" {
		t.Errorf("run after prune: %q", got)
	}
}

// TestDockerignore checks .dockerignore's rules both ways: applied by the
// docker CLI before sending, and by the daemon to a raw API tar.
func TestDockerignore(t *testing.T) {
	d := startDaemon(t)
	files := map[string]string{
		"Dockerfile":      "FROM busybox\nCOPY . /ctx/\n",
		".dockerignore":   "*.log\nsecret/\n!secret/keep.txt\n**/*.tmp\n",
		"app.txt":         "app",
		"debug.log":       "no",
		"secret/pw":       "no",
		"secret/keep.txt": "yes",
		"sub/x.tmp":       "no",
		"sub/y.txt":       "yes",
	}
	want := "/ctx/.dockerignore\n/ctx/Dockerfile\n/ctx/app.txt\n/ctx/secret/keep.txt\n/ctx/sub/y.txt\n"
	dir := contextDir(t, files)
	d.must(d.run(dir, nil, dockerCLI, "build", "-t", "ign:cli", "."))
	if got := d.must(d.docker("run", "--rm", "ign:cli", "sh", "-c", "find /ctx -type f | sort")).out; got != want {
		t.Errorf("docker CLI: files %q, want %q", got, want)
	}
	resp := d.postBuild(t, "t=ign:api", tarOf(t, files, false))
	if !strings.Contains(resp, "Successfully tagged ign:api") {
		t.Fatalf("API build: %s", resp)
	}
	if got := d.must(d.docker("run", "--rm", "ign:api", "sh", "-c", "find /ctx -type f | sort")).out; got != want {
		t.Errorf("API (daemon-side rules): files %q, want %q", got, want)
	}
}

// TestParallelStages builds two independent stages that can only finish
// together (each waits, through a shared cache mount, for the other to
// start), so they must run at once; the output still lists the steps in
// order, one stage after the other, as docker's classic builder does.
func TestParallelStages(t *testing.T) {
	d := startDaemon(t)
	wait := func(me, other string) string {
		return `RUN --mount=type=cache,target=/sync,id=sync touch /sync/` + me +
			` && for i in $(seq 300); do [ -e /sync/` + other + ` ] && echo ` + me + ` > /out && exit 0; sleep 0.1; done; exit 1`
	}
	dir := contextDir(t, map[string]string{"Dockerfile": "FROM busybox AS a\n" + wait("a", "b") + "\n" +
		"FROM busybox AS b\n" + wait("b", "a") + "\n" +
		"FROM busybox\nCOPY --from=a /out /a\nCOPY --from=b /out /b\nCMD [\"cat\", \"/a\", \"/b\"]\n"})
	r := d.must(d.run(dir, nil, dockerCLI, "build", "-t", "par:1", "."))
	last := 0
	for _, l := range strings.Split(r.out, "\n") {
		var n, total int
		if _, err := fmt.Sscanf(l, "Step %d/%d :", &n, &total); err == nil {
			if n != last+1 {
				t.Errorf("step %d after step %d:\n%s", n, last, r.out)
			}
			last = n
		}
	}
	if last != 8 {
		t.Errorf("%d steps, want 8:\n%s", last, r.out)
	}
	if got := d.must(d.docker("run", "--rm", "par:1")).out; got != "a\nb\n" {
		t.Errorf("run: %q", got)
	}
}

// TestConcurrentBuilds runs the same build twice at once (same steps, so
// the same layers and cache keys race) and a third that shares the first
// steps: all succeed and their images run.
func TestConcurrentBuilds(t *testing.T) {
	d := startDaemon(t)
	df := "FROM busybox\nRUN echo one > /one\nCOPY f /f\nRUN cat /one /f > /both\nCMD [\"cat\", \"/both\"]\n"
	dirs := []string{
		contextDir(t, map[string]string{"Dockerfile": df, "f": "same\n"}),
		contextDir(t, map[string]string{"Dockerfile": df, "f": "same\n"}),
		contextDir(t, map[string]string{"Dockerfile": df, "f": "other\n"}),
	}
	results := make([]result, len(dirs))
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.run(dir, nil, dockerCLI, "build", "-t", fmt.Sprintf("conc:%d", i), ".")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("build %d: %s", i, r)
		}
	}
	for i, want := range []string{"one\nsame\n", "one\nsame\n", "one\nother\n"} {
		if got := d.must(d.docker("run", "--rm", fmt.Sprintf("conc:%d", i))).out; got != want {
			t.Errorf("conc:%d: %q, want %q", i, got, want)
		}
	}
}
