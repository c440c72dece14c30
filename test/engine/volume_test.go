package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cli is the docker CLI or berth's, against one daemon.
type cli struct {
	name string
	run  func(args ...string) (stdout, stderr string, code int)
}

// berth runs berth's own CLI against the daemon.
func (d *daemon) berth(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	cmd := exec.Command(binary(d.t), args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.sock)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("berth %v: %v", args, err)
		}
		return o.String(), e.String(), ee.ExitCode()
	}
	return o.String(), e.String(), 0
}

// clis is both CLIs against d.
func (d *daemon) clis() []cli {
	requireDockerCLI(d.t)
	return []cli{{"docker", d.docker}, {"berth", d.berth}}
}

func (c cli) must(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s\ndaemon log:\n%s", c.name, strings.Join(args, " "), code, out, errOut, tail(d.logs.String(), 3000))
	}
	return out
}

// refuses runs a command that must fail with a message containing want.
func (c cli) refuses(t *testing.T, want string, args ...string) (stderr string, code int) {
	t.Helper()
	out, errOut, code := c.run(args...)
	if code == 0 || !strings.Contains(errOut, want) {
		t.Fatalf("%s %s: want a failure with %q, got exit %d\nstdout: %s\nstderr: %s", c.name, strings.Join(args, " "), want, code, out, errOut)
	}
	return errOut, code
}

// mountpoint is where the target daemon keeps a volume's data, from
// inspect (berth: <root>/volumes/NAME/_data, checked; dockerd: its own).
func (d *daemon) mountpoint(name string) string {
	d.t.Helper()
	mp := strings.TrimSpace(d.mustDocker("volume", "inspect", "-f", "{{.Mountpoint}}", name))
	if want := filepath.Join(d.root, "volumes", name, "_data"); !onDocker && mp != want {
		d.t.Fatalf("volume %s: Mountpoint %s, want %s", name, mp, want)
	}
	return mp
}

// mountsUnder lists the mount points below dir, from /proc/self/mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// TestVolumes: named volumes keep data across containers, are populated
// from the image, refuse removal while used, and anonymous volumes go with
// rm -v and prune, through both CLIs.
func TestVolumes(t *testing.T) {
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			vol := "data-" + c.name
			if got := c.must(t, d, "volume", "create", "--label", "k=v", vol); got != vol+"\n" {
				t.Fatalf("volume create printed %q", got)
			}
			if got := c.must(t, d, "volume", "ls", "--filter", "label=k=v"); got != "DRIVER    VOLUME NAME\nlocal     "+vol+"\n" {
				t.Fatalf("volume ls:\n%s", got)
			}
			want := vol + " local local map[k:v] " + d.mountpoint(vol) + "\n"
			for _, verb := range [][]string{{"volume", "inspect"}, {"inspect"}, {"inspect", "--type", "volume"}} {
				got := c.must(t, d, append(verb, "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Mountpoint}}", vol)...)
				if got != want {
					t.Fatalf("%v: got %q want %q", verb, got, want)
				}
			}

			// Data outlives its container and is seen by the next.
			c.must(t, d, "run", "--rm", "-v", vol+":/data", testImage, "sh", "-c", "echo kept > /data/f")
			if got := c.must(t, d, "run", "--rm", "--mount", "type=volume,src="+vol+",dst=/mnt,readonly", testImage, "cat", "/mnt/f"); got != "kept\n" {
				t.Fatalf("second container read %q", got)
			}

			// A new named volume is filled from the image, unless nocopy.
			pop := "pop-" + c.name
			if got := c.must(t, d, "run", "--rm", "-v", pop+":/etc", testImage, "cat", "/etc/group"); !strings.Contains(got, "root:") {
				t.Fatalf("populated volume: /etc/group is %q", got)
			}
			if _, err := os.Stat(filepath.Join(d.mountpoint(pop), "passwd")); err != nil {
				t.Fatalf("volume not populated on the host: %v", err)
			}
			if got := c.must(t, d, "run", "--rm", "--mount", "type=volume,src=empty-"+c.name+",dst=/etc,volume-nocopy", testImage, "ls", "-A", "/etc"); got != "hostname\nhosts\nresolv.conf\n" {
				t.Fatalf("nocopy volume has %q", got)
			}

			// In use: refused, with the container's ID.
			id := strings.TrimSpace(c.must(t, d, "create", "-v", vol+":/data", testImage, "true"))
			c.refuses(t, "remove "+vol+": volume is in use - ["+id+"]", "volume", "rm", vol)
			c.must(t, d, "rm", id)

			// rm -v removes the anonymous volumes, not the named ones.
			id = strings.TrimSpace(c.must(t, d, "create", "-v", "/anon", "-v", vol+":/named", testImage, "true"))
			anon := c.must(t, d, "inspect", "-f", `{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}`, id)
			anon = strings.TrimSpace(anon)
			if len(anon) != 64 {
				t.Fatalf("anonymous volume name %q", anon)
			}
			c.must(t, d, "rm", "-v", id)
			c.refuses(t, "no such volume", "volume", "inspect", anon)
			c.must(t, d, "volume", "inspect", vol)

			// prune: anonymous by default, named with --all.
			id = strings.TrimSpace(c.must(t, d, "create", "-v", "/anon", testImage, "true"))
			anon = strings.TrimSpace(c.must(t, d, "inspect", "-f", `{{range .Mounts}}{{.Name}}{{end}}`, id))
			c.must(t, d, "rm", id)
			out := c.must(t, d, "volume", "prune", "-f")
			if !strings.Contains(out, anon+"\n") {
				t.Fatalf("volume prune:\n%s", out)
			}
			// dockerd 20.10 (API 1.41) prunes named volumes by default too;
			// docker 23+ and berth keep them unless asked for all.
			if !onDocker {
				if strings.Contains(out, vol) {
					t.Fatalf("volume prune took a named volume:\n%s", out)
				}
				out = c.must(t, d, "volume", "prune", "-af", "--filter", "label=k=v")
				if !strings.Contains(out, "Deleted Volumes:\n"+vol+"\n") || strings.Contains(out, pop) {
					t.Fatalf("volume prune -a:\n%s", out)
				}
			}
			// volume-subpath (docker 26+, not in dockerd 20.10) mounts a
			// directory of the volume.
			if !onDocker {
				if got := c.must(t, d, "run", "--rm", "--mount", "type=volume,src="+pop+",dst=/x,volume-subpath=passwd/..", testImage, "ls", "/x/group"); got != "/x/group\n" {
					t.Fatalf("volume subpath: %q", got)
				}
				c.must(t, d, "run", "--rm", "-v", pop+":/p", testImage, "sh", "-c", "mkdir /p/sub && echo in-sub > /p/sub/f")
				if got := c.must(t, d, "run", "--rm", "--mount", "type=volume,src="+pop+",dst=/x,volume-subpath=sub,readonly", testImage, "cat", "/x/f"); got != "in-sub\n" {
					t.Fatalf("volume subpath: %q", got)
				}
				// With --rm both CLIs return once the failed container is gone.
				c.refuses(t, "cannot access path", "run", "--rm", "--pull", "never", "--mount", "type=volume,src="+pop+",dst=/x,volume-subpath=nosuch", testImage, "true")
				c.refuses(t, "subpath must be a relative path within the volume", "run", "--rm", "--pull", "never", "--mount", "type=volume,src="+pop+",dst=/x,volume-subpath=../x", testImage, "true")
				c.must(t, d, "volume", "rm", pop, "empty-"+c.name)
			}
			c.refuses(t, "get "+pop+": no such volume", "volume", "rm", pop)
			c.must(t, d, "volume", "rm", "-f", pop)
			if out := c.must(t, d, "volume", "ls", "-q"); out != "" {
				t.Fatalf("volumes left: %q", out)
			}
		})
	}
}

// TestMounts: binds (read-only refused writes, a missing source made),
// tmpfs, --volumes-from and inspect's Mounts, through both CLIs.
func TestMounts(t *testing.T) {
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			host := t.TempDir()
			if err := os.WriteFile(filepath.Join(host, "f"), []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := c.run("run", "--rm", "-v", host+":/h:ro", testImage, "sh", "-c", "cat /h/f; touch /h/new")
			if code != 1 || out != "host" || !strings.Contains(errOut, "Read-only file system") {
				t.Fatalf("write to a read-only bind: exit %d, %q, %q", code, out, errOut)
			}
			out, errOut, code = c.run("run", "--rm", "--mount", "type=bind,src="+host+",dst=/h,readonly", testImage, "touch", "/h/new")
			if code != 1 || !strings.Contains(errOut, "Read-only file system") {
				t.Fatalf("write to a --mount readonly bind: exit %d, %q, %q", code, out, errOut)
			}
			c.must(t, d, "run", "--rm", "-v", host+"/made:/m:rw,rprivate", testImage, "touch", "/m/x")
			if _, err := os.Stat(filepath.Join(host, "made", "x")); err != nil {
				t.Fatalf("bind with a missing source: %v", err)
			}
			c.refuses(t, `invalid mount config for type "bind": bind source path does not exist: `+host+"/nope",
				"run", "--rm", "--pull", "never", "--mount", "type=bind,src="+host+"/nope,dst=/x", testImage, "true")
			if _, err := os.Stat(filepath.Join(host, "nope")); err == nil {
				t.Fatal("--mount bind made its missing source")
			}

			// A read-only rootfs still gets mount points made for new paths.
			c.must(t, d, "run", "--rm", "--read-only", "-v", "ro-"+c.name+":/new/dir", "--mount", "type=tmpfs,dst=/other", testImage, "sh", "-c", "touch /new/dir/x /other/y")
			c.must(t, d, "volume", "rm", "ro-"+c.name)

			// tmpfs, both ways.
			got := c.must(t, d, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "--tmpfs", "/u:size=2m",
				testImage, "sh", "-c", "grep -E ' /(t|u) ' /proc/mounts | cut -d' ' -f2,3,4; stat -c %a /t")
			if !strings.Contains(got, "/t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770") ||
				!strings.Contains(got, "/u tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k") || !strings.HasSuffix(got, "1770\n") {
				t.Fatalf("tmpfs mounts:\n%s", got)
			}

			// --volumes-from, read-only.
			src := "src-" + c.name
			tm := []string{"--mount", "type=tmpfs,dst=/tm"}
			if onDocker {
				tm = nil // dockerd 20.10's --volumes-from fails on a tmpfs mount ("get: no such volume")
			}
			c.must(t, d, append(append([]string{"run", "--name", src, "-v", "/anon", "-v", "shared-" + c.name + ":/s", "-v", host + ":/h"}, tm...), testImage,
				"sh", "-c", "echo a > /anon/f; echo s > /s/f")...)
			got = c.must(t, d, "run", "--rm", "--volumes-from", src+":ro", testImage, "sh", "-c", "cat /anon/f /s/f /h/f; touch /tm/g || touch /s/g || echo refused")
			if !strings.HasPrefix(got, "a\ns\nhost") || !strings.HasSuffix(got, "refused\n") {
				t.Fatalf("--volumes-from: %q", got)
			}
			got = c.must(t, d, "run", "--rm", "--volumes-from", src, testImage, "sh", "-c", "touch /s/g && echo rw")
			if got != "rw\n" {
				t.Fatalf("--volumes-from rw: %q", got)
			}

			// inspect Mounts, docker's fields.
			raw := c.must(t, d, "inspect", "-f", "{{json .Mounts}}", src)
			var mounts []map[string]any
			if err := json.Unmarshal([]byte(raw), &mounts); err != nil {
				t.Fatalf("Mounts %s: %v", raw, err)
			}
			byDst := map[string]map[string]any{}
			for _, m := range mounts {
				byDst[m["Destination"].(string)] = m
			}
			shared := byDst["/s"]
			if shared["Type"] != "volume" || shared["Name"] != "shared-"+c.name || shared["Driver"] != "local" || shared["Mode"] != "z" ||
				shared["RW"] != true || shared["Source"] != d.mountpoint("shared-"+c.name) {
				t.Fatalf("named volume mount: %v", shared)
			}
			if a := byDst["/anon"]; a["Type"] != "volume" || len(a["Name"].(string)) != 64 || a["Mode"] != "" {
				t.Fatalf("anonymous volume mount: %v", a)
			}
			if h := byDst["/h"]; h["Type"] != "bind" || h["Source"] != host || h["Propagation"] != "rprivate" || h["RW"] != true {
				t.Fatalf("bind mount: %v", h)
			}
			anon := byDst["/anon"]["Name"].(string)
			c.must(t, d, "rm", "-v", src)
			c.refuses(t, "no such volume", "volume", "inspect", anon)
			c.must(t, d, "volume", "rm", "shared-"+c.name)
		})
	}
}

// TestBindPropagation: a slave or shared bind needs a source on a mount
// that propagates (docker's check), and then gets the host's new mounts.
func TestBindPropagation(t *testing.T) {
	d := startDaemon(t)
	src := t.TempDir()
	if err := syscall.Mount("tmpfs", src, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(src, syscall.MNT_DETACH) })
	if err := syscall.Mount("", src, "", syscall.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.clis() {
		c.refuses(t, "path "+src+" is mounted on "+src+" but it is not a shared or slave mount",
			"run", "--rm", "--pull", "never", "-v", src+":/s:rslave", testImage, "true")
		c.refuses(t, "but it is not a shared mount", "run", "--rm", "--pull", "never", "--mount", "type=bind,src="+src+",dst=/s,bind-propagation=rshared", testImage, "true")
	}
	if err := syscall.Mount("", src, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	c := d.clis()[0]
	id := strings.TrimSpace(c.must(t, d, "run", "-d", "-v", src+":/s:rslave", testImage, "sleep", "1000"))
	// A mount made on the host after the start reaches the container.
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(sub, syscall.MNT_DETACH)
	if got := c.must(t, d, "exec", id, "sh", "-c", "grep -c ' /s/sub ' /proc/mounts"); got != "1\n" {
		t.Fatalf("host mount did not propagate into an rslave bind: %q", got)
	}
	c.must(t, d, "rm", "-f", id)
}

// TestReadOnlyRecursive: a read-only bind is read-only in the source's
// submounts too (docker 25+), unless bind-recursive=writable.
func TestReadOnlyRecursive(t *testing.T) {
	berthOnly(t, "recursively read-only binds are docker 25+; the differential dockerd is 20.10")
	d := startDaemon(t)
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(sub, syscall.MNT_DETACH) })
	for _, c := range d.clis() {
		for _, args := range [][]string{{"-v", src + ":/s:ro"}, {"--mount", "type=bind,src=" + src + ",dst=/s,ro"}} {
			out, errOut, code := c.run(append(append([]string{"run", "--rm"}, args...), testImage, "touch", "/s/sub/x")...)
			if code != 1 || !strings.Contains(errOut, "Read-only file system") {
				t.Fatalf("%s %v: write below a read-only bind: exit %d %q %q", c.name, args, code, out, errOut)
			}
		}
		c.must(t, d, "run", "--rm", "--mount", "type=bind,src="+src+",dst=/s,ro,bind-recursive=writable", testImage, "touch", "/s/sub/x")
		if got := c.must(t, d, "run", "--rm", "--mount", "type=bind,src="+src+",dst=/s,bind-recursive=disabled", testImage, "ls", "/s/sub"); got != "" {
			t.Fatalf("%s: bind-recursive=disabled shows the submount: %q", c.name, got)
		}
	}
}

// TestImageMount: --mount type=image shows an image's files read-only
// (a subpath of it too), keeps the image in use, and goes with the
// container.
func TestImageMount(t *testing.T) {
	berthOnly(t, "image mounts are docker 28; the differential dockerd is 20.10")
	d := startDaemon(t, imageWithConfig("mnt:1", func(cfg map[string]any) { cfg["Labels"] = map[string]any{"m": "1"} }))
	for _, c := range d.clis() {
		out, errOut, code := c.run("run", "--rm", "--mount", "type=image,src="+testImage+",dst=/img", testImage,
			"sh", "-c", "cat /img/etc/group; touch /img/x")
		if code != 1 || !strings.Contains(out, "root:") || !strings.Contains(errOut, "Read-only file system") {
			t.Fatalf("%s: image mount: exit %d %q %q", c.name, code, out, errOut)
		}
		if got := c.must(t, d, "run", "--rm", "--mount", "type=image,src="+testImage+",dst=/img,image-subpath=etc", testImage, "ls", "/img/passwd"); got != "/img/passwd\n" {
			t.Fatalf("%s: image subpath: %q", c.name, got)
		}
		c.refuses(t, "No such image: nosuch:1", "create", "--pull", "never", "--mount", "type=image,src=nosuch:1,dst=/img", testImage, "true")
		id := strings.TrimSpace(c.must(t, d, "run", "-d", "--mount", "type=image,src=mnt:1,dst=/img", testImage, "sleep", "1000"))
		if m := mountsUnder(t, filepath.Join(d.execRoot, "imagemounts")); len(m) != 1 {
			t.Fatalf("%s: image mount on the host: %v", c.name, m)
		}
		c.refuses(t, "is used by container(s) "+id, "rmi", "mnt:1")
		c.must(t, d, "rm", "-f", id)
		if m := mountsUnder(t, filepath.Join(d.execRoot, "imagemounts")); len(m) != 0 {
			t.Fatalf("%s: image mount left: %v", c.name, m)
		}
	}
}

// TestMountErrors: bad specs get docker's errors and leave nothing behind.
func TestMountErrors(t *testing.T) {
	d := startDaemon(t)
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				want string
				args []string
			}{
				{"invalid volume specification: 'a:b:c:d'", []string{"-v", "a:b:c:d"}},
				{"invalid mode: bogus", []string{"-v", "/tmp:/x:bogus"}},
				{"Duplicate mount point: /x", []string{"-v", "v1:/x", "-v", "/tmp:/x"}},
				{"includes invalid characters for a local volume name", []string{"-v", "a$b:/x"}},
				{"No such container: nosuch", []string{"--volumes-from", "nosuch"}},
				{`error looking up volume plugin nfs: plugin "nfs" not found`, []string{"--volume-driver", "nfs", "-v", "vd:/x"}},
				{`error looking up volume plugin nfs: plugin "nfs" not found`, []string{"--mount", "type=volume,dst=/x,volume-driver=nfs"}},
			} {
				// --pull never: a refusal must never send the docker CLI to a registry.
				c.refuses(t, tc.want, append(append([]string{"create", "--pull", "never"}, tc.args...), testImage, "true")...)
			}
			if out := c.must(t, d, "ps", "-aq"); out != "" {
				t.Fatalf("containers left by refused creates: %q", out)
			}
			if out := c.must(t, d, "volume", "ls", "-q"); out != "" && !onDocker { // dockerd 20.10 leaves some
				t.Fatalf("volumes left by refused creates: %q", out)
			}
			c.refuses(t, `invalid option: "bogus"`, "volume", "create", "-o", "bogus=1", "x1")
			c.refuses(t, `missing required option: "device"`, "volume", "create", "-o", "type=tmpfs", "x1")
			c.refuses(t, "get nosuch: no such volume", "volume", "inspect", "nosuch")
		})
	}
}

// TestVolumeRestart: a daemon restart keeps volumes and the containers'
// references; a device-backed volume (local driver options) is mounted
// while a container uses it and unmounted after.
func TestVolumeRestart(t *testing.T) {
	d := startDaemon(t)
	c := d.clis()[0]
	since := fmt.Sprint(time.Now().Add(-time.Second).Unix())
	c.must(t, d, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m,mode=0750", "tv")
	c.must(t, d, "volume", "create", "kept")
	data := d.mountpoint("tv")
	if m := mountsUnder(t, data); len(m) != 0 {
		t.Fatalf("volume mounted before use: %v", m)
	}
	id := strings.TrimSpace(c.must(t, d, "run", "-d", "-v", "tv:/tv", "-v", "kept:/k", testImage, "sh", "-c", "echo x > /tv/f; echo y > /k/f; sleep 1000"))
	if m := mountsUnder(t, data); len(m) != 1 {
		t.Fatalf("device volume not mounted while used: %v", m)
	}
	if got := c.must(t, d, "ps", "-q", "--no-trunc", "--filter", "volume=kept"); got != id+"\n" {
		t.Fatalf("ps --filter volume=kept: %q", got)
	}
	evs := c.must(t, d, "events", "--since", since, "--until", fmt.Sprint(time.Now().Add(time.Second).Unix()), "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.destination}}")
	if onDocker { // dockerd mounts a container's volumes in map order
		l := strings.Split(strings.TrimSpace(evs), "\n")
		slices.Sort(l[2:4])
		slices.Sort(l[4:])
		evs = strings.Join(l, "\n") + "\n"
	}
	if want := "create tv <no value>\ncreate kept <no value>\ncreate kept <no value>\ncreate tv <no value>\nmount kept /k\nmount tv /tv\n"; evs != want {
		t.Fatalf("volume events:\n%s\nwant\n%s", evs, want)
	}
	evs = c.must(t, d, "events", "--since", since, "--until", fmt.Sprint(time.Now().Add(time.Second).Unix()), "--filter", "volume=kept", "--format", "{{.Action}} {{.Actor.Attributes.container}}")
	if want := "create <no value>\ncreate <no value>\nmount " + id + "\n"; evs != want {
		t.Fatalf("events --filter volume=kept:\n%s\nwant\n%s", evs, want)
	}
	d.kill()
	d.start()
	if got := c.must(t, d, "volume", "ls", "-q"); got != "kept\ntv\n" {
		t.Fatalf("volumes after restart: %q", got)
	}
	for _, cl := range d.clis() {
		cl.refuses(t, "remove kept: volume is in use - ["+id+"]", "volume", "rm", "kept")
		if got := cl.must(t, d, "volume", "ls", "-q", "--filter", "dangling=false"); got != "kept\ntv\n" {
			t.Fatalf("%s: volumes in use after the restart: %q", cl.name, got)
		}
	}
	if got := c.must(t, d, "exec", id, "cat", "/tv/f"); got != "x\n" {
		t.Fatalf("volume content after restart: %q", got)
	}
	if onDocker {
		// dockerd 20.10 loses a device volume's users across a restart
		// (a second user gets a fresh tmpfs, its exit unmounts the first
		// user's, then rm says "volume has active mounts"); docker 24+
		// restores them, as berth does below.
		return
	}
	// A second user shares the mounted filesystem.
	if got := c.must(t, d, "run", "--rm", "-v", "tv:/tv", testImage, "cat", "/tv/f"); got != "x\n" {
		t.Fatalf("second user of the tmpfs volume read %q", got)
	}
	if m := mountsUnder(t, data); len(m) != 1 {
		t.Fatalf("device volume after the second user left: %v", m)
	}
	c.must(t, d, "rm", "-f", id)
	if m := mountsUnder(t, data); len(m) != 0 {
		t.Fatalf("device volume still mounted after its last user: %v", m)
	}
	c.must(t, d, "volume", "rm", "tv", "kept")

	// The local driver's bind form: a host directory behind a volume.
	host := t.TempDir()
	c.must(t, d, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device="+host, "hostdir")
	c.must(t, d, "run", "--rm", "-v", "hostdir:/h", testImage, "sh", "-c", "echo via-volume > /h/f")
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "via-volume\n" {
		t.Fatalf("bind-backed volume: %q %v", b, err)
	}
	c.must(t, d, "volume", "rm", "hostdir")
	if _, err := os.Stat(filepath.Join(host, "f")); err != nil {
		t.Fatalf("removing a bind-backed volume touched its device: %v", err)
	}
	if m := mountsUnder(t, filepath.Dir(filepath.Dir(data))); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
}

// TestImageVolumes: an image's VOLUME gets an anonymous volume filled from
// the image, which `run --rm` removes with the container; a -v at the same
// path replaces it.
func TestImageVolumes(t *testing.T) {
	d := startDaemon(t, imageWithConfig("volimg:1", func(cfg map[string]any) {
		cfg["Volumes"] = map[string]any{"/etc": map[string]any{}}
	}))
	for _, c := range d.clis() {
		t.Run(c.name, func(t *testing.T) {
			id := strings.TrimSpace(c.must(t, d, "create", "volimg:1", "cat", "/etc/group"))
			name := strings.TrimSpace(c.must(t, d, "inspect", "-f", `{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}`, id))
			f := strings.Fields(name)
			if len(f) != 4 || f[0] != "volume" || len(f[1]) != 64 || f[2] != "/etc" || f[3] != "true" {
				t.Fatalf("image VOLUME mount: %q", name)
			}
			got := c.must(t, d, "start", "-a", id)
			if !strings.Contains(got, "root:") {
				t.Fatalf("image VOLUME not populated: %q", got)
			}
			if got := c.must(t, d, "volume", "inspect", "-f", "{{json .Labels}}", f[1]); got != `{"com.docker.volume.anonymous":""}`+"\n" && !onDocker { // docker 23+
				t.Fatalf("anonymous volume labels: %s", got)
			}
			c.must(t, d, "rm", id)
			c.must(t, d, "volume", "rm", f[1])

			// run --rm takes its anonymous volumes along.
			c.must(t, d, "run", "--rm", "volimg:1", "true")
			if out := c.must(t, d, "volume", "ls", "-q"); out != "" {
				t.Fatalf("volumes left by run --rm: %q", out)
			}
			// A user mount at the VOLUME's path replaces it, and the
			// container's /etc files are mounted over it (docker's order).
			host := t.TempDir()
			if got := c.must(t, d, "run", "--rm", "-v", host+":/etc", "volimg:1", "grep", "-c", "localhost", "/etc/hosts"); got == "0\n" {
				t.Fatalf("/etc/hosts under a bind at /etc: %q", got)
			}
			if out := c.must(t, d, "volume", "ls", "-q"); out != "" {
				t.Fatalf("volumes made under a bind: %q", out)
			}
		})
	}
}

// TestVolumeAPI: the raw volume routes, their status codes and docker's
// error shape, and HostConfig.Mounts through the Go client.
func TestVolumeAPI(t *testing.T) {
	berthOnly(t, "raw requests with API 1.42+ semantics (prune keeps named volumes); dockerd 20.10 answers 1.41")
	d := startDaemon(t)
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1.45/volumes/create", `{"Name":"api1","Labels":{"a":"b"},"DriverOpts":{}}`, 201, `"Name":"api1"`},
		{"POST", "/volumes/create", `{"Name":"api1"}`, 201, `"Labels":{"a":"b"}`},
		{"POST", "/volumes/create", `{"Name":"x","Driver":"nfsplugin"}`, 404, `{"message":"create x: error looking up volume plugin nfsplugin: plugin \"nfsplugin\" not found"}`},
		{"POST", "/volumes/create", `{"Name":"bad/name"}`, 400, `includes invalid characters`},
		{"POST", "/volumes/create", `{`, 400, `invalid JSON`},
		{"GET", "/volumes/api1", "", 200, `"Scope":"local"`},
		{"GET", "/volumes/nope", "", 404, `{"message":"get nope: no such volume"}`},
		{"GET", `/volumes?filters={"label":["a=b"]}`, "", 200, `"Name":"api1"`},
		{"GET", `/volumes?filters={"bogus":["1"]}`, "", 400, `invalid filter 'bogus'`},
		{"POST", `/containers/create?name=apic`, `{"Image":"busybox:latest","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"volume","Source":"api1","Target":"/v"},{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}}]}}`, 201, `"Id"`},
		{"POST", `/containers/create`, `{"Image":"busybox:latest","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"bind","Target":"/v"}]}}`, 400, `invalid mount config for type \"bind\": field Source must not be empty`},
		{"POST", `/containers/create`, `{"Image":"busybox:latest","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/v","VolumeOptions":{}}]}}`, 400, `field VolumeOptions must not be specified`},
		{"POST", `/containers/create`, `{"Image":"busybox:latest","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"bogus","Target":"/v"}]}}`, 400, `invalid mount config for type \"bogus\": mount type unknown`},
		{"DELETE", "/volumes/api1", "", 409, `remove api1: volume is in use - [`},
		{"DELETE", "/volumes/api1?force=1", "", 409, `volume is in use`},
		{"DELETE", "/volumes/nope", "", 404, `no such volume`},
		{"DELETE", "/volumes/nope?force=1", "", 204, ``},
		{"DELETE", "/containers/apic?v=1", "", 204, ``},
		{"POST", `/volumes/prune?filters={"all":["true"]}`, "", 200, `{"VolumesDeleted":["api1"],"SpaceReclaimed":0}`},
		{"POST", `/volumes/prune?filters={"name":["x"]}`, "", 400, `invalid filter 'name'`},
		// Before API 1.42, prune took named volumes too.
		{"POST", "/volumes/create", `{"Name":"old"}`, 201, `"Name":"old"`},
		{"POST", "/v1.41/volumes/prune", "", 200, `{"VolumesDeleted":["old"],"SpaceReclaimed":0}`},
	} {
		status, body := d.request(tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s\nwant %d and %s", tc.method, tc.path, status, body, tc.status, tc.want)
		}
	}
	if status, body := d.request("GET", "/volumes", ""); status != 200 || body != `{"Volumes":[],"Warnings":[]}`+"\n" {
		t.Errorf("volumes left: %d %s", status, body)
	}
}

func sortedFields(s, sep string) string {
	f := strings.Split(strings.TrimSpace(s), sep)
	slices.Sort(f)
	return strings.Join(f, sep)
}

// TestVolumeOutputs: berth's CLI prints what docker's does for the volume
// verbs' tables, templates, JSON and prune.
func TestVolumeOutputs(t *testing.T) {
	d := startDaemon(t)
	requireDockerCLI(t)
	d.mustDocker("volume", "create", "--label", "a=1", "v1") // one label: docker joins them in map order
	d.mustDocker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "v2")
	d.mustDocker("create", "--name", "user", "-v", "v1:/x", "-v", "/anon", testImage, "true")
	cases := [][]string{
		{"volume", "ls"}, {"volume", "ls", "-q"}, {"volume", "ls", "--format", "json"},
		{"volume", "ls", "--format", "table {{.Name}}\t{{.Labels}}\t{{.Mountpoint}}\t{{.Scope}}\t{{.Links}}"},
		{"volume", "ls", "-f", "dangling=true", "--format", "{{.Name}} {{.Label \"a\"}}"},
		{"volume", "ls", "-f", "label=a"}, {"volume", "ls", "-f", "driver=local", "-q"},
		{"volume", "inspect", "v1", "v2"}, {"volume", "inspect", "-f", "{{json .Options}}", "v2"},
		{"volume", "inspect", "v1", "nosuch"}, {"volume", "rm", "v1"},
		{"inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Mode}} {{.RW}};{{end}}", "user"},
		{"volume", "prune", "-f", "--filter", "label=nosuch"},
		{"volume", "inspect", "-f", "{{json .}}", "v2"},
	}
	if !onDocker { // dockerd lists a container's mounts in map order
		cases = append(cases, []string{"inspect", "-f", "{{json .Mounts}} {{.State}}", "user"})
	}
	for _, args := range cases {
		dout, derr, dcode := d.docker(args...)
		bout, berr, bcode := d.berth(args...)
		if args[0] == "inspect" { // dockerd lists a container's mounts in map order
			dout, bout = sortedFields(dout, ";"), sortedFields(bout, ";")
		}
		if dout != bout || dcode != bcode || strings.ReplaceAll(derr, "docker", "berth") != berr {
			t.Errorf("%v: docker (exit %d):\n%s%s\nberth (exit %d):\n%s%s", args, dcode, dout, derr, bcode, bout, berr)
		}
	}
}
