package build_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInput feeds the builder broken Dockerfiles and contexts through
// the docker CLI: each fails with a clear message (the Dockerfile line
// where there is one), tags nothing, and leaves no container, mount or
// build directory behind (the harness's cleanup checks the last two).
func TestBadInput(t *testing.T) {
	d := startDaemon(t)
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dockerfile string
		args             []string
		code             int
		want             string
	}{
		{"unknown instruction", "FROM busybox\nRUN true\nFOO bar\n", nil, 1,
			"dockerfile parse error on line 3: unknown instruction: FOO"},
		{"failing RUN", "FROM busybox\nRUN echo before\nRUN exit 3\n", nil, 3,
			"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},
		{"missing target", "FROM busybox AS one\nRUN true\n", []string{"--target", "two"}, 1,
			"failed to reach build target two in Dockerfile"},
		{"COPY outside the context", "FROM busybox\nCOPY ../secret /s\n", nil, 1,
			"COPY failed: forbidden path outside the build context: ../secret ()"},
		{"COPY of a missing file", "FROM busybox\nCOPY nope.txt /n\n", nil, 1,
			"dockerfile line 2: COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"},
		{"invalid ARG expansion", "FROM busybox\nARG NAME\nENV GREETING=${NAME:?unset}\n", nil, 1,
			"dockerfile line 3: failed to process \"${NAME:?unset}\": NAME: unset"},
		{"missing stage", "FROM busybox\nCOPY --from=nosuchstage /x /x\n", nil, 1,
			"dockerfile line 2: invalid from flag value nosuchstage"},
		{"COPY --from a later stage", "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n", []string{"--target", "a"}, 1,
			"dockerfile line 2: invalid from flag value b"},
		{"bad EXPOSE", "FROM busybox\nEXPOSE 80/foo\n", nil, 1, "Invalid proto: foo"},
		{"several sources, file destination", "FROM busybox\nCOPY Dockerfile Dockerfile /dst\n", nil, 1,
			"When using COPY with more than one source file, the destination must be a directory and end with a /"},
		{"no FROM", "RUN true\n", nil, 1, "no build stage in current context"},
		{"bad platform", "FROM --platform=linux/s390x busybox\n", nil, 1, "linux/s390x"},
	}
	for _, c := range cases {
		dir := filepath.Join(parent, "ctx")
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(c.dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		r := d.run(dir, nil, dockerCLI, append(append([]string{"build", "-t", "bad:1"}, c.args...), ".")...)
		if r.code != c.code || !strings.Contains(r.out+r.err, c.want) {
			t.Errorf("%s: want exit %d and %q, got %s", c.name, c.code, c.want, r)
		}
		if r := d.docker("image", "inspect", "bad:1"); r.code == 0 {
			t.Errorf("%s: bad:1 was tagged", c.name)
			d.docker("rmi", "bad:1")
		}
	}
	// berth's CLI reports the same and exits with the same codes.
	dir := filepath.Join(parent, "ctx")
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN exit 3\n"), 0o644)
	if r := d.run(dir, nil, binary(t), "build", "."); r.code != 3 || !strings.Contains(r.err, "returned a non-zero code: 3") {
		t.Errorf("berth build of a failing RUN: %s", r)
	}
	if r := d.run(dir, nil, binary(t), "build", "-f", "Nope", "."); r.code != 1 || !strings.Contains(r.err, "Cannot locate specified Dockerfile: Nope") {
		t.Errorf("berth build -f Nope: %s", r)
	}
	if r := d.docker("ps", "-aq"); strings.TrimSpace(r.out) != "" {
		t.Errorf("containers left behind: %s", r.out)
	}
}

// TestInterrupted ends a build in the middle of a RUN (the client goes
// away): the step's container is killed and its snapshot, mounts and
// directories go; the next build starts clean. A daemon killed in a build
// leaves mounts that the next start removes.
func TestInterrupted(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started && sleep 60\n"})
	cmd := exec.Command(dockerCLI, "build", "-t", "int:1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "started" {
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitFor(t, "the RUN container to go", func() bool {
		entries, _ := os.ReadDir(filepath.Join(d.execRoot, "runtime"))
		left, _ := os.ReadDir(filepath.Join(d.root, "builder"))
		return len(entries) == 0 && len(left) == 0
	})
	if r := d.docker("image", "inspect", "int:1"); r.code == 0 {
		t.Errorf("an interrupted build tagged its image")
	}
	// A daemon killed while a build runs: its next start unmounts and
	// removes what the build left (the harness checks mounts at the end).
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo started && sleep 600\n"), 0o644)
	cmd = exec.Command(dockerCLI, "build", "-t", "int:2", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"))
	out, _ = cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc = bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "started" {
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	_ = cmd.Wait()
	// The supervisor still runs the step's container; the next daemon
	// ends it.
	if entries, _ := os.ReadDir(filepath.Join(d.execRoot, "runtime")); len(entries) != 1 {
		t.Errorf("runtime state after the kill: %d containers, want the RUN step's", len(entries))
	}
	d.start()
	waitFor(t, "the orphaned RUN container to go", func() bool {
		entries, _ := os.ReadDir(filepath.Join(d.execRoot, "runtime"))
		return len(entries) == 0
	})
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo again\n"), 0o644)
	d.must(d.run(dir, nil, dockerCLI, "build", "-t", "int:3", "."))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
