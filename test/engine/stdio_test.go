package engine_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/ptyrun"
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

// ptyDocker runs the docker CLI with its terminal on a new pty's slave, 40x100.
func (d *daemon) ptyDocker(t *testing.T, args ...string) *ptyrun.Session {
	requireDockerCLI(t)
	cmd := exec.Command(dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"), "TERM=xterm")
	return ptyrun.Start(t, cmd)
}

// TestTty runs interactive shells through a real pty: docker run -it and
// docker exec -it with the CLI's terminal on a pty's slave, keystrokes on
// its master; the container's terminal has the CLI's size.
func TestTty(t *testing.T) {
	d := startDaemon(t)
	p := d.ptyDocker(t, "run", "-it", "--name", "tty", testImage, "sh")
	waitFor(t, func() bool { return p.Seen("# ") }, "the shell's prompt")
	p.Send("stty size; tty; echo $((6*7))x\r")
	waitFor(t, func() bool { return p.Seen("42x") && p.Seen("40 100") && p.Seen("/dev/") }, "the command's output on the pty")

	x := d.ptyDocker(t, "exec", "-it", "tty", "sh")
	waitFor(t, func() bool { return x.Seen("# ") }, "the exec shell's prompt")
	x.Send("stty size; echo $((7*7))y\r")
	waitFor(t, func() bool { return x.Seen("49y") && x.Seen("40 100") }, "the exec's output on the pty")
	x.Send("exit 4\r")
	if code := x.Wait(); code != 4 {
		t.Fatalf("docker exec -it exit: %d", code)
	}

	// ctrl-p ctrl-q detaches; the container runs on and can be attached again.
	p.Send("\x10\x11")
	if code := p.Wait(); code != 0 {
		t.Fatalf("detach: exit %d", code)
	}
	if o := d.mustDocker("inspect", "-f", "{{.State.Status}}", "tty"); o != "running\n" {
		t.Fatalf("after detach: %q", o)
	}

	a := d.ptyDocker(t, "attach", "tty")
	a.Send("echo again$((1+1))\r")
	waitFor(t, func() bool { return a.Seen("again2") }, "output through docker attach")
	a.Send("exit 7\r")
	if code := a.Wait(); code != 7 {
		t.Fatalf("docker attach exit: %d", code)
	}
}

// TestDetachKeys: a raw API client (the docker CLI strips the keys itself)
// typing the detach sequence into a tty container's attach ends the
// attach and the container runs on; without a tty docker applies no
// detach keys, and the bytes reach the container.
func TestDetachKeys(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "-d", "-i", "-t", "--name", "dk", testImage, "cat")
	br, conn := d.rawAttach(t, "dk", "ctrl-a,x")
	_, _ = io.WriteString(conn, "hi\n")
	var seen []byte
	for !bytes.Contains(seen, []byte("hi")) {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatalf("echo through attach: %q %v", seen, err)
		}
		seen = append(seen, b)
	}
	_, _ = io.WriteString(conn, "\x01x")
	if rest, err := io.ReadAll(br); err != nil || bytes.Contains(rest, []byte("x")) {
		t.Fatalf("attach after the detach keys: %q %v", rest, err)
	}
	if o := d.mustDocker("inspect", "-f", "{{.State.Status}}", "dk"); o != "running\n" {
		t.Fatalf("container after detach: %q", o)
	}

	d.mustDocker("run", "-d", "-i", "--name", "nt", testImage, "cat")
	br, conn = d.rawAttach(t, "nt", "ctrl-a,x")
	_, _ = io.WriteString(conn, "\x01x\n")
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("echo through a non-tty attach: %v", err)
	}
	line := make([]byte, hdr[7])
	if _, err := io.ReadFull(br, line); err != nil || string(line) != "\x01x\n" {
		t.Fatalf("the detach keys without a tty reached cat as: %q %v", line, err)
	}
}

// rawAttach attaches to a container's stdin and stdout over a hijacked
// API connection with the given detach keys; the reader starts after the
// response headers and has a 10 s deadline.
func (d *daemon) rawAttach(t *testing.T, name, keys string) (*bufio.Reader, net.Conn) {
	conn, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
		d.api("/containers/"+name+"/attach?stream=1&stdin=1&stdout=1&detachKeys="+keys))
	br := bufio.NewReader(conn)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return br, conn
}
