package engine_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestStdin: docker run -i feeds the CLI's stdin to the container, and its
// end closes the container's stdin (StdinOnce).
func TestStdin(t *testing.T) {
	d := startDaemon(t)
	out, errOut, code := d.dockerIn(strings.NewReader("hello\n"), "run", "-i", "--rm", testImage, "sh", "-c", "read x; echo got $x")
	if code != 0 || out != "got hello\n" {
		t.Fatalf("docker run -i: exit %d, %q %q", code, out, errOut)
	}
	// cat ends when stdin ends: EOF is passed on.
	out, errOut, code = d.dockerIn(strings.NewReader("a\nb\n"), "run", "-i", "--rm", testImage, "cat")
	if code != 0 || out != "a\nb\n" {
		t.Fatalf("docker run -i cat: exit %d, %q %q", code, out, errOut)
	}
}

// TestTty runs an interactive shell through a real pty: docker run -it
// with the CLI's terminal on a pty's slave, keystrokes on its master.
func TestTty(t *testing.T) {
	d := startDaemon(t)
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerCLI, "run", "-it", "--rm", "--name", "tty", testImage, "sh")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(screen.String(), s) }
	waitFor(t, func() bool { return seen("# ") }, "the shell's prompt")
	// The container's terminal has the size of the CLI's.
	_, _ = io.WriteString(master, "stty size; tty; echo $((6*7))x\r")
	waitFor(t, func() bool { return seen("42x") && seen("40 100") && seen("/dev/") }, "the command's output on the pty")
	_, _ = io.WriteString(master, "exit 7\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Fatalf("docker run -it exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		mu.Lock()
		t.Fatalf("docker run -it did not end; screen:\n%q", screen.String())
	}
}
