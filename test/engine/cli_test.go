package engine_test

import (
	"strings"
	"testing"
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
}
