package distribution_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/distribution"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

// pullHelperEnv makes the test binary pull "ROOT REF" and exit: the
// process TestPullKilled kills half-way.
const pullHelperEnv = "BERTH_TEST_PULL_HELPER"

func pullHelper(arg string) int {
	root, ref, _ := strings.Cut(arg, " ")
	ctx := context.Background()
	s, err := image.Open(ctx, root, image.Options{})
	if err != nil {
		return 2
	}
	if _, err := distribution.New(s, distribution.Options{}).Pull(ctx, ref, distribution.PullOptions{}); err != nil {
		return 1
	}
	return 0
}

// TestPullKilled: a pull killed with SIGKILL while a layer is half
// downloaded leaves a store that opens, holds no image and no snapshot
// that claims a layer, and pulls the image whole afterwards.
func TestPullKilled(t *testing.T) {
	testutil.RequireRoot(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	good := makeFixture(t, nil, goodLayers(t)...)
	f := newFake(t, map[string]fixture{"v1": good})
	half := make(chan struct{})
	release := make(chan struct{})
	f.blob = func(w http.ResponseWriter, r *http.Request, data []byte) bool {
		if len(data) < 1000 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		select {
		case half <- struct{}{}:
		default:
		}
		<-release // the client dies meanwhile
		panic(http.ErrAbortHandler)
	}
	root := filepath.Join(t.TempDir(), "root")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), pullHelperEnv+"="+root+" "+f.addr()+"/app:v1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the pull never reached the big layer")
	}
	// Give the unpacker a moment to write some of what it got.
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(release)

	ctx := context.Background()
	s, err := image.Open(ctx, root, image.Options{})
	if err != nil {
		t.Fatalf("the store does not open after a killed pull: %v", err)
	}
	defer s.Close()
	requireNoImageNoLayer(t, s)
	f.mu.Lock()
	f.blob = nil
	f.mu.Unlock()
	img, err := distribution.New(s, distribution.Options{}).Pull(ctx, f.addr()+"/app:v1", distribution.PullOptions{})
	if err != nil {
		t.Fatalf("pull after a killed pull: %v", err)
	}
	requireNoise(t, s, img)
}

// requireNoise checks img's etc/noise, the big layer of goodLayers.
func requireNoise(t *testing.T, s *image.Service, img image.Image) {
	t.Helper()
	ctx := context.Background()
	m, err := s.View(ctx, img.Name, "check")
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.WithTempMount(ctx, m, func(r string) error {
		b, err := os.ReadFile(filepath.Join(r, "etc/noise"))
		if err != nil || string(b) != noise(64<<10) {
			t.Errorf("etc/noise: %d bytes, %v", len(b), err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// requireNoImageNoLayer: no image, and no committed snapshot (a layer the
// store would trust); uncommitted unpack snapshots are the GC's.
func requireNoImageNoLayer(t *testing.T, s *image.Service) {
	t.Helper()
	ctx := context.Background()
	if sums, err := s.List(ctx); err != nil || len(sums) != 0 {
		t.Errorf("images after a killed pull: %+v %v", sums, err)
	}
	s.Snapshots().Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		if i.Kind == snapshot.KindCommitted {
			t.Errorf("a committed snapshot after a killed pull: %+v", i)
		}
		return nil
	})
}
