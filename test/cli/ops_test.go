package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyCLI: berth cp both ways against a running and a stopped
// container; the tar stream and the refusals match docker's CLI.
func TestCopyCLI(t *testing.T) {
	d := startDaemon(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("via berth"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must("run", "-d", "--name", "c1", testImage, "sh", "-c", "mkdir -p /srv/d && echo in-ctr > /srv/d/x && sleep 1000")
	for i := 0; ; i++ {
		if d.berth("exec", "c1", "test", "-e", "/srv/d/x").code == 0 {
			break
		}
		if i > 200 {
			t.Fatal("container setup did not finish")
		}
	}
	d.must("cp", filepath.Join(host, "f"), "c1:/tmp/")
	mustOut(t, d, "via berth", "exec", "c1", "cat", "/tmp/f")
	d.must("cp", filepath.Join(host, "f"), "c1:/tmp/renamed")
	mustOut(t, d, "via berth", "exec", "c1", "cat", "/tmp/renamed")
	d.must("cp", "c1:/srv/d", filepath.Join(host, "out"))
	if b, err := os.ReadFile(filepath.Join(host, "out", "x")); err != nil || string(b) != "in-ctr\n" {
		t.Fatalf("berth cp of a directory out: %q %v", b, err)
	}
	// "dir/." copies the content.
	if err := os.Mkdir(filepath.Join(host, "content"), 0o755); err != nil {
		t.Fatal(err)
	}
	d.must("cp", "c1:/srv/d/.", filepath.Join(host, "content"))
	if _, err := os.Stat(filepath.Join(host, "content", "x")); err != nil {
		t.Fatalf("berth cp of dir/.: %v", err)
	}
	// The same tar bytes as docker's CLI.
	if out := same(t, d, "cp", "c1:/srv/d", "-"); !strings.Contains(out, "in-ctr") {
		t.Fatalf("berth cp to -: %q", out)
	}
	d.must("stop", "-t", "0", "c1")
	d.must("cp", filepath.Join(host, "f"), "c1:/srv/stopped")
	d.must("cp", "c1:/srv/stopped", filepath.Join(host, "back"))
	if b, err := os.ReadFile(filepath.Join(host, "back")); err != nil || string(b) != "via berth" {
		t.Fatalf("berth cp with a stopped container: %q %v", b, err)
	}
	for _, args := range [][]string{
		{"cp", "nosuch:/etc/passwd", host},
		{"cp", filepath.Join(host, "f"), "nosuch:/tmp"},
		{"cp", "c1:/no/such", host},
		{"cp", "c1:/srv/d", "c1:/tmp"},
		{"cp", "a", "b"},
		{"cp", "c1:/srv/d", filepath.Join(host, "missing", "dir", "x")},
		{"cp", "-", "c1:/srv/d/x"},
	} {
		sameErrors(t, d, args...)
	}
	// Usage errors are worded berth's way; the status is docker's.
	if b, k := d.berth("cp", "c1:/srv/d"), d.docker("cp", "c1:/srv/d"); b.code != k.code {
		t.Errorf("cp with one argument: exit %d, docker %d", b.code, k.code)
	}
}
