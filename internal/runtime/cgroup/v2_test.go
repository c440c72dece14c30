package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// The v2 tests run on a real cgroup2 mount: /sys/fs/cgroup on a v2 host,
// or on a hybrid host (like the CI machine) the cgroup2 tree at
// /sys/fs/cgroup/unified, which may offer no controllers at all. Freezing,
// cgroup.kill, process listing and removal work there regardless.

func TestV2Lifecycle(t *testing.T) {
	h := requireV2(t)
	m := manage(t, h, nil)
	p := startSleep(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	dir := m.Paths()[""]
	procCgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.pid()))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0::" + testCgroupPath(t) + "\n"; !strings.Contains(string(procCgroup), want) {
		t.Errorf("/proc/%d/cgroup lacks %q:\n%s", p.pid(), want, procCgroup)
	}
	// Every controller the root offers reaches the container's cgroup.
	rootControllers := strings.Fields(readCgroupFile(t, h.unified, "cgroup.controllers"))
	leafControllers := strings.Fields(readCgroupFile(t, dir, "cgroup.controllers"))
	slices.Sort(rootControllers)
	slices.Sort(leafControllers)
	if !slices.Equal(rootControllers, leafControllers) {
		t.Errorf("controllers in %s = %v, want the root's %v", dir, leafControllers, rootControllers)
	}

	loaded, err := Load(m.Paths())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if pids, err := loaded.Pids(); err != nil || !slices.Equal(pids, []int{p.pid()}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, p.pid())
	}
	st, err := loaded.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Pids.Current != 1 { // sleep has one thread
		t.Errorf("pids stats = %+v, want 1 task", st.Pids)
	}

	if err := loaded.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if ev := readCgroupFile(t, dir, "cgroup.events"); !strings.Contains(ev, "frozen 1") {
		t.Errorf("cgroup.events after Freeze:\n%s", ev)
	}
	if frozen, err := loaded.Frozen(); err != nil || !frozen {
		t.Errorf("Frozen = %v, %v", frozen, err)
	}
	if err := loaded.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if ev := readCgroupFile(t, dir, "cgroup.events"); !strings.Contains(ev, "frozen 0") {
		t.Errorf("cgroup.events after Thaw:\n%s", ev)
	}

	if err := loaded.KillAll(unix.SIGKILL); err != nil {
		t.Fatalf("KillAll: %v", err)
	}
	if err := p.wait(t); !killedBy(err, syscall.SIGKILL) {
		t.Fatalf("process ended with %v, want SIGKILL", err)
	}
	if err := loaded.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind", dir)
	}
	if err := loaded.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := loaded.Apply(p.pid()); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Apply on a loaded v2 manager = %v, want FailedPrecondition", err)
	}
}

// TestFreezeStopsProcess watches a process that prints every 5ms go
// quiet while frozen and speak again after Thaw, on each kind of mount.
func TestFreezeStopsProcess(t *testing.T) {
	for _, kind := range []string{"v1", "v2"} {
		t.Run(kind, func(t *testing.T) {
			var h hierarchy
			if kind == "v1" {
				h = requireV1(t)
			} else {
				h = requireV2(t)
			}
			m := manage(t, h, nil)
			p := startHelper(t, "tick")
			if err := m.Apply(p.pid()); err != nil {
				t.Fatal(err)
			}
			p.kick(t)
			ticks := make(chan struct{}, 1024)
			go func() {
				for {
					if _, err := p.out.ReadByte(); err != nil {
						return
					}
					ticks <- struct{}{}
				}
			}()
			waitTick := func(d time.Duration) bool {
				select {
				case <-ticks:
					return true
				case <-time.After(d):
					return false
				}
			}
			if !waitTick(5 * time.Second) {
				t.Fatal("helper never ticked")
			}
			if err := m.Freeze(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let ticks written before the freeze arrive
			for len(ticks) > 0 {
				<-ticks
			}
			if waitTick(200 * time.Millisecond) {
				t.Error("frozen process still ticks")
			}
			if err := m.Thaw(); err != nil {
				t.Fatal(err)
			}
			if !waitTick(5 * time.Second) {
				t.Error("thawed process does not tick")
			}
			if err := m.KillAll(unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := p.wait(t); !killedBy(err, syscall.SIGKILL) {
				t.Fatalf("process ended with %v", err)
			}
		})
	}
}

func TestV2KillAllCatchable(t *testing.T) {
	h := requireV2(t)
	m := manage(t, h, nil)
	first, second := startSleep(t), startSleep(t)
	if err := m.Apply(first.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Join(second.pid()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if err := m.KillAll(unix.SIGTERM); err != nil {
		t.Fatalf("KillAll(SIGTERM): %v", err)
	}
	for _, p := range []*helper{first, second} {
		if err := p.wait(t); !killedBy(err, syscall.SIGTERM) {
			t.Errorf("pid %d ended with %v, want SIGTERM", p.pid(), err)
		}
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Errorf("cgroup left frozen: %v, %v", frozen, err)
	}
}

// TestV2Set writes what the mount's controllers allow, and checks that a
// limit for a controller the mount lacks is refused by name.
func TestV2Set(t *testing.T) {
	h := requireV2(t)
	m := manage(t, h, nil)
	p := startSleep(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	controllers := strings.Fields(readCgroupFile(t, dir, "cgroup.controllers"))

	res := &specs.LinuxResources{Unified: map[string]string{"cgroup.max.descendants": "3"}}
	if slices.Contains(controllers, "hugetlb") && slices.Contains(hugePageSizesOrNil(), "2MB") {
		res.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 * mib}}
	}
	if err := m.Set(res); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got := readCgroupFile(t, dir, "cgroup.max.descendants"); got != "3" {
		t.Errorf("cgroup.max.descendants = %q", got)
	}
	if res.HugepageLimits != nil {
		if got := readCgroupFile(t, dir, "hugetlb.2MB.max"); got != strconv.Itoa(4*mib) {
			t.Errorf("hugetlb.2MB.max = %q", got)
		}
	}

	if !slices.Contains(controllers, "pids") {
		err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](10)}})
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "controller(s) pids not available") {
			t.Errorf("pids limit without a pids controller = %v", err)
		}
	}
}

func hugePageSizesOrNil() []string {
	entries, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	var sizes []string
	for _, e := range entries {
		if kb, ok := strings.CutPrefix(e.Name(), "hugepages-"); ok {
			if n, err := strconv.Atoi(strings.TrimSuffix(kb, "kB")); err == nil && n == 2048 {
				sizes = append(sizes, "2MB")
			}
		}
	}
	return sizes
}

// TestV2Devices checks the eBPF device filter from inside the cgroup.
func TestV2Devices(t *testing.T) {
	h := requireV2(t)
	testDevicePolicy(t, h)
}

// TestV2OpenDir starts a process straight inside the cgroup.
func TestV2OpenDir(t *testing.T) {
	h := requireV2(t)
	m := manage(t, h, nil)
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(nil); err != nil {
		t.Fatal(err)
	}
	dir, err := m.OpenDir()
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	p := startProcess(t, cmd)
	dir.Close()
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{p.pid()}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, p.pid())
	}
	if err := m.KillAll(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); !killedBy(err, syscall.SIGKILL) {
		t.Fatalf("process ended with %v", err)
	}
}

// TestDestroyBusy checks that Destroy names the processes it cannot
// remove the cgroup for, and succeeds once they are gone.
func TestDestroyBusy(t *testing.T) {
	h := requireV2(t)
	m := manage(t, h, nil)
	p := startSleep(t)
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	err := m.Destroy()
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), strconv.Itoa(p.pid())) {
		t.Errorf("Destroy with a live process = %v, want FailedPrecondition naming pid %d", err, p.pid())
	}
	t.Logf("Destroy with a live process: %v", err)
	if err := m.KillAll(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil { // retries while the process exits
		t.Errorf("Destroy after KillAll: %v", err)
	}
}
