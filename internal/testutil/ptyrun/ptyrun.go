// Package ptyrun runs a command with its terminal on a new pty's slave, as a
// user at a terminal would: tests type keystrokes into the master and read
// what the master shows.
package ptyrun

import (
	"bytes"
	"errors"
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

// Height and Width are the pty's size when the command starts.
const (
	Height = 40
	Width  = 100
)

// timeout bounds every wait so a hung command fails the test with its screen
// instead of hanging the run.
const timeout = 10 * time.Second

// Session is one command running on a pty.
type Session struct {
	t      testing.TB
	cmd    *exec.Cmd
	master console.Console
	mu     sync.Mutex
	screen bytes.Buffer
}

// Start runs cmd with stdin, stdout and stderr on a new pty's slave, sized
// Height x Width. The master is closed at the test's cleanup.
func Start(t testing.TB, cmd *exec.Cmd) *Session {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := master.Resize(console.WinSize{Height: Height, Width: Width}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The child holds its own copies; ours must go so the master sees EOF
	// once the child ends.
	defer slave.Close()
	s := &Session{t: t, cmd: cmd, master: master}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.record()
	return s
}

// record copies everything the master shows into the screen until the pty ends.
func (s *Session) record() {
	buf := make([]byte, 4096)
	for {
		n, err := s.master.Read(buf)
		s.mu.Lock()
		s.screen.Write(buf[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Screen is everything the master has shown so far.
func (s *Session) Screen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.screen.String()
}

// Seen reports whether str has appeared on the screen.
func (s *Session) Seen(str string) bool { return strings.Contains(s.Screen(), str) }

// Send types keys into the master.
func (s *Session) Send(keys string) { _, _ = io.WriteString(s.master, keys) }

// Resize changes the pty's size (the command learns of it on SIGWINCH).
func (s *Session) Resize(height, width uint16) error {
	return s.master.Resize(console.WinSize{Height: height, Width: width})
}

// Signal sends sig to the command.
func (s *Session) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// WaitFor fails the test unless str appears on the screen within the timeout.
func (s *Session) WaitFor(str string) {
	s.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.Seen(str) {
			return
		}
	}
	s.t.Fatalf("%q never appeared; screen:\n%q", str, s.Screen())
}

// Wait returns the command's exit code; a command still running after the
// timeout is killed and fails the test.
func (s *Session) Wait() int {
	s.t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		s.t.Fatalf("%s did not end; screen:\n%q", filepath.Base(s.cmd.Path), s.Screen())
		return -1
	}
}
