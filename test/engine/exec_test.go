package engine_test

import (
	"strings"
	"testing"
)

// TestExec: docker exec attached (output, exit code, -e, -w, -u, stdin),
// detached, and errors.
func TestExec(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "--name", "box", "-e", "FROM_CTR=1", testImage, "sleep", "100")
	if out := d.mustDocker("exec", "box", "echo", "hi"); out != "hi\n" {
		t.Fatalf("docker exec echo: %q", out)
	}
	out, errOut, code := d.docker("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 5")
	if code != 5 || out != "out\n" || errOut != "err\n" {
		t.Fatalf("docker exec exit code: %d %q %q", code, out, errOut)
	}
	out = d.mustDocker("exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "box", "sh", "-c", "echo $FOO $FROM_CTR $(pwd) $(id -u)")
	if out != "bar 1 /tmp 65534\n" {
		t.Fatalf("docker exec -e -w -u: %q", out)
	}
	out, errOut, code = d.dockerIn(strings.NewReader("x\ny\n"), "exec", "-i", "box", "wc", "-l")
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("docker exec -i: %d %q %q", code, out, errOut)
	}
	if out := d.mustDocker("exec", "-t", "box", "sh", "-c", "tty; echo $TERM"); out != "/dev/pts/0\r\nxterm\r\n" {
		t.Fatalf("docker exec -t: %q", out)
	}
	if out := d.mustDocker("exec", "box", "sh", "-c", "tty || true"); !strings.Contains(out, "not a tty") {
		t.Fatalf("docker exec without -t: %q", out)
	}
	d.mustDocker("exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d")
	waitFor(t, func() bool { o, _, _ := d.docker("exec", "box", "cat", "/tmp/d"); return o == "detached\n" }, "the detached exec's file")
	if _, errOut, code := d.docker("exec", "box", "/nosuch"); code == 0 {
		t.Fatalf("exec of a missing binary succeeded: %q", errOut)
	}
	// Debian's docker 20.10 prints no message here, only the exit code.
	if _, errOut, code := d.docker("exec", "-u", "nosuchuser", "box", "true"); code != 126 || (!onDocker && !strings.Contains(errOut, "unable to find user nosuchuser")) {
		t.Fatalf("exec as an unknown user: %d %q", code, errOut)
	}
	if _, errOut, code := d.docker("exec", "nosuch", "true"); code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
		t.Fatalf("exec in an unknown container: %d %q", code, errOut)
	}
	d.mustDocker("kill", "box")
	if _, errOut, code := d.docker("exec", "box", "true"); code == 0 || !strings.Contains(errOut, "is not running") {
		t.Fatalf("exec in a stopped container: %d %q", code, errOut)
	}
}
