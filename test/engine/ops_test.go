package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
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
	// An entry through a symlink of the container (/srv/link -> /srv/dir)
	// lands where the link leads inside the container, as in docker.
	tb.Reset()
	tw = tar.NewWriter(&tb)
	_ = tw.WriteHeader(&tar.Header{Name: "link/via-link", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("vl"))
	_ = tw.Close()
	if _, errOut, code := d.dockerIn(&tb, "cp", "-", "c1:/srv"); code != 0 {
		t.Fatalf("cp - through a link: %d %s", code, errOut)
	}
	if out := d.mustDocker("exec", "c1", "cat", "/srv/dir/via-link"); out != "vl" {
		t.Fatalf("file through a link: %q", out)
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
	// The whole root: docker's names start with "/".
	names := tarNames(t, d.mustDocker("cp", "c1:/", "-"))
	if len(names) < 10 || names[0] != "/" || !slices.Contains(names, "/bin/busybox") || !slices.Contains(names, "/srv/dir/a") {
		t.Fatalf("tar of /: %v…", names[:min(len(names), 5)])
	}
	// A trailing slash asks for a directory.
	if _, errOut, code := d.docker("cp", "c1:/srv/dir/a/", "-"); code == 0 || !strings.Contains(errOut, "not a directory") {
		t.Errorf("cp of a file with a trailing slash: exit %d, %q", code, errOut)
	}
	// The link itself is reported as a link (the CLI follows it with -L).
	out = d.mustDocker("cp", "c1:/srv/link", "-")
	if names := strings.Join(tarNames(t, out), " "); names != "link" {
		t.Fatalf("tar of a symlink: %s", names)
	}

	// The files the daemon writes for the container show as it sees them.
	d.mustDocker("run", "-d", "--name", "named", "--hostname", "myhost", testImage, "sleep", "1000")
	if out := d.mustDocker("cp", "named:/etc/hostname", "-"); !strings.Contains(out, "myhost\n") {
		t.Errorf("cp of /etc/hostname: %q", out)
	}
	if out := d.mustDocker("cp", "named:/etc/hosts", "-"); !strings.Contains(out, "localhost") {
		t.Errorf("cp of /etc/hosts: %q", out)
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

	// A read-only rootfs and a read-only bind refuse a copy, a writable
	// bind takes it; the bind mount points are changes, as in docker.
	robind := t.TempDir()
	d.mustDocker("run", "-d", "--name", "ro", "--read-only", "-v", robind+":/rob:ro", "-v", bind+":/rwb", testImage, "sleep", "1000")
	for dst, want := range map[string]string{"ro:/tmp": "container rootfs is marked read-only", "ro:/rob": "mounted volume is marked read-only"} {
		if _, errOut, code := d.docker("cp", filepath.Join(host, "f.txt"), dst); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("cp to %s: exit %d, %q", dst, code, errOut)
		}
	}
	d.mustDocker("cp", filepath.Join(host, "f.txt"), "ro:/rwb/via-ro")
	if got := readFile(t, filepath.Join(bind, "via-ro")); got != "hello cp" {
		t.Errorf("cp into a writable bind of a read-only container: %q", got)
	}
	if out := d.mustDocker("diff", "ro"); sortLines(out) != "A /rob\nA /rwb" {
		t.Errorf("diff of bind mount points: %q", out)
	}

	// A stopped container's device-backed volume is mounted for the copy:
	// the file goes to the tmpfs, not to the directory under it.
	if !onDocker {
		d.mustDocker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "tv")
		d.mustDocker("create", "--name", "tvc", "-v", "tv:/data", testImage, "true")
		d.mustDocker("cp", filepath.Join(host, "f.txt"), "tvc:/data/f")
		if ents, err := os.ReadDir(filepath.Join(d.root, "volumes", "tv", "_data")); err != nil || len(ents) != 0 {
			t.Errorf("cp into a stopped container's tmpfs volume wrote under it: %v %v", ents, err)
		}
	}

	// -a: the files take the container user's ids; without it the tar's.
	d.mustDocker("create", "--name", "owned", "-u", "nobody", testImage, "true")
	if err := os.Chown(filepath.Join(host, "f.txt"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	d.mustDocker("cp", "-a", filepath.Join(host, "f.txt"), "owned:/tmp/a")
	d.mustDocker("cp", filepath.Join(host, "f.txt"), "owned:/tmp/plain")
	out = d.mustDocker("cp", "owned:/tmp", "-")
	tr := tar.NewReader(strings.NewReader(out))
	owners := map[string]string{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		owners[h.Name] = fmt.Sprintf("%d:%d", h.Uid, h.Gid)
	}
	if owners["tmp/a"] != "65534:65534" || owners["tmp/plain"] != "1234:5678" {
		t.Errorf("owners after cp -a and cp: %v", owners)
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

// TestDiffExportCommit: docker diff after files are touched and removed,
// docker export's tar, docker commit (with --change) and a run of the
// committed image seeing the change; sizes in ps -s, inspect -s and
// system df.
func TestDiffExportCommit(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "--name", "c1", testImage, "sh", "-c",
		"mkdir -p /added/new && echo data > /added/new/file && echo changed >> /etc/group && rm /etc/passwd && touch /tmp/t")
	out := d.mustDocker("diff", "c1")
	want := "C /etc\nD /etc/passwd\nC /etc/group\nA /added\nA /added/new\nA /added/new/file\nC /tmp\nA /tmp/t\n"
	if sortLines(out) != sortLines(want) {
		t.Fatalf("docker diff:\n%s\nwant (in any order):\n%s", out, want)
	}
	// A directory comes before what changed in it.
	if strings.Index(out, "C /etc\n") > strings.Index(out, "/etc/group") || strings.Index(out, "A /added\n") > strings.Index(out, "A /added/new\n") {
		t.Fatalf("docker diff order:\n%s", out)
	}

	dir := t.TempDir()
	d.mustDocker("export", "-o", filepath.Join(dir, "c1.tar"), "c1")
	names := tarNames(t, readFile(t, filepath.Join(dir, "c1.tar")))
	has := func(n string) bool { i := sort.SearchStrings(names, n); return i < len(names) && names[i] == n }
	if !has("added/new/file") || !has("bin/busybox") || !has("etc/group") || has("etc/passwd") {
		t.Fatalf("docker export: %d entries, added/new/file %v bin/busybox %v etc/passwd %v", len(names), has("added/new/file"), has("bin/busybox"), has("etc/passwd"))
	}
	if out := d.mustDocker("export", "c1"); len(tarNames(t, out)) != len(names) {
		t.Fatal("docker export to stdout differs from -o")
	}

	id := strings.TrimSpace(d.mustDocker("commit", "-a", "me", "-m", "a message", "-c", "ENV COMMITTED=yes", "-c", `CMD ["cat", "/added/new/file"]`, "c1", "committed:v1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("docker commit: %q", id)
	}
	if out := d.mustDocker("run", "--rm", "committed:v1"); out != "data\n" {
		t.Fatalf("run of the committed image: %q", out)
	}
	if out := d.mustDocker("run", "--rm", "committed:v1", "sh", "-c", "echo $COMMITTED; test -e /etc/passwd || echo gone"); out != "yes\ngone\n" {
		t.Fatalf("env and deletion in the committed image: %q", out)
	}
	out = d.mustDocker("image", "inspect", "-f", "{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}", "committed:v1")
	base := d.mustDocker("image", "inspect", "-f", "{{len .RootFS.Layers}}", testImage)
	if out != "me|a message|"+strings.TrimSpace(base)+"\n" && !strings.HasPrefix(out, "me|") {
		t.Fatalf("committed image: %q (base layers %s)", out, base)
	}
	if out := d.mustDocker("history", "--format", "{{.Comment}}", "committed:v1"); !strings.HasPrefix(out, "a message\n") {
		t.Fatalf("history of the committed image: %q", out)
	}
	// The base has no history: berth pads it, so the commit's entry pairs
	// with the commit's own small layer (dockerd pairs it with the base's).
	if out := d.mustDocker("history", "--format", "{{.Size}}", "committed:v1"); !onDocker && (strings.Contains(strings.SplitN(out, "\n", 2)[0], "MB") || strings.Count(out, "\n") < 2) {
		t.Errorf("history sizes of the committed image: %q", out)
	}
	// The container's healthcheck goes with the image.
	d.mustDocker("create", "--name", "hc", "--health-cmd", "true", "--health-retries", "7", testImage, "true")
	d.mustDocker("commit", "hc", "committed:hc")
	if out := d.mustDocker("image", "inspect", "-f", "{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Retries}}", "committed:hc"); out != `["CMD-SHELL","true"] 7`+"\n" {
		t.Fatalf("healthcheck of the committed image: %q", out)
	}
	// (Expansion sees the env before the instruction, as in a Dockerfile.)
	d.mustDocker("commit", "-c", "HEALTHCHECK --interval=5s CMD test -e /", "-c", "ONBUILD RUN true", "-c", "ENV A=1 B=$A", "hc", "committed:hc2")
	if out := d.mustDocker("image", "inspect", "-f", "{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{json .Config.OnBuild}} {{json .Config.Env}}", "committed:hc2"); !strings.HasPrefix(out, `["CMD-SHELL","test -e /"] 5s ["RUN true"] [`) || !strings.Contains(out, `"A=1","B="]`) {
		t.Fatalf("commit --change HEALTHCHECK/ONBUILD/ENV: %q", out)
	}
	d.mustDocker("rm", "hc")
	d.mustDocker("rmi", "committed:hc", "committed:hc2")
	// docker import --change with the exported tar.
	d.mustDocker("import", "--change", "ENV X=imported", "--change", `CMD ["sh", "-c", "echo $X; cat /added/new/file"]`, filepath.Join(dir, "c1.tar"), "imported:1")
	if out := d.mustDocker("run", "--rm", "imported:1"); out != "imported\ndata\n" {
		t.Fatalf("run of an image imported with --change: %q", out)
	}
	d.mustDocker("rmi", "imported:1")
	// A running container is paused while committed, and runs on.
	d.mustDocker("run", "-d", "--name", "r1", testImage, "sh", "-c", "echo x > /made; sleep 1000")
	waitFor(t, func() bool { _, _, code := d.docker("exec", "r1", "test", "-e", "/made"); return code == 0 }, "r1's file")
	d.mustDocker("commit", "r1", "committed:running")
	if out := d.mustDocker("inspect", "-f", "{{.State.Status}}", "r1"); out != "running\n" {
		t.Fatalf("state after commit: %q", out)
	}
	if out := d.mustDocker("run", "--rm", "committed:running", "cat", "/made"); out != "x\n" {
		t.Fatalf("committed running container: %q", out)
	}

	// Sizes: c1 wrote a few bytes.
	out = d.mustDocker("ps", "-a", "-s", "--filter", "name=c1", "--format", "{{.Size}}")
	if !strings.Contains(out, "B (virtual ") {
		t.Fatalf("ps -s: %q", out)
	}
	out = d.mustDocker("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "c1")
	var rw, rootfs int64
	if _, err := fmt.Sscan(out, &rw, &rootfs); err != nil || rw < 5 || rw > 4096 || rootfs <= rw {
		t.Fatalf("inspect -s: %q", out)
	}
	d.mustDocker("run", "--rm", "-v", "vol1:/v", testImage, "sh", "-c", "echo hi > /v/f")
	out = d.mustDocker("system", "df")
	if !strings.HasPrefix(out, "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          3         ") ||
		!strings.Contains(out, "\nContainers      2         1         ") ||
		!strings.Contains(out, "\nLocal Volumes   1         0         3B        3B (100%)") || !strings.Contains(out, "\nBuild Cache     0         0         0B        0B") {
		t.Fatalf("system df:\n%s", out)
	}
	if out := d.mustDocker("system", "df", "-v"); !strings.Contains(out, "committed") || !strings.Contains(out, "c1") {
		t.Fatalf("system df -v:\n%s", out)
	}

	// Bad input changes nothing.
	images := d.mustDocker("images", "-q")
	if _, errOut, code := d.docker("commit", "c1", "Bad/Name"); code == 0 || !strings.Contains(errOut, "invalid reference format: repository name") || !strings.Contains(errOut, "must be lowercase") {
		t.Errorf("commit to a bad name: exit %d, %q", code, errOut)
	}
	// dockerd 20.10 answers 500 here (a bug fixed later), berth docker's 400.
	if st, body := d.request("POST", "/commit?container=c1&repo=Bad", ""); (st != 400 && !(onDocker && st == 500)) || !strings.Contains(body, "must be lowercase") {
		t.Errorf("API commit to a bad name: %d %s", st, body)
	}
	if _, errOut, code := d.docker("commit", "-c", "RUN true", "c1", "x:1"); code == 0 || !strings.Contains(errOut, "run is not a valid change command") {
		t.Errorf("commit with a bad change: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{"diff", "nosuch"}, {"export", "nosuch"}, {"commit", "nosuch"}} {
		if _, errOut, code := d.docker(args...); code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
			t.Errorf("docker %v: exit %d, %q", args, code, errOut)
		}
	}
	// (dockerd 20.10 keeps an image of the refused --change commit.)
	if out := d.mustDocker("images", "-q"); out != images && !onDocker {
		t.Errorf("images after bad commits: %q, before %q", out, images)
	}

	// docker system prune calls the prune endpoints one by one: the
	// stopped c1 and the images no container uses go, the running r1 and
	// its image stay.
	out = d.mustDocker("system", "prune", "-a", "-f", "--volumes")
	if !strings.Contains(out, "Deleted Containers:\n") || !strings.Contains(out, "untagged: committed:v1") || !strings.Contains(out, "Total reclaimed space: ") {
		t.Errorf("system prune:\n%s", out)
	}
	if out := d.mustDocker("ps", "-a", "--format", "{{.Names}}"); out != "r1\n" {
		t.Errorf("containers after system prune: %q", out)
	}
	if out := d.mustDocker("images", "--format", "{{.Repository}}"); out != "busybox\n" {
		t.Errorf("images after system prune: %q", out)
	}
}

// TestDiffKinds: what overlayfs does behind docker diff's back (an opaque
// directory replacing one of the image's, a copy-up for a hardlink or a
// chmod, a rename, a removed directory) gives docker's lines.
func TestDiffKinds(t *testing.T) {
	d := startDaemon(t)
	d.mustDocker("run", "--name", "kinds", testImage, "sh", "-c",
		"rm -rf /usr && mkdir /usr && touch /usr/x; chmod 600 /etc/group; mv /etc/passwd /etc/pw; ln /bin/busybox /hl; mkdir -p /a/b/c; rmdir /tmp")
	want := "A /a\nA /a/b\nA /a/b/c\nC /etc\nA /etc/pw\nC /etc/group\nD /etc/passwd\nA /hl\nD /tmp\nC /usr\nA /usr/x\nD /usr/bin\nD /usr/sbin\nD /usr/share\n"
	if out := d.mustDocker("diff", "kinds"); sortLines(out) != sortLines(want) {
		t.Fatalf("docker diff:\n%s\nwant (in any order):\n%s", out, want)
	}
}

func sortLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// TestUpdate: docker update of a running container's memory reaches its
// cgroup (v1 memory.limit_in_bytes) and its HostConfig; a stopped
// container's update applies at the next start.
func TestUpdate(t *testing.T) {
	d := startDaemon(t)
	id := strings.TrimSpace(d.mustDocker("run", "-d", "--name", "u1", "-m", "64m", testImage, "sleep", "1000"))
	cg := cgroupFile(t, d, id, "memory", "memory.limit_in_bytes", "memory.max")
	if got := strings.TrimSpace(readFile(t, cg)); got != "67108864" {
		t.Fatalf("memory limit before update: %s", got)
	}
	if out := d.mustDocker("update", "-m", "96m", "--memory-swap", "200m", "--cpu-shares", "512", "--pids-limit", "77", "--restart", "on-failure:3", "u1"); out != "u1\n" && !(onDocker && strings.HasPrefix(out, "u1\n")) {
		t.Fatalf("docker update output: %q", out)
	}
	if got := strings.TrimSpace(readFile(t, cg)); got != "100663296" {
		t.Fatalf("memory limit after update: %s", got)
	}
	if got := strings.TrimSpace(readFile(t, cgroupFile(t, d, id, "pids", "pids.max", "pids.max"))); got != "77" {
		t.Fatalf("pids limit after update: %s", got)
	}
	d.mustDocker("update", "--cpus", "0.5", "u1")
	if got := strings.TrimSpace(readFile(t, cgroupFile(t, d, id, "cpu", "cpu.cfs_quota_us", "cpu.max"))); got != "50000" && got != "50000 100000" {
		t.Fatalf("cpu quota after update --cpus 0.5: %s", got)
	}
	out := d.mustDocker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.CPUShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "u1")
	if out != "100663296 512 77 on-failure:3\n" {
		t.Fatalf("inspect after update: %q", out)
	}
	d.mustDocker("stop", "-t", "0", "u1")
	d.mustDocker("update", "-m", "80m", "u1")
	d.mustDocker("start", "u1")
	if got := strings.TrimSpace(readFile(t, cgroupFile(t, d, id, "memory", "memory.limit_in_bytes", "memory.max"))); got != "83886080" {
		t.Fatalf("memory limit of a stopped container's update after start: %s", got)
	}
	if _, errOut, code := d.docker("update", "-m", "1m", "u1"); code == 0 || !strings.Contains(errOut, "Minimum memory limit allowed is 6MB") {
		t.Errorf("update below the minimum: exit %d, %q", code, errOut)
	}
	if !onDocker {
		if _, errOut, code := d.docker("update", "--cpuset-cpus", "0", "u1"); code == 0 || !strings.Contains(errOut, "updating --cpuset-cpus is not supported by berth") {
			t.Errorf("update of a limit berth does not set: exit %d, %q", code, errOut)
		}
	}
	if _, errOut, code := d.docker("update", "-m", "64m", "nosuch"); code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
		t.Errorf("update of a missing container: exit %d, %q", code, errOut)
	}
	d.mustDocker("run", "-d", "--rm", "--name", "auto", testImage, "sleep", "1000")
	// Without a limit there is no swap limit either: docker wants both.
	if _, errOut, code := d.docker("update", "-m", "64m", "auto"); code == 0 || !strings.Contains(errOut, "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time") {
		t.Errorf("memory update without a swap limit: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.docker("update", "--restart", "always", "auto"); code == 0 || !strings.Contains(errOut, "Restart policy cannot be updated because AutoRemove is enabled for the container") {
		t.Errorf("restart policy of an --rm container: exit %d, %q", code, errOut)
	}
}

// cgroupFile finds a container's cgroup file from its init's
// /proc/PID/cgroup: v1 under the controller's hierarchy, else v2's.
func cgroupFile(t *testing.T, d *daemon, ref, controller, v1, v2 string) string {
	t.Helper()
	pid := strings.TrimSpace(d.mustDocker("inspect", "-f", "{{.State.Pid}}", ref))
	data := readFile(t, "/proc/"+pid+"/cgroup")
	for _, l := range strings.Split(data, "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, f[2], v1)
			}
		}
	}
	for _, l := range strings.Split(data, "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join("/sys/fs/cgroup/unified", rest, v2)
		}
	}
	t.Fatalf("no %s cgroup for %s in %q", controller, ref, data)
	return ""
}

// TestOpsGoClient drives the archive, changes, update and df endpoints
// through the Go client: the stat header's fields, a tar put and read
// back, the typed changes, the new /system/df shape (API 1.52+).
func TestOpsGoClient(t *testing.T) {
	d := startDaemon(t)
	c, err := client.New(client.WithHost("unix://"+d.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d.mustDocker("run", "-d", "--name", "g1", testImage, "sh", "-c", "ln -s /etc /etclink; sleep 1000")
	waitFor(t, func() bool { _, _, code := d.docker("exec", "g1", "test", "-L", "/etclink"); return code == 0 }, "the link")

	st, err := c.ContainerStatPath(ctx, "g1", client.ContainerStatPathOptions{Path: "/etc"})
	if err != nil || !st.Stat.Mode.IsDir() || st.Stat.Name != "etc" {
		t.Fatalf("stat /etc: %+v %v", st.Stat, err)
	}
	st, err = c.ContainerStatPath(ctx, "g1", client.ContainerStatPathOptions{Path: "/etclink"})
	if err != nil || st.Stat.Mode&os.ModeSymlink == 0 || st.Stat.LinkTarget != "/etc" {
		t.Fatalf("stat /etclink: %+v %v", st.Stat, err)
	}
	if _, err := c.ContainerStatPath(ctx, "g1", client.ContainerStatPathOptions{Path: "/nope"}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("stat of a missing path: %v", err)
	}

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	_ = tw.WriteHeader(&tar.Header{Name: "gdir/", Mode: 0o755, Typeflag: tar.TypeDir})
	_ = tw.WriteHeader(&tar.Header{Name: "gdir/f", Mode: 0o640, Size: 2, Typeflag: tar.TypeReg, Uid: 7, Gid: 8})
	_, _ = tw.Write([]byte("go"))
	_ = tw.Close()
	if _, err := c.CopyToContainer(ctx, "g1", client.CopyToContainerOptions{DestinationPath: "/etclink", Content: &tb}); err != nil {
		t.Fatal(err)
	}
	res, err := c.CopyFromContainer(ctx, "g1", client.CopyFromContainerOptions{SourcePath: "/etc/gdir"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Content)
	res.Content.Close()
	if names := strings.Join(tarNames(t, string(data)), " "); names != "gdir/ gdir/f" || !res.Stat.Mode.IsDir() {
		t.Fatalf("copied back: %s, %+v", names, res.Stat)
	}
	if out := d.mustDocker("exec", "g1", "stat", "-c", "%a %u:%g", "/etc/gdir/f"); out != "640 7:8\n" {
		t.Fatalf("extracted file: %q", out)
	}
	// A file where the tar has a directory: refused by default.
	tb.Reset()
	tw = tar.NewWriter(&tb)
	_ = tw.WriteHeader(&tar.Header{Name: "gdir", Mode: 0o644, Typeflag: tar.TypeReg})
	_ = tw.Close()
	if _, err := c.CopyToContainer(ctx, "g1", client.CopyToContainerOptions{DestinationPath: "/etc", Content: &tb}); err == nil || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Fatalf("file over a directory: %v", err)
	}

	diff, err := c.ContainerDiff(ctx, "g1", client.ContainerDiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]container.ChangeType{}
	for _, ch := range diff.Changes {
		kinds[ch.Path] = ch.Kind
	}
	if kinds["/etclink"] != container.ChangeAdd || kinds["/etc/gdir/f"] != container.ChangeAdd || kinds["/etc"] != container.ChangeModify {
		t.Fatalf("changes: %+v", diff.Changes)
	}

	mem := int64(32 << 20)
	if _, err := c.ContainerUpdate(ctx, "g1", client.ContainerUpdateOptions{Resources: &container.Resources{Memory: mem}}); err == nil || !strings.Contains(err.Error(), "update the memoryswap at the same time") {
		t.Fatalf("memory above the swap limit without a swap limit: %v", err)
	}
	if _, err := c.ContainerUpdate(ctx, "g1", client.ContainerUpdateOptions{Resources: &container.Resources{Memory: mem, MemorySwap: 2 * mem}}); err != nil {
		t.Fatal(err)
	}
	if ins, err := c.ContainerInspect(ctx, "g1", client.ContainerInspectOptions{Size: true}); err != nil || ins.Container.HostConfig.Memory != mem || ins.Container.SizeRw == nil || *ins.Container.SizeRw < 2 {
		t.Fatalf("inspect after update: %v", err)
	}

	du, err := c.DiskUsage(ctx, client.DiskUsageOptions{Containers: true, Images: true, Volumes: true, BuildCache: true, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if du.Images.TotalCount != 1 || du.Images.ActiveCount != 1 || du.Containers.TotalCount != 1 || du.Containers.ActiveCount != 1 ||
		len(du.Containers.Items) != 1 || du.Containers.Items[0].SizeRw < 2 {
		t.Fatalf("disk usage: %+v", du)
	}
}
