package engine_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/regserve"
)

// startRegistry runs `berth registry serve` (deletes allowed) on a free loopback port.
func startRegistry(t *testing.T, flags ...string) string {
	return regserve.Start(t, binary(t), append([]string{"--delete-enabled"}, flags...)...)
}

// TestPushPull: the docker CLI tags an image for berth's registry, pushes
// it, removes every local name (so its blobs go), pulls it back and runs it.
func TestPushPull(t *testing.T) {
	d := startDaemon(t)
	reg := startRegistry(t)
	ref := reg + "/x:1"
	d.mustDocker("tag", testImage, ref)
	if out := d.mustDocker("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, ref) {
		t.Fatalf("docker images after tag: %q", out)
	}
	out := d.mustDocker("push", ref)
	if !strings.Contains(out, "The push refers to repository ["+reg+"/x]") || !strings.Contains(out, "Pushed") ||
		!strings.Contains(out, "1: digest: sha256:") {
		t.Fatalf("docker push output:\n%s", out)
	}
	// A second push finds the layers there.
	if out := d.mustDocker("push", ref); !strings.Contains(out, "Layer already exists") {
		t.Fatalf("second docker push:\n%s", out)
	}
	// The repository's last tag goes, and with it its repo digest.
	out = d.mustDocker("rmi", ref)
	if lines := strings.Split(out, "\n"); len(lines) != 3 || lines[0] != "Untagged: "+ref || !strings.HasPrefix(lines[1], "Untagged: "+reg+"/x@sha256:") {
		t.Fatalf("docker rmi of one of two names: %q", out)
	}
	out = d.mustDocker("rmi", testImage)
	if !strings.HasPrefix(out, "Untagged: busybox:latest\n") || !strings.Contains(out, "Deleted: sha256:") {
		t.Fatalf("docker rmi of the last name: %q", out)
	}
	if out := d.mustDocker("images", "-q"); out != "" {
		t.Fatalf("docker images after rmi: %q", out)
	}
	out = d.mustDocker("pull", ref)
	if !strings.Contains(out, "Pull complete") || !strings.Contains(out, "Digest: sha256:") ||
		!strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Fatalf("docker pull output:\n%s", out)
	}
	if out := d.mustDocker("pull", ref); !strings.Contains(out, "Status: Image is up to date for "+ref) {
		t.Fatalf("second docker pull:\n%s", out)
	}
	if out := d.mustDocker("run", "--rm", ref, "echo", "pulled"); out != "pulled\n" {
		t.Fatalf("run of the pulled image: %q", out)
	}
	// docker run of a missing image pulls it (the CLI's 404 → pull → create).
	d.mustDocker("rmi", ref)
	out, errOut, code := d.docker("run", "--rm", ref, "echo", "auto")
	if code != 0 || out != "auto\n" || !strings.Contains(errOut, "Unable to find image") {
		t.Fatalf("docker run of a missing image: exit %d, %q %q", code, out, errOut)
	}
	events := d.mustDocker("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "type=image", "--format", "{{.Action}}")
	for _, a := range []string{"tag", "push", "untag", "delete", "pull"} {
		if !strings.Contains(events, a+"\n") {
			t.Fatalf("image events lack %s:\n%s", a, events)
		}
	}
	if out := d.mustDocker("image", "inspect", "--format", "{{len .RepoDigests}}", ref); out != "1\n" {
		t.Fatalf("repo digests after pull: %q", out)
	}
	// Errors: an unknown tag in the registry, an unknown local image.
	if _, errOut, code := d.docker("pull", reg+"/x:nosuch"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("pull of an unknown tag: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("push", reg+"/nosuch:1"); code == 0 || !strings.Contains(errOut, "does not exist locally") {
		t.Fatalf("push of an unknown image: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("rmi", "nosuch:1"); code == 0 || !strings.Contains(errOut, "No such image") {
		t.Fatalf("rmi of an unknown image: exit %d, %q", code, errOut)
	}
}

// TestSaveLoadImport: docker save / rmi / load round trip, history,
// import of a root filesystem tarball, prune.
func TestSaveLoadImport(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	tarball := filepath.Join(dir, "bb.tar")
	d.mustDocker("save", "-o", tarball, testImage)
	if st, err := os.Stat(tarball); err != nil || st.Size() < 1<<20 {
		t.Fatalf("docker save wrote %v %v", st, err)
	}
	d.mustDocker("rmi", testImage)
	out := d.mustDocker("load", "-i", tarball)
	if !strings.Contains(out, "Loaded image: busybox:latest") {
		t.Fatalf("docker load: %q", out)
	}
	if out := d.mustDocker("run", "--rm", testImage, "echo", "loaded"); out != "loaded\n" {
		t.Fatalf("run of the loaded image: %q", out)
	}
	// The test image's config records no history: docker shows none.
	if out := d.mustDocker("history", "-q", testImage); out != "" {
		t.Fatalf("docker history: %q", out)
	}

	rootfs := filepath.Join(dir, "rootfs")
	testutil.BusyboxRootfs(t, rootfs)
	var tb bytes.Buffer
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	tar.Stdout = &tb
	if err := tar.Run(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := d.dockerIn(&tb, "import", "-", "imported:1")
	if code != 0 || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("docker import: exit %d, %q %q", code, out, errOut)
	}
	if out := d.mustDocker("run", "--rm", "imported:1", "/bin/echo", "imported"); out != "imported\n" {
		t.Fatalf("run of the imported image: %q", out)
	}
	// From a URL: the daemon downloads the tarball (a loopback server).
	tarBytes, err := exec.Command("tar", "-C", rootfs, "-c", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rootfs.tar" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(tarBytes)
	}))
	defer srv.Close()
	d.mustDocker("import", srv.URL+"/rootfs.tar", "fromurl:1")
	if out := d.mustDocker("run", "--rm", "fromurl:1", "/bin/echo", "from a url"); out != "from a url\n" {
		t.Fatalf("run of the image imported from a URL: %q", out)
	}
	if _, errOut, code := d.docker("import", srv.URL+"/missing.tar", "fromurl:2"); code == 0 || !strings.Contains(errOut, "404") {
		t.Fatalf("import of a missing URL: exit %d, %q", code, errOut)
	}
	d.mustDocker("rmi", "fromurl:1")
	d.mustDocker("tag", "imported:1", "imported:2")
	d.mustDocker("rmi", "imported:1")
	d.mustDocker("create", "--name", "keep", testImage) // an image in use stays
	out = d.mustDocker("image", "prune", "-a", "-f")
	if !strings.Contains(out, "untagged: imported:2") || !strings.Contains(out, "deleted: sha256:") {
		t.Fatalf("docker image prune -a: %q", out)
	}
	if out := d.mustDocker("images", "--format", "{{.Repository}}"); out != "busybox\n" {
		t.Fatalf("images after prune: %q", out)
	}
	// Debian's docker 20.10 says "reference does not exist" here.
	if _, errOut, code := d.docker("save", "nosuch:1"); code == 0 || (!strings.Contains(errOut, "No such image") && !(onDocker && strings.Contains(errOut, "reference does not exist"))) {
		t.Fatalf("save of an unknown image: exit %d, %q", code, errOut)
	}
}

// TestLoginPush: a registry with basic auth; docker login checks the
// credentials through the daemon (/auth), push and pull carry them
// (X-Registry-Auth), and without them the registry refuses.
func TestLoginPush(t *testing.T) {
	d := startDaemon(t)
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(pw, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, "--htpasswd", pw)
	ref := reg + "/private/bb:1"
	d.mustDocker("tag", testImage, ref)
	if _, errOut, code := d.docker("push", ref); code == 0 || !strings.Contains(strings.ToLower(errOut), "auth") {
		t.Fatalf("push without credentials: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.dockerIn(strings.NewReader("wrong"), "login", "-u", "alice", "--password-stdin", reg); code == 0 ||
		!strings.Contains(errOut, "login attempt to http://"+reg+"/v2/ failed with status: 401 Unauthorized") {
		t.Fatalf("login with a wrong password: exit %d, %q", code, errOut)
	}
	out, errOut, code := d.dockerIn(strings.NewReader("secret"), "login", "-u", "alice", "--password-stdin", reg)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: exit %d, %q %q", code, out, errOut)
	}
	if out := d.mustDocker("push", ref); !strings.Contains(out, "1: digest: sha256:") {
		t.Fatalf("push with credentials:\n%s", out)
	}
	d.mustDocker("rmi", ref)
	if out := d.mustDocker("pull", ref); !strings.Contains(out, "Status: Image is up to date for "+ref) &&
		!strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Fatalf("pull with credentials:\n%s", out)
	}
}
