package build_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
)

// TestDifferential builds the same Dockerfiles with berth and with a
// private dockerd's classic builder (Debian docker.io), through the same
// docker 28 CLI, and compares what docker users see: the image config,
// the files, the step output (IDs masked) and the errors with their exit
// codes. Opt-in, as test/engine's: BERTH_TEST_TARGET=docker.
func TestDifferential(t *testing.T) {
	if os.Getenv("BERTH_TEST_TARGET") != "docker" {
		t.Skip("BERTH_TEST_TARGET=docker compares the builder with a private dockerd")
	}
	if err := dockerd.Available(); err != nil {
		t.Skip(err)
	}
	d := startDaemon(t)
	dir := t.TempDir()
	peer, err := dockerd.Prepare(dockerd.Options{Dir: filepath.Join(dir, "dockerd")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := peer.Cleanup(); err != nil {
			t.Logf("dockerd cleanup: %v", err)
		}
	})
	cmd, err := peer.Start(context.Background(), filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { peer.Stop(cmd, exited) })
	// The base is a one-layer busybox imported into berth, then loaded
	// into dockerd (the seeded test image hardlinks across layers, which
	// dockerd's load refuses).
	rootfs := filepath.Join(dir, "rootfs")
	testutil.BusyboxRootfs(t, rootfs)
	rootTar := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", rootTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	d.must(d.docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", rootTar, "bbase:1"))
	archive := filepath.Join(dir, "bbase.tar")
	d.must(d.docker("save", "-o", archive, "bbase:1"))
	d.must(d.run("", peer.Env(), dockerCLI, "load", "-i", archive))
	base := func(s string) string { return strings.ReplaceAll(s, "busybox", "bbase:1") }

	envs := map[string][]string{"berth": nil, "dockerd": peer.Env()}
	ids := regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	lineRef := regexp.MustCompile(`dockerfile line [0-9]+: `)
	hashes := regexp.MustCompile(`[0-9a-f]{32,}`)
	fourDurations := regexp.MustCompile(`(HEALTHCHECK &\{\[[^]]*\] "[^"]*" "[^"]*" "[^"]*") ('[^']*'\})`)
	suggestion := regexp.MustCompile(` \(did you mean [^)]*\?\)`)
	oldFlag := regexp.MustCompile(`Unknown flag: (\S+)`) // dockerd 20.10's older parser
	// normalize masks IDs and drops what differs by design: the context
	// size, the CLI's deprecation notice, and the intermediate-container
	// lines (dockerd 20.10 ran one for every instruction; docker 23+ and
	// berth only for RUN).
	normalize := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "Sending build context") || strings.HasPrefix(l, "DEPRECATED:") ||
				strings.HasPrefix(l, "            ") || l == "" || strings.HasPrefix(l, " ---> Running in ") ||
				strings.Contains(l, " intermediate container ") {
				continue
			}
			// Divergences by design: berth names the Dockerfile line of
			// a failed step (the issue asks for it), and keeps buildkit's
			// parser wording ("on line", a suggestion), which newer
			// dockerds print too.
			l = lineRef.ReplaceAllString(l, "")
			l = strings.Replace(l, "parse error line ", "parse error on line ", 1)
			l = suggestion.ReplaceAllString(l, "")
			l = oldFlag.ReplaceAllString(l, "unknown flag: --$1")
			out = append(out, ids.ReplaceAllString(l, "<id>"))
		}
		return strings.Join(out, "\n")
	}
	type outcome struct {
		build, rebuild result
		history        string
		config         string
		checks         []string
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		args  []string
		check []string // shell commands whose output must match
	}{
		// dockerd's classic builder runs unneeded stages and has no --chmod.
		{"multistage", map[string]string{"Dockerfile": strings.NewReplacer("FROM busybox AS unused\nRUN echo this stage must not run && exit 1\n", "", "--chmod=640 ", "").Replace(multiStage), "src/msg.txt": "hello"},
			[]string{"--build-arg", "VERSION=2.5", "--label", "built.by=test"},
			[]string{"find /opt /data -exec stat -c '%n %a %u:%g %s' {} +", "/opt/app/bin/app"}},
		{"instructions", map[string]string{"Dockerfile": "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nARG A=1\nENV B=$A C=\"x y\"\nRUN echo $A $B > /ab\nCOPY f* /files/\nWORKDIR rel/dir\nADD t.txt .\nUSER 1:2\nENTRYPOINT echo entry\nONBUILD RUN true\nHEALTHCHECK NONE\n",
			"f1": "1", "f2": "2", "t.txt": "t"}, nil,
			[]string{"stat -c '%n %a %u:%g' /files /files/f1 /files/f2 /rel /rel/dir /rel/dir/t.txt && cat /ab"}},
		{"forms", map[string]string{"Dockerfile": "FROM busybox\nENV LEGACY value with spaces\nLABEL \"quoted key\"=\"v 1\" second=2\nEXPOSE 7000-7002/udp 80\nVOLUME [\"/v1\", \"/v2\"]\nCMD echo shell form\nSTOPSIGNAL 9\nMAINTAINER someone\nUSER nobody:nogroup\n",
			".dockerignore": "ignored*\n", "ignored.txt": "x"}, []string{"--build-arg", "UNUSED=1"}, nil},
		{"unknowninstruction", map[string]string{"Dockerfile": "FROM busybox\nRUN true\nFOO bar\n"}, nil, nil},
		{"failingrun", map[string]string{"Dockerfile": "FROM busybox\nRUN echo before\nRUN exit 3\n"}, nil, nil},
		{"missingfile", map[string]string{"Dockerfile": "FROM busybox\nCOPY nope.txt /n\n"}, nil, nil},
		{"missingtarget", map[string]string{"Dockerfile": "FROM busybox AS one\n"}, []string{"--target", "two"}, nil},
		{"unknownuser", map[string]string{"Dockerfile": "FROM busybox\nUSER nosuch\nRUN true\n"}, nil, nil},
		{"unknownchown", map[string]string{"Dockerfile": "FROM busybox\nCOPY --chown=nosuch Dockerfile /d\n"}, nil, nil},
		{"outside", map[string]string{"Dockerfile": "FROM busybox\nCOPY ../x /x\n"}, nil, nil},
		{"emptyglob", map[string]string{"Dockerfile": "FROM busybox\nCOPY *.nothing /x/\n"}, nil, nil},
		{"badexpose", map[string]string{"Dockerfile": "FROM busybox\nEXPOSE 80/foo\n"}, nil, nil},
		{"copydir", map[string]string{"Dockerfile": "FROM busybox\nCOPY d /d\nCOPY d/ /e/\nCOPY d/sub/f /g\nCOPY d /existing/\nCOPY d/sub/f /tmp\n", "d/sub/f": "f", "d/top": "t"}, nil,
			[]string{"find /d /e /g /existing /tmp/f | sort | xargs stat -c '%n %a %u:%g'"}},
		{"more", map[string]string{"Dockerfile": "FROM busybox AS first\nRUN echo first > /first\nFROM busybox\nCOPY --from=0 /first /f0\nCOPY --from=busybox /bin/sh /bb\nCOPY --from=busybox /nope /x\nADD a.tar /untarred/\nADD a.tar /kept.tar\nENV X=${UNSET:-dflt} Y=${X:+set}\nARG Z=arg\nENV Z=env\nRUN echo $X $Y $Z > /env\nWORKDIR /w/$X\nHEALTHCHECK --interval=1s --timeout=1s --start-period=2s --retries=2 CMD [\"true\"]\nCMD [\"sh\"]\nENTRYPOINT [\"env\"]\n",
			"a.tar": string(tarOf(t, map[string]string{"in/tar.txt": "x"}, false))}, nil,
			[]string{"cat /f0 /env && ls -R /untarred && stat -c '%n %a %s' /kept.tar /w/dflt"}},
		{"args", map[string]string{"Dockerfile": "ARG V=meta\nARG W\nFROM busybox\nARG V\nARG W=stage\nARG U\nRUN echo \"$V $W $U\" > /args\nLABEL a=1 \\\n      b=2\nENTRYPOINT [\"sh\"]\nCMD [\"true\"]\n"},
			[]string{"--build-arg", "U=cli"}, []string{"cat /args"}},
		{"links", map[string]string{"Dockerfile": "FROM busybox\nCOPY link /top\nCOPY dir /dir/\nADD t.tgz /t/\n", "target.txt": "target", "dir/f": "f",
			"t.tgz": string(tarOf(t, map[string]string{"a/b": "gz"}, true))}, nil,
			[]string{"cat /top && ls -l /dir | awk '{print $1, $9, $10, $11}' && cat /t/a/b"}},
		{"scratch", map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\nENV A=1\n", "f": "f"}, nil, nil},
		{"onbuild", map[string]string{"Dockerfile": "FROM busybox\nONBUILD RUN echo trig > /trig\nCMD [\"cat\", \"/trig\"]\n"}, nil, nil},
		{"emptydockerfile", map[string]string{"Dockerfile": "# only a comment\n"}, nil, nil},
		{"badflag", map[string]string{"Dockerfile": "FROM busybox\nCOPY --nope=1 a b\n"}, nil, nil},
		{"ignoreddockerfile", map[string]string{"Dockerfile": "FROM busybox\nCOPY . /c/\nRUN ls -a /c\n", ".dockerignore": "Dockerfile\n.dockerignore\n", "k": "k"}, nil, nil},
		{"severalsources", map[string]string{"Dockerfile": "FROM busybox\nCOPY Dockerfile Dockerfile /dst\n"}, nil, nil},
	} {
		c.files["Dockerfile"] = base(c.files["Dockerfile"])
		ctxDir := contextDir(t, c.files)
		if c.name == "links" {
			for link, target := range map[string]string{"link": "target.txt", "dir/rel": "f", "dir/abs": "/etc/passwd"} {
				if err := os.Symlink(target, filepath.Join(ctxDir, link)); err != nil {
					t.Fatal(err)
				}
			}
		}
		got := map[string]*outcome{}
		for side, env := range envs {
			o := &outcome{}
			got[side] = o
			tag := "diff-" + c.name + ":1"
			o.build = d.run(ctxDir, env, dockerCLI, append(append([]string{"build", "-t", tag}, c.args...), ".")...)
			if o.build.code != 0 {
				continue
			}
			// The rebuild: every step from the cache.
			o.rebuild = d.run(ctxDir, env, dockerCLI, append(append([]string{"build", "-t", tag}, c.args...), ".")...)
			out := d.must(d.run("", env, dockerCLI, "image", "inspect", "-f", "{{json .Config}}", tag)).out
			var cfg map[string]any
			if err := json.Unmarshal([]byte(out), &cfg); err != nil {
				t.Fatal(err)
			}
			for k, v := range cfg {
				switch k {
				case "Hostname", "Domainname", "Image", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce":
					delete(cfg, k) // dockerd's container-config leftovers
				}
				if v == nil || v == "" || v == false {
					delete(cfg, k)
				}
			}
			b, _ := json.Marshal(cfg)
			o.config = string(b)
			o.history = hashes.ReplaceAllString(d.must(d.run("", env, dockerCLI, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)).out, "<hash>")
			// dockerd 20.10's HealthConfig has no StartInterval (docker 25+ does).
			o.history = fourDurations.ReplaceAllString(o.history, `$1 "0s" $2`)
			for _, chk := range c.check {
				o.checks = append(o.checks, d.must(d.run("", env, dockerCLI, "run", "--rm", "--entrypoint", "sh", tag, "-c", chk)).out)
			}
		}
		b, k := got["berth"], got["dockerd"]
		if b.build.code != k.build.code || normalize(b.build.out) != normalize(k.build.out) || normalize(b.build.err) != normalize(k.build.err) {
			t.Errorf("%s: the builds differ (exit %d and %d)\n--- berth:\n%s\n%s\n--- dockerd:\n%s\n%s", c.name, b.build.code, k.build.code,
				normalize(b.build.out), normalize(b.build.err), normalize(k.build.out), normalize(k.build.err))
		}
		if normalize(b.rebuild.out) != normalize(k.rebuild.out) {
			t.Errorf("%s: the rebuilds differ\n--- berth:\n%s\n--- dockerd:\n%s", c.name, normalize(b.rebuild.out), normalize(k.rebuild.out))
		}
		if b.history != k.history {
			t.Errorf("%s: histories differ\n--- berth:\n%s--- dockerd:\n%s", c.name, b.history, k.history)
		}
		if b.config != k.config {
			t.Errorf("%s: configs differ\nberth:   %s\ndockerd: %s", c.name, b.config, k.config)
		}
		for i := range b.checks {
			if i < len(k.checks) && b.checks[i] != k.checks[i] {
				t.Errorf("%s: %s:\nberth:\n%s\ndockerd:\n%s", c.name, c.check[i], b.checks[i], k.checks[i])
			}
		}
	}
}
