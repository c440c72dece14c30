package build_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/testutil/regserve"
)

// TestPullBase builds FROM an image the store lacks: the builder pulls it
// from a loopback `berth registry serve` (plain HTTP, as docker speaks to
// 127.0.0.0/8) that wants a login, and with --pull pulls it again even
// when present.
func TestPullBase(t *testing.T) {
	d := startDaemon(t)
	// A registry that wants a login: the docker CLI sends a build all its
	// credentials (X-Registry-Config), the builder picks the registry's.
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(pw, []byte("builder:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := regserve.Start(t, binary(t), "--htpasswd", pw)
	base := addr + "/base/busybox:1"
	d.must(d.docker("login", "-u", "builder", "-p", "secret", addr))
	d.must(d.docker("tag", "busybox", base))
	d.must(d.docker("push", base))
	d.must(d.docker("rmi", base))
	dir := contextDir(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo pulled > /p\n"})
	// Logged out: the pull is refused and the build ends with that error
	// (a failed pull inside a build once deadlocked the image store).
	d.must(d.docker("logout", addr))
	if r := d.run(dir, nil, dockerCLI, "build", "-t", "pulled:1", "."); r.code != 1 || !strings.Contains(r.err, "authentication required") {
		t.Errorf("build without credentials: %s", r)
	}
	d.must(d.docker("login", "-u", "builder", "-p", "secret", addr))
	r := d.must(d.run(dir, nil, dockerCLI, "build", "-t", "pulled:1", "."))
	if !strings.Contains(r.out, "1: Pulling from ") {
		t.Errorf("no pull in the output:\n%s", r.out)
	}
	if got := d.must(d.docker("run", "--rm", "pulled:1", "cat", "/p")).out; got != "pulled\n" {
		t.Errorf("run: %q", got)
	}
	r = d.must(d.run(dir, nil, dockerCLI, "build", "--pull", "-t", "pulled:1", "."))
	if !strings.Contains(r.out, "1: Pulling from ") || !strings.Contains(r.out, "Using cache") {
		t.Errorf("--pull: want a pull and then the cache:\n%s", r.out)
	}
}
