// Package regserve runs `berth registry serve` for a test on a free loopback
// port. A registry on 127.0.0.0/8 is spoken to over plain HTTP, as docker
// does, so no certificates are needed.
package regserve

import (
	"bytes"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// logTail is how much of the registry's log a failed test shows.
const logTail = 3000

// Start runs `bin registry serve` with its own --addr and --root plus flags,
// waits until it listens and returns its address. At cleanup it gets SIGTERM
// (SIGKILL if it lingers), and a failed test shows the end of its log.
func Start(t testing.TB, bin string, flags ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, append([]string{"registry", "serve", "--addr", addr, "--root", t.TempDir()}, flags...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		testutil.Terminate(cmd.Process, done, 5*time.Second)
		if t.Failed() {
			t.Logf("registry log:\n%s", logs.tail(logTail))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not listen on %s:\n%s", addr, logs.tail(logTail))
		}
	}
}

// lockedBuffer is the registry's log: written by exec's copier, read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
