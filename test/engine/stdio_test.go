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

// ptySession runs the docker CLI with its terminal on a pty's slave and
// returns the master's screen and a writer of keystrokes.
type ptySession struct {
	t      *testing.T
	master console.Console
	cmd    *exec.Cmd
	mu     sync.Mutex
	screen bytes.Buffer
}

func (d *daemon) ptyDocker(t *testing.T, args ...string) *ptySession {
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := master.Resize(console.WinSize{Height: 40, Width: 100}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	p := &ptySession{t: t, master: master}
	requireDockerCLI(t)
	p.cmd = exec.Command(dockerCLI, args...)
	p.cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_CONFIG="+filepath.Join(d.root, "docker-config"), "TERM=xterm")
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.screen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *ptySession) seen(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Contains(p.screen.String(), s)
}

func (p *ptySession) send(keys string) { _, _ = io.WriteString(p.master, keys) }

// wait returns the CLI's exit code.
func (p *ptySession) wait() int {
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.t.Fatalf("docker did not end; screen:\n%q", p.screen.String())
		return -1
	}
}

// TestTty runs interactive shells through a real pty: docker run -it and
// docker exec -it with the CLI's terminal on a pty's slave, keystrokes on
// its master; the container's terminal has the CLI's size.
func TestTty(t *testing.T) {
	d := startDaemon(t)
	p := d.ptyDocker(t, "run", "-it", "--name", "tty", testImage, "sh")
	waitFor(t, func() bool { return p.seen("# ") }, "the shell's prompt")
	p.send("stty size; tty; echo $((6*7))x\r")
	waitFor(t, func() bool { return p.seen("42x") && p.seen("40 100") && p.seen("/dev/") }, "the command's output on the pty")

	x := d.ptyDocker(t, "exec", "-it", "tty", "sh")
	waitFor(t, func() bool { return x.seen("# ") }, "the exec shell's prompt")
	x.send("stty size; echo $((7*7))y\r")
	waitFor(t, func() bool { return x.seen("49y") && x.seen("40 100") }, "the exec's output on the pty")
	x.send("exit 4\r")
	if code := x.wait(); code != 4 {
		t.Fatalf("docker exec -it exit: %d", code)
	}

	// ctrl-p ctrl-q detaches; the container runs on and can be attached again.
	p.send("\x10\x11")
	if code := p.wait(); code != 0 {
		t.Fatalf("detach: exit %d", code)
	}
	if o := d.mustDocker("inspect", "-f", "{{.State.Status}}", "tty"); o != "running\n" {
		t.Fatalf("after detach: %q", o)
	}

	a := d.ptyDocker(t, "attach", "tty")
	a.send("echo again$((1+1))\r")
	waitFor(t, func() bool { return a.seen("again2") }, "output through docker attach")
	a.send("exit 7\r")
	if code := a.wait(); code != 7 {
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
