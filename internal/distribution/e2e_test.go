package distribution_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/distribution/registrytest"
	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

// events collects progress events.
type events struct {
	mu sync.Mutex
	ev []distribution.Progress
}

func (e *events) add(p distribution.Progress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, p)
}

func (e *events) count(status string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, p := range e.ev {
		if p.Status == status {
			n++
		}
	}
	return n
}

func TestPushPullRun(t *testing.T) {
	testutil.RequireRoot(t)
	reg := registrytest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, want := imagetest.Layers(t)
	name := reg.Addr + "/test/app:v1"

	src := imagetest.Open(t)
	imagetest.Create(t, src, name)
	var pushEv events
	pushed, err := distribution.New(src, distribution.Options{}).Push(ctx, name, distribution.PushOptions{Progress: pushEv.add})
	if err != nil {
		t.Fatal(err)
	}
	if n := pushEv.count(distribution.StatusPushed); n != 3 {
		t.Errorf("%d layers pushed, want 3: %+v", n, pushEv.ev)
	}

	// Pull into an empty store.
	dst := imagetest.Open(t)
	c := distribution.New(dst, distribution.Options{})
	var pullEv events
	img, err := c.Pull(ctx, name, distribution.PullOptions{Progress: pullEv.add})
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != pushed.Digest {
		t.Errorf("pulled %s, pushed %s", img.Target.Digest, pushed.Digest)
	}
	for _, st := range []string{distribution.StatusPullingFsLayer, distribution.StatusDownloadComplete, distribution.StatusPullComplete} {
		if n := pullEv.count(st); n != 3 {
			t.Errorf("%d %q events, want 3", n, st)
		}
	}
	if pullEv.count(distribution.StatusDownloadedNewer) != 1 {
		t.Errorf("no %q event: %+v", distribution.StatusDownloadedNewer, pullEv.ev)
	}
	det, err := dst.Inspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !det.Unpacked || len(det.RepoDigests) != 1 || !strings.HasSuffix(det.RepoDigests[0], pushed.Digest.String()) {
		t.Errorf("inspect: unpacked %v, repo digests %v", det.Unpacked, det.RepoDigests)
	}

	// The tree, file by file, and a container running from it.
	m, err := dst.Mounts(ctx, name, "ctr-1")
	if err != nil {
		t.Fatal(err)
	}
	err = snapshot.WithTempMount(ctx, m, func(root string) error {
		imagetest.Compare(t, want, root)
		out := runContainer(t, root, "sh", "-c", "cat /srv/msg; ls /opt/old; test -e /etc/motd || echo gone")
		if wantOut := imagetest.Message + "new\nnew2\ngone\n"; out != wantOut {
			t.Errorf("container printed %q, want %q", out, wantOut)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Pulling again fetches nothing; by digest too.
	var again events
	if _, err := c.Pull(ctx, name, distribution.PullOptions{Progress: again.add}); err != nil {
		t.Fatal(err)
	}
	if again.count(distribution.StatusAlreadyExists) != 3 || again.count(distribution.StatusImageUpToDate) != 1 {
		t.Errorf("second pull: %+v", again.ev)
	}
	byDigest := reg.Addr + "/test/app@" + pushed.Digest.String()
	if _, err := c.Pull(ctx, byDigest, distribution.PullOptions{}); err != nil {
		t.Fatal(err)
	}

	// Pushing to another repository of the same registry mounts the blobs.
	if _, err := dst.Tag(ctx, name, reg.Addr+"/other/app:v2"); err != nil {
		t.Fatal(err)
	}
	var mountEv events
	if _, err := c.Push(ctx, reg.Addr+"/other/app:v2", distribution.PushOptions{Progress: mountEv.add}); err != nil {
		t.Fatal(err)
	}
	if n := mountEv.count(distribution.StatusMounted); n != 3 {
		t.Errorf("%d layers mounted across repositories, want 3: %+v", n, mountEv.ev)
	}
	if err := dst.RemoveMounts(ctx, "ctr-1"); err != nil {
		t.Fatal(err)
	}
}

var (
	berthOnce sync.Once
	berthBin  string
	berthErr  error
)

// TestMain removes the berth binary the end-to-end tests built.
func TestMain(m *testing.M) {
	if arg := os.Getenv(pullHelperEnv); arg != "" {
		os.Exit(pullHelper(arg))
	}
	cleanCgroups := testutil.CgroupParents("berth", "berth-test")
	code := m.Run()
	cleanCgroups()
	if berthBin != "" {
		os.RemoveAll(filepath.Dir(berthBin))
	}
	os.Exit(code)
}

// berth builds cmd/berth once per test binary.
func berth(t *testing.T) string {
	berthOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-dist-test-")
		if err != nil {
			berthErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBin, "github.com/berth-dev/berth/cmd/berth")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			berthErr = fmt.Errorf("build berth: %v\n%s", err, out)
		}
	})
	if berthErr != nil {
		t.Fatal(berthErr)
	}
	return berthBin
}

// runContainer runs args in a container whose root is rootfs with `berth
// runtime run` and returns its standard output.
func runContainer(t *testing.T, rootfs string, args ...string) string {
	t.Helper()
	bin := berth(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := runtime.DefaultSpec()
	spec.Root.Path = rootfs
	spec.Root.Readonly = false
	spec.Process.Terminal = false
	spec.Process.Args = args
	spec.Linux.CgroupsPath = "/berth-test/dist-" + strings.ReplaceAll(t.Name(), "/", "-")
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	var stderr strings.Builder
	cmd := exec.Command(bin, "runtime", "--root", filepath.Join(dir, "state"), "run", "--bundle", bundle, "dist-test")
	cmd.Stdout, cmd.Stderr = outF, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("berth runtime run: %v\n%s", err, stderr.String())
	}
	out, _ := os.ReadFile(outF.Name())
	for _, sub := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""} {
		os.Remove(filepath.Join("/sys/fs/cgroup", sub, "berth-test", "dist-"+strings.ReplaceAll(t.Name(), "/", "-")))
	}
	return string(out)
}
