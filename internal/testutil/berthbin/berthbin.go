// Package berthbin builds the berth binary for end-to-end tests, once per
// test process, into its own temp dir so runs from other worktrees never
// share or overwrite it.
package berthbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Binary is a berth binary built on first use. The zero value is ready.
type Binary struct {
	once sync.Once
	path string
	err  error
}

// Path builds berth on the first call and returns its path; a failed build
// fails every test that asks.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = Build() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the built binary's temp dir, if one was built; for TestMain.
func (b *Binary) Remove() {
	if b.path != "" {
		os.RemoveAll(filepath.Dir(b.path))
	}
}

// Build compiles ./cmd/berth (CGO_ENABLED=0) into a new temp dir and returns
// the binary's path; the caller removes its directory.
func Build() (string, error) {
	dir, err := os.MkdirTemp("", "berth-test-bin-")
	if err != nil {
		return "", err
	}
	// Reachable by every user, like an installed binary: processes the
	// tests start under other users may execute it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build berth: %v\n%s", err, out)
	}
	return bin, nil
}
