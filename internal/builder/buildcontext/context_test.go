package buildcontext

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	slices.Sort(out)
	return out
}

// TestTarUnpack sends a directory through Tar and Unpack with docker's
// .dockerignore rules: globs, directories, "**", re-inclusion with "!",
// and the Dockerfile and .dockerignore kept even when excluded.
func TestTarUnpack(t *testing.T) {
	src := t.TempDir()
	write(t, src, map[string]string{
		".dockerignore": "*.log\nsecret\n!secret/keep\n**/*.tmp\nDockerfile\n.dockerignore\n",
		"Dockerfile":    "FROM scratch\n", "a.txt": "a", "b.log": "b", "secret/pw": "x", "secret/keep": "k",
		"deep/er/x.tmp": "t", "deep/er/y": "y",
	})
	patterns, err := ReadIgnore(src)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher(patterns, DefaultDockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Tar(context.Background(), src, m, &buf, map[string][]byte{".dockerfile.x": []byte("FROM busybox\n")}); err != nil {
		t.Fatal(err)
	}
	want := []string{".dockerfile.x", ".dockerignore", "Dockerfile", "a.txt", "deep/er/y", "secret/keep"}
	dst := t.TempDir()
	c, err := Unpack(context.Background(), bytes.NewReader(buf.Bytes()), dst, "Dockerfile")
	if err != nil || c.DockerfileOnly {
		t.Fatal(c, err)
	}
	if slices.Sort(c.Hidden); !slices.Equal(c.Hidden, []string{".dockerignore", "Dockerfile"}) {
		t.Errorf("hidden %v: the excluded Dockerfile and .dockerignore are kept for the builder only", c.Hidden)
	}
	if got := list(t, dst); !slices.Equal(got, want) {
		t.Errorf("unpacked %v, want %v", got, want)
	}
	// The daemon applies the rules itself to a tar that did not.
	var raw bytes.Buffer
	if err := Tar(context.Background(), src, &Matcher{}, &raw, nil); err != nil {
		t.Fatal(err)
	}
	dst = t.TempDir()
	if _, err := Unpack(context.Background(), &raw, dst, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	if got := list(t, dst); !slices.Equal(got, want[1:]) {
		t.Errorf("daemon-side rules: %v, want %v", got, want[1:])
	}
}

// TestUnpackLoneDockerfile: a body that is no tar is the Dockerfile.
func TestUnpackLoneDockerfile(t *testing.T) {
	dst := t.TempDir()
	c, err := Unpack(context.Background(), strings.NewReader("FROM busybox\nRUN true\n"), dst, "")
	if err != nil || !c.DockerfileOnly {
		t.Fatal(c, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, DefaultDockerfile)); string(b) != "FROM busybox\nRUN true\n" {
		t.Errorf("Dockerfile %q", b)
	}
}

// TestUnpackRefusesEscapes: names with "..", and writing through a
// symlink the tar itself planted, are refused.
func TestUnpackRefusesEscapes(t *testing.T) {
	for name, entries := range map[string][]tar.Header{
		"dotdot":  {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}},
		"symlink": {{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			tw.WriteHeader(&h)
		}
		tw.Close()
		if _, err := Unpack(context.Background(), &buf, t.TempDir(), ""); err == nil {
			t.Errorf("%s: unpacked", name)
		}
	}
	if _, err := os.Stat("/tmp/evil"); err == nil {
		t.Errorf("a tar wrote /tmp/evil")
	}
}

// TestExtractDirOverSymlink: a directory entry whose name the tar made a
// symlink before replaces the link; its mode and mtime never reach the
// link's target outside the context.
func TestExtractDirOverSymlink(t *testing.T) {
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []tar.Header{
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "link/", Typeflag: tar.TypeDir, Mode: 0o777},
	} {
		tw.WriteHeader(&h)
	}
	tw.Close()
	dir := t.TempDir()
	if err := Extract(context.Background(), &buf, dir, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the link's target changed: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "link")); err != nil || !fi.IsDir() {
		t.Errorf("link is not a directory: %v", err)
	}
}

// TestExtractHardlinkThroughSymlink: a hard link whose source path goes
// through a symlink the tar planted is refused: it would bring a file from
// outside the context in.
func TestExtractHardlinkThroughSymlink(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, map[string]string{"secret": "s"})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []tar.Header{
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "stolen", Typeflag: tar.TypeLink, Linkname: "link/secret"},
	} {
		tw.WriteHeader(&h)
	}
	tw.Close()
	dir := t.TempDir()
	if err := Extract(context.Background(), &buf, dir, false); err == nil {
		t.Errorf("extracted")
	}
	if _, err := os.Lstat(filepath.Join(dir, "stolen")); err == nil {
		t.Errorf("a file from outside the context came in")
	}
}
