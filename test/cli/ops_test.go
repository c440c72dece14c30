package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
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
	// The whole root, through both CLIs.
	for _, bin := range []string{"berth", "docker"} {
		dst := filepath.Join(host, "root-"+bin)
		r := d.berth("cp", "c1:/", dst)
		if bin == "docker" {
			r = d.docker("cp", "c1:/", dst)
		}
		if _, err := os.Stat(filepath.Join(dst, "srv", "d", "x")); r.code != 0 || err != nil {
			t.Errorf("%s cp c1:/: exit %d %s, %v", bin, r.code, r.err, err)
		}
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
	// On a terminal: the progress line, erased, then docker's summary.
	d.must("start", "c1")
	p := startPty(t, d, "cp", filepath.Join(host, "f"), "c1:/tmp/pty")
	p.WaitFor("Successfully copied 9B (transferred ")
	p.WaitFor(" to c1:/tmp/pty\r\n") // the file's size, then the tar's
	if code := p.Wait(); code != 0 || !strings.Contains(p.Screen(), "Copying to container - ") {
		t.Fatalf("cp on a terminal: exit %d, %q", code, p.Screen())
	}
	p = startPty(t, d, "cp", "c1:/tmp/pty", filepath.Join(host, "from-pty"))
	p.WaitFor("Successfully copied 9B (transferred ")
	p.WaitFor(" to " + filepath.Join(host, "from-pty"))
	if code := p.Wait(); code != 0 || !strings.Contains(p.Screen(), "Copying from container - ") {
		t.Fatalf("cp out on a terminal: exit %d, %q", code, p.Screen())
	}

	// Completion offers "container:".
	if out := d.must("__complete", "cp", "c"); !strings.Contains(out, "c1:\n") {
		t.Errorf("cp completion: %q", out)
	}

	// Usage errors are worded berth's way; the status is docker's.
	if b, k := d.berth("cp", "c1:/srv/d"), d.docker("cp", "c1:/srv/d"); b.code != k.code {
		t.Errorf("cp with one argument: exit %d, docker %d", b.code, k.code)
	}
}

// TestOpsCLI: diff, export, commit, update, system df/prune through berth,
// with docker's CLI giving the same output where the output is the daemon's.
func TestOpsCLI(t *testing.T) {
	d := startDaemon(t)
	d.must("run", "--name", "c1", testImage, "sh", "-c", "echo hi > /hello && rm /etc/group && mkdir /newdir")
	if out := same(t, d, "diff", "c1"); !strings.Contains(out, "A /hello\n") || !strings.Contains(out, "D /etc/group\n") || !strings.Contains(out, "A /newdir\n") {
		t.Errorf("diff: %q", out)
	}
	if out := same(t, d, "export", "c1"); !strings.Contains(out, "hello") {
		t.Errorf("export: %d bytes", len(out))
	}
	dir := t.TempDir()
	d.must("export", "-o", filepath.Join(dir, "c1.tar"), "c1")
	if b, err := os.ReadFile(filepath.Join(dir, "c1.tar")); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("export -o: %v", err)
	}
	id := strings.TrimSpace(d.must("commit", "-m", "msg", "-a", "me", "-c", `CMD ["cat", "/hello"]`, "c1", "snap:1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit: %q", id)
	}
	mustOut(t, d, "hi\n", "run", "--rm", "snap:1")
	mustOut(t, d, "me msg\n", "image", "inspect", "-f", "{{.Author}} {{.Comment}}", "snap:1")
	d.must("run", "-d", "--name", "r1", testImage, "sleep", "1000")
	mustOut(t, d, "r1\n", "update", "-m", "48m", "--memory-swap", "96m", "--cpus", "0.5", "--restart", "unless-stopped", "r1")
	mustOut(t, d, "50331648 500000000 unless-stopped\n", "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}", "r1")
	same(t, d, "ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}")
	// A build leaves build cache for df -v to list.
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+testImage+"\nRUN echo built > /b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must("build", "-q", "-t", "built:1", ctxDir)
	same(t, d, "system", "df")
	same(t, d, "system", "df", "--format", "{{.Type}}: {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}")
	same(t, d, "system", "df", "--format", "json")
	same(t, d, "system", "df", "-v")
	if out := d.must("system", "df", "-v"); !strings.Contains(out, "Images space usage:") || !strings.Contains(out, "snap") || !strings.Contains(out, "r1") {
		t.Errorf("system df -v:\n%s", out)
	}
	for _, args := range [][]string{
		{"diff", "nosuch"}, {"export", "nosuch"}, {"commit", "nosuch"}, {"commit", "c1", "Bad:Name"},
		{"commit", "-c", "RUN true", "c1", "x:1"}, {"update", "-m", "64m", "nosuch"}, {"update", "-m", "1m", "r1"},
		{"update", "r1"}, {"update", "--restart", "bogus", "r1"},
	} {
		sameErrors(t, d, args...)
	}
	d.must("stop", "-t", "0", "r1")
	out := d.must("system", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("system prune -f:\n%s", out)
	}
	if out := d.must("ps", "-aq"); out != "" {
		t.Errorf("containers after system prune: %q", out)
	}
	// "no" is an answer: nothing happens, exit 0.
	d.must("create", "--name", "kept", testImage, "true")
	for _, args := range [][]string{{"system", "prune"}, {"system", "prune", "--volumes", "-a", "--filter", "label=x"}} {
		r := runIn(t, d, "n\n", args...)
		k := runBinIn(t, d, dockerCLI, "n\n", args...)
		if r != k || r.code != 0 || !strings.Contains(r.out, "WARNING! This will remove:\n  - all stopped containers\n") {
			t.Errorf("%v answered no:\nberth  %d %q %q\ndocker %d %q %q", args, r.code, r.out, r.err, k.code, k.out, k.err)
		}
	}
	mustOut(t, d, "kept\n", "ps", "-a", "--format", "{{.Names}}")
	out = d.must("system", "prune", "-a", "-f", "--volumes")
	if !strings.Contains(out, "Deleted Images:\n") || !strings.Contains(out, "untagged: snap:1") {
		t.Errorf("system prune -a -f --volumes:\n%s", out)
	}
}

// runIn runs berth with stdin.
func runIn(t *testing.T, d *daemon, stdin string, args ...string) result {
	t.Helper()
	return runBinIn(t, d, berthBinary(t), stdin, args...)
}

// runBinIn runs bin (berth or docker) against d with stdin.
func runBinIn(t *testing.T, d *daemon, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, d.env()...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLoginCLI: berth login against berth's registry with htpasswd auth
// (wrong then right password), push and pull with the stored credentials,
// logout; the credentials file is docker's, so both CLIs share a login.
func TestLoginCLI(t *testing.T) {
	d := startDaemon(t)
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(pw, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := registry(t, "--htpasswd", pw)
	ref := reg + "/private/bb:1"
	d.must("tag", testImage, ref)
	if r := d.berth("push", ref); r.code == 0 {
		t.Fatalf("push without credentials succeeded: %q", r.out)
	}
	b := runIn(t, d, "wrong\n", "login", "-u", "alice", "--password-stdin", reg)
	k := runBinIn(t, d, dockerCLI, "wrong\n", "login", "-u", "alice", "--password-stdin", reg)
	if b.code != k.code || b.err != k.err || b.code == 0 {
		t.Errorf("login with a wrong password:\nberth  %d %q\ndocker %d %q", b.code, b.err, k.code, k.err)
	}
	b = runIn(t, d, "s3cret\n", "login", "-u", "alice", "--password-stdin", reg)
	if b.code != 0 || b.out != "Login Succeeded\n" {
		t.Fatalf("login: exit %d, %q %q", b.code, b.out, b.err)
	}
	cfg, err := os.ReadFile(filepath.Join(d.dir, "docker-config", "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"`+reg+`"`) {
		t.Fatalf("credentials not stored in docker's config file: %s %v", cfg, err)
	}
	if out := d.must("push", ref); !strings.Contains(out, "1: digest: sha256:") {
		t.Fatalf("push with credentials:\n%s", out)
	}
	d.must("rmi", ref)
	if out := d.must("pull", ref); !strings.Contains(out, "Status: Downloaded newer image for "+ref) && !strings.Contains(out, "Image is up to date") {
		t.Fatalf("pull with credentials:\n%s", out)
	}
	mustOut(t, d, "ok\n", "run", "--rm", ref, "echo", "ok")
	// docker's CLI uses the login berth stored.
	if r := d.docker("push", ref); r.code != 0 {
		t.Fatalf("docker push with berth's login: %d %s", r.code, r.err)
	}
	mustOut(t, d, "Removing login credentials for "+reg+"\n", "logout", reg)
	if r := d.berth("pull", ref); r.code == 0 {
		t.Fatal("pull after logout succeeded")
	}
	same(t, d, "logout", reg)
	sameErrors(t, d, "login", "-u", "alice", "--password-stdin", "-p", "x", reg)
	sameErrors(t, d, "login", "--password-stdin", reg)
}
