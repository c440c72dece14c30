package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/regserve"
)

// registry runs `berth registry serve` (deletes allowed) on a free loopback port.
func registry(t *testing.T, flags ...string) string {
	return regserve.Start(t, berthBinary(t), append([]string{"--delete-enabled"}, flags...)...)
}

// TestImageVerbs: tag, push, rmi, pull (and run's pull of a missing image)
// through berth's own registry on loopback, compared with docker's CLI.
func TestImageVerbs(t *testing.T) {
	d := startDaemon(t)
	reg := registry(t)
	ref := reg + "/x:1"
	sameErrors(t, d, "tag", testImage, ref)
	same(t, d, "images", "--format", "{{.Repository}}:{{.Tag}}")
	out := d.must("push", ref)
	if !strings.Contains(out, "The push refers to repository ["+reg+"/x]") || !strings.Contains(out, "1: digest: sha256:") {
		t.Errorf("push:\n%s", out)
	}
	samePush(t, d, ref) // the layers are there now: the same lines from both
	if out := d.must("push", "-q", ref); out != ref+"\n" {
		t.Errorf("push -q: %q", out)
	}
	d.must("tag", testImage, reg+"/y")
	samePush(t, d, reg+"/y") // no tag: "Using default tag: latest"

	// rmi of one of two names only untags (the tag, and the repository's
	// digest with its last tag, as docker does); then pull it back.
	if out := d.must("rmi", ref); !strings.HasPrefix(out, "Untagged: "+ref+"\nUntagged: "+reg+"/x@sha256:") || strings.Count(out, "\n") != 2 {
		t.Errorf("rmi: %q", out)
	}
	sameErrors(t, d, "rmi", "nosuch:1")
	out = d.must("pull", ref)
	if !strings.Contains(out, "Digest: sha256:") || !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Errorf("pull:\n%s", out)
	}
	same(t, d, "pull", ref) // up to date: the same lines from both
	same(t, d, "pull", reg+"/y")
	same(t, d, "pull", "-q", ref)
	if b, k := d.berth("pull", "127.0.0.1:1/nosuch:1"), d.docker("pull", "127.0.0.1:1/nosuch:1"); b.code != k.code || b.code == 0 {
		t.Errorf("pull from nowhere: berth %+v, docker %+v", b, k)
	}

	// run pulls a missing image, as docker does; --pull never does not.
	d.must("rmi", ref)
	r := d.berth("run", "--rm", "--pull", "never", ref, "true")
	if r.code != 125 || r.err != "berth: Unable to find image '"+ref+"' locally; pull it with `berth pull "+ref+"`\n" {
		t.Errorf("run --pull never: %+v", r)
	}
	r = d.berth("run", "--rm", ref, "echo", "auto")
	if r.code != 0 || r.out != "auto\n" || !strings.HasPrefix(r.err, "Unable to find image '"+ref+"' locally\n") {
		t.Errorf("run of a missing image: %+v", r)
	}
	// On a terminal the layers are lines redrawn in place.
	d.must("rmi", ref)
	p := startPty(t, d, "pull", ref)
	p.WaitFor("Status: Downloaded newer image for " + ref)
	if code := p.Wait(); code != 0 {
		t.Errorf("pull on a terminal: exit %d", code)
	}
	screen := p.Screen()
	// The blobs are still there under the image's other names: "Already exists".
	if !strings.Contains(screen, "\x1b[J") || !strings.Contains(screen, ": Already exists\r\n") || !strings.HasSuffix(screen, ref+"\r\n") {
		t.Errorf("pull on a terminal:\n%q", screen)
	}
	if out := d.must("image", "rm", ref); !strings.HasPrefix(out, "Untagged: "+ref+"\nUntagged: "+reg+"/x@sha256:") || strings.Count(out, "\n") != 2 {
		t.Errorf("image rm: %q", out)
	}
	sameErrors(t, d, "image", "rm", ref)

	same(t, d, "history", testImage)
	same(t, d, "history", "--no-trunc", "-q", testImage)
	same(t, d, "image", "history", "-H=false", "--format", "{{.ID}} {{.CreatedAt}} {{.Size}} {{.CreatedBy}}", testImage)
	sameErrors(t, d, "history", "nosuch:1")
	// save → rmi → load, through each CLI in turn.
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	d.must("save", "-o", archive, testImage)
	if fi, err := os.Stat(archive); err != nil || fi.Size() < 1000 {
		t.Fatalf("save -o: %v", err)
	}
	var loaded []string
	for _, cli := range []func(...string) result{d.berth, d.docker} {
		d.must("rmi", testImage)
		r := cli("load", "-i", archive)
		if r.code != 0 {
			t.Fatalf("load: %+v", r)
		}
		loaded = append(loaded, r.out)
	}
	if loaded[0] != loaded[1] || !strings.Contains(loaded[0], "Loaded image: "+testImage) {
		t.Errorf("load output: berth %q, docker %q", loaded[0], loaded[1])
	}
	if r := d.berth("save", "nosuch:1"); r.code != 1 {
		t.Errorf("save of a missing image: %+v", r)
	}

	// prune: the question, a "no", then -f.
	d.must("run", "--name", "stopped1", testImage, "true")
	d.must("run", "--name", "stopped2", testImage, "true")
	var answers []result
	for _, bin := range []string{berthBinary(t), dockerCLI} {
		cmd := exec.Command(bin, "container", "prune")
		cmd.Env = append(os.Environ(), d.env()...)
		cmd.Stdin = strings.NewReader("n\n")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		answers = append(answers, result{out: o.String(), err: e.String(), code: code})
	}
	if answers[0].out != answers[1].out || answers[0].code != answers[1].code {
		t.Errorf("prune answered no:\nberth  %+v\ndocker %+v", answers[0], answers[1])
	}
	out = d.must("container", "prune", "-f")
	if !strings.HasPrefix(out, "Deleted Containers:\n") || strings.Count(out, "\n") != 5 || !strings.HasSuffix(out, "\nTotal reclaimed space: 0B\n") {
		t.Errorf("container prune -f: %q", out)
	}
	same(t, d, "container", "prune", "-f")
	same(t, d, "image", "prune", "-f")
	if out := d.must("image", "prune", "-a", "-f"); !strings.Contains(out, "untagged: "+testImage+"\n") || !strings.Contains(out, "deleted: sha256:") {
		t.Errorf("image prune -a -f: %q", out)
	}
	same(t, d, "images", "--format", "{{.Repository}}:{{.Tag}}")
}

// samePush compares push output from both CLIs; layers are pushed in
// parallel, so their lines are compared in sorted order.
func samePush(t *testing.T, d *daemon, ref string) {
	t.Helper()
	b, k := d.berth("push", ref), d.docker("push", ref)
	if sorted(b.out) != sorted(k.out) || b.code != k.code {
		t.Errorf("push %s:\nberth:\n%s\ndocker:\n%s", ref, b.out, k.out)
	}
}

func sorted(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
