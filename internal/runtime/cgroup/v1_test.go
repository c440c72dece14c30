package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

const mib = 1 << 20

// blockDevice returns the major and minor numbers of some real block
// device, for throttle rules, or ok=false.
func blockDevice(t *testing.T) (major, minor int64, ok bool) {
	t.Helper()
	devs, _ := filepath.Glob("/sys/block/*/dev")
	slices.SortFunc(devs, func(a, b string) int { // prefer a disk over loop and zram
		return strings.Compare(strings.Replace(a, "/vd", "/0", 1), strings.Replace(b, "/vd", "/0", 1))
	})
	for _, d := range devs {
		data, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(string(data)), "%d:%d", &major, &minor); err == nil {
			return major, minor, true
		}
	}
	return 0, 0, false
}

func TestV1Lifecycle(t *testing.T) {
	h := requireV1(t)
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Reservation: ptr[int64](32 * mib), Swap: ptr[int64](128 * mib)},
		CPU: &specs.LinuxCPU{
			Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000),
			Cpus: "0", Mems: "0",
		},
		Pids:    &specs.LinuxPids{Limit: ptr[int64](64)},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	major, minor, haveDisk := blockDevice(t)
	if haveDisk {
		res.BlockIO = &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 * mib},
		}}
	}
	m := manage(t, h, res)
	p := startHelper(t, "spin")
	if err := m.Apply(p.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := m.Set(res); err != nil {
		t.Fatalf("Set: %v", err)
	}
	paths := m.Paths()
	for _, name := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"} {
		if _, mounted := h.v1[name]; mounted && paths[name] == "" {
			t.Errorf("no %s cgroup made; paths: %v", name, paths)
		}
	}

	checks := []struct{ subsystem, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 * mib)},
		{"memory", "memory.soft_limit_in_bytes", strconv.Itoa(32 * mib)},
		{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(128 * mib)},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
		{"pids", "pids.max", "64"},
	}
	if haveDisk {
		checks = append(checks, struct{ subsystem, file, want string }{
			"blkio", "blkio.throttle.read_bps_device", fmt.Sprintf("%d:%d %d", major, minor, mib)})
	}
	for _, c := range checks {
		dir := paths[c.subsystem]
		if dir == "" {
			t.Logf("skip %s: %s not mounted", c.file, c.subsystem)
			continue
		}
		if got := readCgroupFile(t, dir, c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	devices := readCgroupFile(t, paths["devices"], "devices.list")
	if strings.Contains(devices, "a *:* rwm") || !strings.Contains(devices, "c 1:3 rwm") || !strings.Contains(devices, "c 136:* rwm") {
		t.Errorf("devices.list is not deny-all plus the defaults:\n%s", devices)
	}
	procCgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.pid()))
	if err != nil {
		t.Fatal(err)
	}
	inner := testCgroupPath(t)
	for _, sub := range []string{"memory", "pids", "freezer", "devices"} {
		if !strings.Contains(string(procCgroup), ":"+sub+":"+inner+"\n") {
			t.Errorf("process not in %s cgroup %s:\n%s", sub, inner, procCgroup)
		}
	}

	p.kick(t)
	if got := p.readLine(t); got != "spun" {
		t.Fatalf("helper said %q", got)
	}

	// A second process, like `berth runtime kill` would be, works from
	// the persisted paths alone.
	loaded, err := Load(paths)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	pids, err := loaded.Pids()
	if err != nil || !slices.Equal(pids, []int{p.pid()}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, p.pid())
	}

	st, err := loaded.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Memory.Limit != 64*mib || st.Memory.Usage == 0 || st.Memory.Stat == nil {
		t.Errorf("memory stats = %+v", st.Memory)
	}
	if st.Pids.Current < 1 || st.Pids.Limit != 64 { // pids counts threads
		t.Errorf("pids stats = %+v", st.Pids)
	}
	if st.CPU.Total < uint64(20*time.Millisecond) || st.CPU.User+st.CPU.System == 0 { // the helper spun for 30ms of CPU
		t.Errorf("cpu stats = %+v, want >= 20ms used", st.CPU)
	}
	t.Logf("stats: cpu %v user %v sys %v, memory %d/%d, pids %d/%d, blkio r %d w %d",
		time.Duration(st.CPU.Total), time.Duration(st.CPU.User), time.Duration(st.CPU.System),
		st.Memory.Usage, st.Memory.Limit, st.Pids.Current, st.Pids.Limit, st.Blkio.ReadBytes, st.Blkio.WriteBytes)

	if err := loaded.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if s := procState(t, p.pid()); s != "D" {
		t.Errorf("frozen process state %q, want D", s)
	}
	if frozen, err := loaded.Frozen(); err != nil || !frozen {
		t.Errorf("Frozen = %v, %v", frozen, err)
	}
	if err := loaded.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if s := procState(t, p.pid()); s == "D" {
		t.Errorf("thawed process still in state D")
	}
	if frozen, err := loaded.Frozen(); err != nil || frozen {
		t.Errorf("Frozen after thaw = %v, %v", frozen, err)
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
	for name, dir := range paths {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s cgroup %s left behind", name, dir)
		}
	}
	if err := loaded.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if _, err := loaded.Pids(); !errdefs.IsNotFound(err) {
		t.Errorf("Pids after Destroy = %v, want NotFound", err)
	}
}

func TestV1OOMKill(t *testing.T) {
	h := requireV1(t)
	// memory+swap equal to memory: no swap to escape to.
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](16 * mib), Swap: ptr[int64](16 * mib)}}
	m := manage(t, h, res)
	p := startHelper(t, "hog:64")
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 0 {
		t.Fatalf("OOMKillCount before = %d, %v", n, err)
	}
	p.kick(t)
	if err := p.wait(t); !killedBy(err, syscall.SIGKILL) {
		t.Fatalf("hog ended with %v, want an OOM kill", err)
	}
	n, err := m.OOMKillCount()
	if err != nil || n < 1 {
		t.Fatalf("OOMKillCount = %d, %v; want >= 1", n, err)
	}
	t.Logf("OOM kills: %d", n)
}

func TestV1Join(t *testing.T) {
	h := requireV1(t)
	m := manage(t, h, nil)
	first, second := startSleep(t), startSleep(t)
	if err := m.Apply(first.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(nil); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Join(second.pid()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	// An update from another process changes limits, not devices.
	if err := loaded.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](32 * mib)}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got := readCgroupFile(t, m.Paths()["memory"], "memory.limit_in_bytes"); got != strconv.Itoa(32*mib) {
		t.Errorf("updated memory.limit_in_bytes = %s", got)
	}
	if devices := readCgroupFile(t, m.Paths()["devices"], "devices.list"); strings.Contains(devices, "a *:* rwm") {
		t.Errorf("devices.list after update:\n%s", devices)
	}
	pids, err := m.Pids()
	slices.Sort(pids)
	want := []int{first.pid(), second.pid()}
	slices.Sort(want)
	if err != nil || !slices.Equal(pids, want) {
		t.Fatalf("Pids = %v, %v; want %v", pids, err, want)
	}
	// kill --all with a catchable signal: freeze, signal, thaw.
	if err := m.KillAll(unix.SIGTERM); err != nil {
		t.Fatalf("KillAll(SIGTERM): %v", err)
	}
	for _, p := range []*helper{first, second} {
		if err := p.wait(t); !killedBy(err, syscall.SIGTERM) {
			t.Errorf("pid %d ended with %v, want SIGTERM", p.pid(), err)
		}
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Errorf("cgroup left frozen after KillAll: %v, %v", frozen, err)
	}
}

func TestV1BlkioWeight(t *testing.T) {
	h := requireV1(t)
	res := &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}}
	m := manage(t, h, res)
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	blkio := m.Paths()["blkio"]
	if blkio == "" {
		t.Skip("no v1 blkio hierarchy")
	}
	weightFile := ""
	for _, f := range []string{"blkio.bfq.weight", "blkio.weight"} {
		if _, err := os.Stat(filepath.Join(blkio, f)); err == nil {
			weightFile = f
		}
	}
	err := m.Set(res)
	if weightFile == "" {
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "no weight files") {
			t.Errorf("Set with a weight on a kernel without weight files = %v, want a clear FailedPrecondition", err)
		}
		t.Skipf("blkio has no weight files on this kernel (no CFQ/BFQ); Set says: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := readCgroupFile(t, blkio, weightFile); !strings.Contains(got, "500") {
		t.Errorf("%s = %q, want 500", weightFile, got)
	}
}

// TestV1Devices checks the device allowlist from inside the cgroup.
func TestV1Devices(t *testing.T) {
	h := requireV1(t)
	testDevicePolicy(t, h)
}

func testDevicePolicy(t *testing.T, h hierarchy) {
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skip("no /dev/kmsg to be denied")
	}
	res := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	m := manage(t, h, res)
	p := startHelper(t, "open:/dev/null,/dev/kmsg")
	if err := m.Apply(p.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatalf("Set devices: %v", err)
	}
	p.kick(t)
	if got := p.readLine(t); got != "ok EPERM" {
		t.Errorf("opening /dev/null and /dev/kmsg gave %q, want \"ok EPERM\"", got)
	}
	if err := p.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestV1Cpuset(t *testing.T) {
	h := requireV1(t)
	_, err := newManager(testCgroupPath(t), "", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0,4000-4001"}}, h)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "4000-4001 do not exist") {
		t.Errorf("cpuset of missing CPUs: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestV1RefusesUnified(t *testing.T) {
	h := requireV1(t)
	_, err := newManager(testCgroupPath(t), "", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1M"}}, h)
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("unified on v1 = %v, want InvalidArgument", err)
	}
}

func TestV1OpenDirRefused(t *testing.T) {
	h := requireV1(t)
	m := manage(t, h, nil)
	if _, err := m.OpenDir(); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("OpenDir on v1 = %v, want NotImplemented", err)
	}
}
