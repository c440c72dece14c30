package cli_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/ptyrun"
)

// TestInteractive: run -i feeds stdin to the container; run -it drives a
// shell through a real pty (typing, the terminal's size, resizing, the
// shell's exit status), and the detach keys leave the container running.
func TestInteractive(t *testing.T) {
	d := startDaemon(t)
	cmd := exec.Command(berthBinary(t), "run", "-i", "--rm", testImage, "sh", "-c", "read x; echo got $x")
	cmd.Env = append(os.Environ(), d.env()...)
	cmd.Stdin = strings.NewReader("hello\n")
	if out, err := cmd.Output(); err != nil || string(out) != "got hello\n" {
		t.Errorf("run -i: %q, %v", out, err)
	}
	// -it with a stdin that is not a terminal: docker's refusal.
	if r := run(t, d.env(), berthBinary(t), "run", "-it", "--rm", testImage, "true"); r.code != 1 || r.err != "the input device is not a TTY\n" {
		t.Errorf("run -it without a terminal: %+v", r)
	}

	p := startPty(t, d, "run", "-it", "--name", "tty", testImage, "sh")
	p.WaitFor("# ")
	p.Send("stty size; echo $((6*7))x\r")
	p.WaitFor("42x")
	p.WaitFor("40 100")
	if err := p.Resize(30, 90); err != nil {
		t.Fatal(err)
	}
	_ = p.Signal(syscall.SIGWINCH) // what a terminal emulator sends on resize
	p.Send("sleep 0.2; stty size\r")
	p.WaitFor("30 90")
	p.Send("exit 7\r")
	if code := p.Wait(); code != 7 {
		t.Errorf("run -it: exit %d, want 7", code)
	}

	p = startPty(t, d, "run", "-it", "--name", "detach", testImage, "sh")
	p.WaitFor("# ")
	p.Send("\x10\x11")
	if code := p.Wait(); code != 0 {
		t.Errorf("detach: exit %d", code)
	}
	if out := d.must("inspect", "-f", "{{.State.Running}}", "detach"); out != "true\n" {
		t.Errorf("after detaching the container should run: %q", out)
	}
	// attach: back into the detached shell, out again with the keys.
	p = startPty(t, d, "attach", "detach")
	p.Send("echo $((6*7))y\r")
	p.WaitFor("42y")
	p.Send("\x10\x11")
	if code := p.Wait(); code != 0 {
		t.Errorf("attach, detach: exit %d", code)
	}
	// attach without a terminal follows the output to the exit status.
	d.must("run", "-d", "--name", "counter", testImage, "sh", "-c", "for i in 1 2 3 4; do sleep 0.3; echo $i; done; exit 6")
	if r := d.berth("attach", "counter"); r.code != 6 || !strings.HasSuffix(r.out, "4\n") {
		t.Errorf("attach: %+v", r)
	}
	sameErrors(t, d, "attach", "counter")
	sameErrors(t, d, "attach", "nosuch")
}

// TestExec: exec's output, exit status, options and errors as docker's;
// exec -i and -it through a pty.
func TestExec(t *testing.T) {
	d := startDaemon(t)
	d.must("run", "-d", "--name", "ex", testImage, "sleep", "100")
	same(t, d, "exec", "ex", "echo", "hi")
	sameErrors(t, d, "exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 5") // exit 5, both streams
	same(t, d, "exec", "-e", "A=1", "-w", "/tmp", "-u", "65534", "ex", "sh", "-c", "echo $A $(pwd) $(id -u)")
	for _, args := range [][]string{{"exec", "ex", "nosuch"}, {"exec", "ex", "/etc"}, {"exec", "nosuch", "true"}} {
		b, k := d.berth(args...), d.docker(args...)
		if b.code != k.code || b.out != k.out {
			t.Errorf("%v: berth exit %d %q, docker exit %d %q", args, b.code, b.err, k.code, k.err)
		}
	}
	sameErrors(t, d, "exec", "nosuch", "true")
	same(t, d, "top", "ex")
	same(t, d, "top", "ex", "-o", "pid,comm")
	// Stateful verbs: berth first, then both CLIs on the now-refused call.
	if out := d.must("pause", "ex"); out != "ex\n" {
		t.Errorf("pause: %q", out)
	}
	sameErrors(t, d, "pause", "ex")
	same(t, d, "ps", "--format", "{{.Names}} {{.Status}}")
	if out := d.must("unpause", "ex"); out != "ex\n" {
		t.Errorf("unpause: %q", out)
	}
	sameErrors(t, d, "unpause", "ex")
	sameErrors(t, d, "top", "nosuch")
	b, k := d.must("stats", "--no-stream"), d.docker("stats", "--no-stream").out
	if hb, _ := columns(b); hb != strings.SplitN(k, "\n", 2)[0] {
		t.Errorf("stats header:\nberth:\n%s\ndocker:\n%s", b, k)
	}
	same(t, d, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.ID}} {{.Container}} {{.NetIO}}", "ex")
	// Live on a terminal: the second table is drawn over the first.
	p := startPty(t, d, "stats", "ex")
	p.WaitFor("\x1b[2A\r\x1b[JCONTAINER ID")
	_ = p.Signal(syscall.SIGINT)
	_ = p.Wait()
	same(t, d, "stats", "--no-stream", "-a", "--no-trunc", "--format", "{{.ID}}")
	if b, k := d.berth("stats", "--no-stream", "nosuch"), d.docker("stats", "--no-stream", "nosuch"); b.code != k.code {
		t.Errorf("stats nosuch: berth %+v, docker %+v", b, k)
	}
	until := strconv.FormatInt(time.Now().Unix()+1, 10)
	for _, args := range [][]string{
		{"events", "--since", "0", "--until", until},
		{"events", "--since", "0", "--until", until, "--filter", "type=container", "--filter", "event=pause"},
		{"events", "--since", "0", "--until", until, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"},
		{"events", "--since", "0", "--until", until, "--format", "{{json .}}"},
	} {
		if out := same(t, d, args...); !strings.Contains(out, "pause") {
			t.Errorf("%v: no pause event: %q", args, out)
		}
	}
	d.must("exec", "-d", "ex", "touch", "/tmp/detached")
	for i := 0; d.berth("exec", "ex", "test", "-f", "/tmp/detached").code != 0; i++ {
		if i == 50 {
			t.Fatal("exec -d did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd := exec.Command(berthBinary(t), "exec", "-i", "ex", "sh", "-c", "read x; echo got $x")
	cmd.Env = append(os.Environ(), d.env()...)
	cmd.Stdin = strings.NewReader("hello\n")
	if out, err := cmd.Output(); err != nil || string(out) != "got hello\n" {
		t.Errorf("exec -i: %q, %v", out, err)
	}
	p = startPty(t, d, "exec", "-it", "ex", "sh")
	p.WaitFor("# ")
	p.Send("stty size; echo $((6*7))x\r")
	p.WaitFor("42x")
	p.WaitFor("40 100")
	p.Send("exit 3\r")
	if code := p.Wait(); code != 3 {
		t.Errorf("exec -it: exit %d, want 3", code)
	}
}

// startPty runs berth with its terminal on a new pty's slave, 40x100.
func startPty(t *testing.T, d *daemon, args ...string) *ptyrun.Session {
	cmd := exec.Command(berthBinary(t), args...)
	cmd.Env = append(os.Environ(), append(d.env(), "TERM=xterm")...)
	return ptyrun.Start(t, cmd)
}
