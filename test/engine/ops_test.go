package engine_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tarNames lists the entry names of a tar stream.
func tarNames(t *testing.T, data string) []string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(data))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v (after %v)", err, names)
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCopy drives docker cp both ways, into a running and a stopped
// container, with tar streams, through a bind mount, and checks that a
// symlink pointing out of the container stays inside it.
func TestCopy(t *testing.T) {
	d := startDaemon(t)
	host := t.TempDir()
	outside := t.TempDir() // a host directory the container must never reach
	writeFile(t, filepath.Join(outside, "secret"), "host secret")
	bind := t.TempDir()
	d.mustDocker("run", "-d", "--name", "c1", "-v", bind+":/data", testImage, "sh", "-c",
		"mkdir -p /srv/dir/sub && echo a > /srv/dir/a && echo b > /srv/dir/sub/b && ln -sfn "+outside+" /escape && ln -sfn /srv/dir /srv/link && touch /ready && sleep 1000")
	waitFor(t, func() bool { _, _, code := d.docker("exec", "c1", "test", "-e", "/ready"); return code == 0 }, "the container's setup")

	// Into a running container: a file, then a directory.
	writeFile(t, filepath.Join(host, "f.txt"), "hello cp")
	d.mustDocker("cp", filepath.Join(host, "f.txt"), "c1:/tmp/")
	if out := d.mustDocker("exec", "c1", "cat", "/tmp/f.txt"); out != "hello cp" {
		t.Fatalf("file copied in: %q", out)
	}
	if err := os.MkdirAll(filepath.Join(host, "tree", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(host, "tree", "deep", "x"), "xx")
	d.mustDocker("cp", filepath.Join(host, "tree"), "c1:/tmp/newtree")
	if out := d.mustDocker("exec", "c1", "cat", "/tmp/newtree/deep/x"); out != "xx" {
		t.Fatalf("directory copied in: %q", out)
	}
	// Out of it: a file, a directory, through a symlinked directory.
	d.mustDocker("cp", "c1:/srv/dir/a", filepath.Join(host, "a"))
	if got := readFile(t, filepath.Join(host, "a")); got != "a\n" {
		t.Fatalf("file copied out: %q", got)
	}
	d.mustDocker("cp", "c1:/srv/dir", filepath.Join(host, "dir"))
	if got := readFile(t, filepath.Join(host, "dir", "sub", "b")); got != "b\n" {
		t.Fatalf("directory copied out: %q", got)
	}
	d.mustDocker("cp", "c1:/srv/link/sub/b", filepath.Join(host, "b"))
	if got := readFile(t, filepath.Join(host, "b")); got != "b\n" {
		t.Fatalf("file through a symlinked directory: %q", got)
	}
	// Tar streams: out with "-", in from "-".
	out := d.mustDocker("cp", "c1:/srv/dir", "-")
	if names := strings.Join(tarNames(t, out), " "); names != "dir/ dir/a dir/sub/ dir/sub/b" {
		t.Fatalf("tar out: %s", names)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	_ = tw.WriteHeader(&tar.Header{Name: "streamed", Mode: 0o600, Size: 3, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("s\n\n"))
	_ = tw.Close()
	if _, errOut, code := d.dockerIn(&tb, "cp", "-", "c1:/tmp"); code != 0 {
		t.Fatalf("cp - c1:/tmp: %d %s", code, errOut)
	}
	if out := d.mustDocker("exec", "c1", "stat", "-c", "%a %s", "/tmp/streamed"); out != "600 3\n" {
		t.Fatalf("streamed file: %q", out)
	}
	// Through the bind mount, both ways.
	d.mustDocker("cp", filepath.Join(host, "f.txt"), "c1:/data/in-bind")
	if got := readFile(t, filepath.Join(bind, "in-bind")); got != "hello cp" {
		t.Fatalf("copy into the bind mount: %q", got)
	}
	writeFile(t, filepath.Join(bind, "from-host"), "fh")
	d.mustDocker("cp", "c1:/data/from-host", filepath.Join(host, "fh"))
	if got := readFile(t, filepath.Join(host, "fh")); got != "fh" {
		t.Fatalf("copy out of the bind mount: %q", got)
	}

	// The symlink /escape points at a host directory by name: inside the
	// container that path does not exist, so nothing of the host is read
	// or written through it.
	if _, errOut, code := d.docker("cp", "c1:/escape/secret", filepath.Join(host, "stolen")); code == 0 ||
		!strings.Contains(errOut, "Could not find the file /escape/secret in container c1") {
		t.Fatalf("cp through an escaping symlink: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(host, "stolen")); err == nil {
		t.Fatal("a host file was copied out through a symlink")
	}
	_, errOut, code := d.docker("cp", filepath.Join(host, "f.txt"), "c1:/escape/planted")
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Fatalf("a file was planted on the host through a symlink (exit %d, %q)", code, errOut)
	}
	// The link itself is reported as a link (the CLI follows it with -L).
	out = d.mustDocker("cp", "c1:/srv/link", "-")
	if names := strings.Join(tarNames(t, out), " "); names != "link" {
		t.Fatalf("tar of a symlink: %s", names)
	}

	// A stopped container: both ways, and the change is there at the
	// next start.
	d.mustDocker("stop", "-t", "0", "c1")
	d.mustDocker("cp", filepath.Join(host, "f.txt"), "c1:/srv/while-stopped")
	d.mustDocker("cp", "c1:/tmp/f.txt", filepath.Join(host, "from-stopped"))
	if got := readFile(t, filepath.Join(host, "from-stopped")); got != "hello cp" {
		t.Fatalf("copy out of a stopped container: %q", got)
	}
	d.mustDocker("cp", "c1:/data/from-host", filepath.Join(host, "fh2"))
	if got := readFile(t, filepath.Join(host, "fh2")); got != "fh" {
		t.Fatalf("copy out of a stopped container's bind mount: %q", got)
	}
	d.mustDocker("start", "c1")
	if out := d.mustDocker("exec", "c1", "cat", "/srv/while-stopped"); out != "hello cp" {
		t.Fatalf("file copied into the stopped container: %q", out)
	}

	// Bad input.
	if _, errOut, code := d.docker("cp", filepath.Join(host, "f.txt"), "nosuch:/tmp"); code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
		t.Errorf("cp to a missing container: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("cp", "nosuch:/etc/passwd", host); code == 0 || !strings.Contains(errOut, "No such container") {
		t.Errorf("cp from a missing container: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("cp", "c1:/no/such/file", host); code == 0 || !strings.Contains(errOut, "Could not find the file /no/such/file in container c1") {
		t.Errorf("cp of a missing path: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("cp", filepath.Join(host, "tree"), "c1:/srv/dir/a"); code == 0 || !strings.Contains(errOut, "cannot") {
		t.Errorf("cp of a directory over a file: exit %d, %q", code, errOut)
	}
	st, body := d.request("HEAD", "/containers/c1/archive?path=/nope", "")
	if st != 404 || body != "" {
		t.Errorf("HEAD of a missing path: %d %q", st, body)
	}
	st, body = d.request("GET", "/containers/c1/archive", "")
	if st != 400 {
		t.Errorf("GET without a path: %d %q", st, body)
	}
}
