package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInstructions covers what TestMultiStage does not: ADD of a local
// tar (unpacked) and of a URL (from a loopback server), heredocs in RUN
// and COPY, exec-form RUN, SHELL, USER for RUN, --chown by name, globs,
// ONBUILD triggers in a child build, and ENTRYPOINT resetting an inherited
// CMD.
func TestInstructions(t *testing.T) {
	d := startDaemon(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files/remote.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Last-Modified", time.Unix(1600000000, 0).UTC().Format(http.TimeFormat))
		w.Write([]byte("from the web\n"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, body string }{{"pkg/bin/tool", "#!/bin/sh\necho tool\n"}, {"pkg/README", "readme\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1600000000, 0)})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	zw.Close()

	dir := contextDir(t, map[string]string{
		"Dockerfile": `FROM busybox
ADD pkg.tar.gz /opt/
ADD http://` + ln.Addr().String() + `/files/remote.txt /web/
ADD --checksum=sha256:` + fmt.Sprintf("%x", sha256.Sum256([]byte("from the web\n"))) + ` http://` + ln.Addr().String() + `/files/remote.txt /web/checked.txt
RUN <<EOF
echo line one > /heredoc
echo line two >> /heredoc
EOF
ENV USER_NAME=world
COPY <<EOF /etc/greeting
hello $USER_NAME "quoted"
EOF
COPY <<'EOF' /etc/raw
hello $USER_NAME
EOF
RUN cat <<EOF > /fed
fed by a heredoc
EOF
RUN ["/bin/sh", "-c", "echo exec form > /exec"]
SHELL ["/bin/sh", "-ec"]
RUN echo shell=$0 > /shell
COPY conf/*.conf /etc/app/
COPY --exclude=**/*.log --exclude=skip tree/ /ex/
COPY --parents tree/a/b/f1 tree/a/c/f2 /par/
COPY --chown=nobody conf/a.conf /owned.conf
USER nobody
RUN id -u > /tmp/uid
USER root
ONBUILD RUN echo triggered > /triggered
CMD ["echo", "parent"]
`,
		"pkg.tar.gz":  tgz.String(),
		"conf/a.conf": "a", "conf/b.conf": "b", "conf/c.txt": "c",
		"tree/keep.txt": "k", "tree/x.log": "x", "tree/skip/s": "s", "tree/sub/y.log": "y", "tree/sub/z.txt": "z",
		"tree/a/b/f1": "1", "tree/a/c/f2": "2",
	})
	d.must(d.run(dir, nil, dockerCLI, "build", "-t", "instr:parent", "."))
	checks := map[string]string{
		"cat /opt/pkg/README && /opt/pkg/bin/tool":               "readme\ntool\n",
		"cat /web/remote.txt && stat -c '%a %Y' /web/remote.txt": "from the web\n600 1600000000\n",
		"cat /web/checked.txt":                                   "from the web\n",
		"cat /heredoc /exec /shell":                              "line one\nline two\nexec form\nshell=/bin/sh\n",
		"cat /etc/greeting /etc/raw /fed":                        "hello world \"quoted\"\nhello $USER_NAME\nfed by a heredoc\n",
		"ls /etc/app":                                            "a.conf\nb.conf\n",
		"cd /ex && find . -type f | sort":                        "./a/b/f1\n./a/c/f2\n./keep.txt\n./sub/z.txt\n",
		"cd /par && find . -type f | sort":                       "./tree/a/b/f1\n./tree/a/c/f2\n",
		"stat -c '%u:%g' /owned.conf; cat /tmp/uid":              "65534:65534\n65534\n",
	}
	d.checkOutputs("instr:parent", checks)
	if cfg, _, _ := d.inspect("instr:parent"); len(cfg.OnBuild) != 1 || len(cfg.Shell) != 2 {
		t.Errorf("OnBuild %v, Shell %v", cfg.OnBuild, cfg.Shell)
	}
	bad := contextDir(t, map[string]string{"Dockerfile": "FROM busybox\nADD --checksum=sha256:" + strings.Repeat("0", 64) + " http://" + ln.Addr().String() + "/files/remote.txt /x\n"})
	if r := d.run(bad, nil, dockerCLI, "build", "."); r.code == 0 || !strings.Contains(r.err, "ADD failed: digest mismatch") {
		t.Errorf("ADD --checksum mismatch: %s", r)
	}
	child := contextDir(t, map[string]string{"Dockerfile": "FROM instr:parent\nENTRYPOINT [\"cat\"]\n"})
	r := d.must(d.run(child, nil, dockerCLI, "build", "-t", "instr:child", "."))
	if !strings.Contains(r.out, "# Executing 1 build trigger") {
		t.Errorf("no trigger ran:\n%s", r.out)
	}
	cfg, _, _ := d.inspect("instr:child")
	if len(cfg.OnBuild) != 0 || len(cfg.Cmd) != 0 {
		t.Errorf("child: OnBuild %v (want none), Cmd %v (reset by ENTRYPOINT)", cfg.OnBuild, cfg.Cmd)
	}
	if got := d.must(d.docker("run", "--rm", "instr:child", "/triggered")).out; got != "triggered\n" {
		t.Errorf("child: %q", got)
	}
}

// TestInputs covers the ways a context and Dockerfile arrive: -f outside
// the context, -f -, a lone Dockerfile on stdin, a tar on stdin; and -q,
// --iidfile.
func TestInputs(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{"data.txt": "data\n"})
	outside := filepath.Join(t.TempDir(), "Build.dockerfile")
	if err := os.WriteFile(outside, []byte("FROM busybox\nCOPY data.txt /data.txt\nCMD [\"cat\", \"/data.txt\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iid := filepath.Join(t.TempDir(), "iid")
	r := d.must(d.run(dir, nil, dockerCLI, "build", "-q", "--iidfile", iid, "-f", outside, "-t", "in:outside", "."))
	id, _ := os.ReadFile(iid)
	if !strings.HasPrefix(string(id), "sha256:") || r.out != string(id) {
		t.Errorf("-q printed %q, iidfile has %q", r.out, id)
	}
	if got := d.must(d.docker("run", "--rm", "in:outside")).out; got != "data\n" {
		t.Errorf("-f outside the context: %q", got)
	}
	// docker 20.10's CLI asks the daemon which builder it has (/_ping's
	// Builder-Version) when DOCKER_BUILDKIT is not set.
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		r := d.run(dir, []string{"DOCKER_BUILDKIT="}, "/usr/bin/docker", "build", "-f", outside, "-t", "in:cli20", ".")
		if r.code != 0 || !strings.Contains(r.out, "Successfully tagged in:cli20") {
			t.Errorf("docker 20.10 CLI without DOCKER_BUILDKIT: %s", r)
		}
	}
	// Resource limits and extra hosts reach the RUN containers.
	limits := contextDir(t, map[string]string{"Dockerfile": "FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null > /limit; grep -w myhost /etc/hosts > /hosts; true\n"})
	for _, cli := range []string{dockerCLI, binary(t)} {
		d.must(d.run(limits, nil, cli, "build", "--no-cache", "--memory", "64m", "--add-host", "myhost:10.1.2.3", "-t", "in:limits", "."))
		if got := d.must(d.docker("run", "--rm", "in:limits", "cat", "/limit", "/hosts")).out; got != "67108864\n10.1.2.3\tmyhost\n" {
			t.Errorf("%s build --memory 64m --add-host: the RUN saw %q", cli, got)
		}
	}
	for _, cli := range []string{dockerCLI, binary(t)} {
		r = d.must(d.runIn(dir, strings.NewReader("FROM busybox\nCOPY data.txt /d\n"), nil, cli, "build", "-f", "-", "-t", "in:stdinfile", "."))
		if got := d.must(d.docker("run", "--rm", "in:stdinfile", "cat", "/d")).out; got != "data\n" {
			t.Errorf("%s -f -: %q", cli, got)
		}
		r = d.must(d.runIn("", strings.NewReader("FROM busybox\nRUN echo lone > /lone\n"), nil, cli, "build", "-t", "in:lone", "-"))
		if got := d.must(d.docker("run", "--rm", "in:lone", "cat", "/lone")).out; got != "lone\n" {
			t.Errorf("%s build - < Dockerfile: %q", cli, got)
		}
		tarBody := tarOf(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "in a tar\n"}, true)
		r = d.must(d.runIn("", bytes.NewReader(tarBody), nil, cli, "build", "-t", "in:tar", "-"))
		if got := d.must(d.docker("run", "--rm", "in:tar", "cat", "/f")).out; got != "in a tar\n" {
			t.Errorf("%s build - < context.tar.gz: %q", cli, got)
		}
	}
}

// TestRunMounts covers RUN --mount (bind from the context and from a
// stage, writable bind whose writes are dropped, cache kept across
// builds, tmpfs) and RUN --network: the mounts' contents and mount points
// stay out of the image, the context is not changed.
func TestRunMounts(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{
		"Dockerfile": `FROM busybox AS data
RUN mkdir /d && echo from-stage > /d/f
FROM busybox
RUN --mount=type=bind,source=conf,target=/mnt/conf cat /mnt/conf/a.conf > /bound
RUN --mount=type=bind,from=data,source=/d,target=/mnt/d cat /mnt/d/f > /fromstage
RUN --mount=type=cache,target=/var/cache/x,id=x echo run >> /var/cache/x/log && wc -l < /var/cache/x/log > /count
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && grep -c " /scratch tmpfs " /proc/mounts > /tmpfs
RUN --mount=type=bind,source=.,target=/src,rw echo x > /src/new && ls /src > /rwls
RUN --network=none ls /sys/class/net > /links
`,
		"conf/a.conf": "a\n",
	})
	d.must(d.run(dir, nil, dockerCLI, "build", "-t", "mnt:1", "."))
	checks := map[string]string{
		"cat /bound /fromstage /count /tmpfs": "a\nfrom-stage\n1\n1\n",
		"cat /rwls":                           "Dockerfile\nconf\nnew\n",
		"cat /links":                          "lo\n",
		"ls -d /mnt /var/cache /scratch /src 2>&1 | grep -c 'No such file'": "4\n",
	}
	d.checkOutputs("mnt:1", checks)
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Errorf("a writable bind mount changed the context")
	}
	// The cache mount keeps its content: a rebuild without the layer cache counts 2.
	d.must(d.run(dir, nil, dockerCLI, "build", "--no-cache", "-t", "mnt:2", "."))
	if got := d.must(d.docker("run", "--rm", "mnt:2", "cat", "/count")).out; got != "2\n" {
		t.Errorf("cache mount: count %q, want 2", got)
	}
	// Secrets: berth build --secret reaches RUN --mount=type=secret as a
	// read-only file, never a layer; docker's classic CLI has no way to
	// send one, so a required secret fails there with what to do.
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\n"+
		"RUN --mount=type=secret,id=s,required wc -c < /run/secrets/s > /len && stat -c %a /run/secrets/s > /mode\n"+
		"RUN --mount=type=secret,id=tok,env=TOK,target=/tok sh -c 'cat /tok > /tokcopy'\n"+
		"RUN --mount=type=secret,id=absent,required=false ls /run/secrets > /secrets 2>&1 || true\n"), 0o644)
	if r := d.run(dir, nil, dockerCLI, "build", "."); r.code == 0 || !strings.Contains(r.out+r.err, "secret s not found") {
		t.Errorf("secret mount through docker's CLI: %s", r)
	}
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("hunter2"), 0o600)
	d.must(d.run(dir, []string{"TOKVAL=t0ken"}, binary(t), "build", "-t", "sec:1", "--secret", "id=s,src="+secret, "--secret", "id=tok,env=TOKVAL", "."))
	d.checkOutputs("sec:1", map[string]string{
		"cat /len /mode /tokcopy": "7\n400\nt0ken",
		"for f in /run/secrets /tok; do [ -e $f ] && echo $f left; done; cat /secrets": "ls: /run/secrets: No such file or directory\n",
	})
	// The secrets' contents are no part of the cache key (docker's rule).
	os.WriteFile(secret, []byte("other"), 0o600)
	if r := d.must(d.run(dir, []string{"TOKVAL=t0ken"}, binary(t), "build", "-t", "sec:2", "--secret", "id=s,src="+secret, "--secret", "id=tok,env=TOKVAL", ".")); strings.Count(r.out, "Using cache") != 3 {
		t.Errorf("rebuild with another secret content is not cached:\n%s", r.out)
	}
	if r := d.run(dir, nil, binary(t), "build", "--secret", "id=nosuch", "."); r.code == 0 || !strings.Contains(r.err, "secret nosuch: no src, env or variable") {
		t.Errorf("--secret without a source: %s", r)
	}
}

// checkOutputs runs each shell command in a container of ref and compares
// its output.
func (d *daemon) checkOutputs(ref string, checks map[string]string) {
	d.t.Helper()
	for cmd, want := range checks {
		if got := d.must(d.docker("run", "--rm", ref, "sh", "-c", cmd)).out; got != want {
			d.t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
}

// TestLockedCacheMount: two parallel stages share a cache mount with
// sharing=locked; each checks that it is alone in it while it runs.
func TestLockedCacheMount(t *testing.T) {
	d := startDaemon(t)
	step := func(me string) string {
		return "RUN --mount=type=cache,target=/c,id=lk,sharing=locked " +
			"if ls /c/busy-* 2>/dev/null; then echo shared > /out; else touch /c/busy-" + me +
			" && sleep 1 && rm /c/busy-" + me + " && echo alone > /out; fi"
	}
	dir := contextDir(t, map[string]string{"Dockerfile": "FROM busybox AS a\n" + step("a") + "\nFROM busybox AS b\n" + step("b") +
		"\nFROM busybox\nCOPY --from=a /out /a\nCOPY --from=b /out /b\nRUN echo \"proxy=$HTTP_PROXY\" > /proxy\n"})
	// The proxy build args reach RUN without an ARG, as docker's predefined args.
	r := d.must(d.run(dir, []string{"HTTP_PROXY=http://127.0.0.1:9"}, dockerCLI, "build", "--build-arg", "HTTP_PROXY", "-t", "lk:1", "."))
	if strings.Contains(r.out, "not consumed") {
		t.Errorf("HTTP_PROXY reported unused:\n%s", r.out)
	}
	if got := d.must(d.docker("run", "--rm", "lk:1", "cat", "/a", "/b", "/proxy")).out; got != "alone\nalone\nproxy=http://127.0.0.1:9\n" {
		t.Errorf("locked cache mount, proxy: %q", got)
	}
	if cfg, _, _ := d.inspect("lk:1"); strings.Contains(strings.Join(cfg.Env, " "), "PROXY") {
		t.Errorf("the proxy went into the image: %v", cfg.Env)
	}
}

// TestCopyXattrs: a file's capabilities travel with the context (docker
// CLI and berth CLI) and COPY keeps them in the layer, as docker's does.
func TestCopyXattrs(t *testing.T) {
	d := startDaemon(t)
	dir := contextDir(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY tool /tool\n", "tool": "x"})
	// cap_net_raw+ep in the v2 format: what `setcap cap_net_raw+ep tool` writes.
	capData := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Setxattr(filepath.Join(dir, "tool"), "security.capability", capData, 0); err != nil {
		t.Skipf("cannot set file capabilities here: %v", err)
	}
	for _, cli := range []string{dockerCLI, binary(t)} {
		d.must(d.run(dir, nil, cli, "build", "--no-cache", "-t", "xattr:1", "."))
		d.checkCapability(t, capData)
	}
}

// checkCapability looks for the COPY'd file's capabilities in xattr:1's layers.
func (d *daemon) checkCapability(t *testing.T, capData []byte) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "x.tar")
	d.must(d.docker("save", "-o", archive, "xattr:1"))
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	tr := tar.NewReader(f)
	for hdr, err := tr.Next(); err == nil && !found; hdr, err = tr.Next() {
		if !strings.HasPrefix(hdr.Name, "blobs/") {
			continue
		}
		zr, err := gzip.NewReader(tr)
		if err != nil {
			continue // a config or manifest
		}
		lr := tar.NewReader(zr)
		for lh, err := lr.Next(); err == nil; lh, err = lr.Next() {
			if lh.Name == "tool" && lh.PAXRecords["SCHILY.xattr.security.capability"] == string(capData) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the layer of COPY tool lost the file's capabilities")
	}
}
