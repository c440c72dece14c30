package cgroup

import (
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/errdefs"
)

// These tests need neither root nor a cgroup mount.

func TestInnerPath(t *testing.T) {
	for _, c := range []struct{ path, id, want, errClass string }{
		{"", "abc", "/berth/abc", ""},
		{"/kubepods/pod1/ctr", "x", "/kubepods/pod1/ctr", ""},
		{"mine/ctr", "x", "/mine/ctr", ""},
		{"/a/../../../etc", "x", "/etc", ""},
		{"../../x", "x", "/x", ""},
		{"system.slice:docker:abc", "abc", "", "not implemented"},
		{"/", "x", "", "invalid argument"},
		{"..", "x", "", "invalid argument"},
		{"", "", "", "invalid argument"},
		{"", "a/b", "", "invalid argument"},
		{"", "..", "", "invalid argument"},
	} {
		got, err := innerPath(c.path, c.id)
		switch {
		case c.errClass != "":
			if err == nil || !strings.Contains(err.Error(), c.errClass) {
				t.Errorf("innerPath(%q, %q) = %q, %v; want a %s error", c.path, c.id, got, err, c.errClass)
			}
		case err != nil || got != c.want:
			t.Errorf("innerPath(%q, %q) = %q, %v; want %q", c.path, c.id, got, err, c.want)
		}
	}
}

func TestHierarchyFromMounts(t *testing.T) {
	v1 := func(mnt, opts string) *mountinfo.Info {
		return &mountinfo.Info{FSType: "cgroup", Mountpoint: mnt, VFSOptions: opts}
	}
	v2 := func(mnt string) *mountinfo.Info { return &mountinfo.Info{FSType: "cgroup2", Mountpoint: mnt} }

	hybrid, err := hierarchyFromMounts([]*mountinfo.Info{
		v1("/sys/fs/cgroup/cpu,cpuacct", "rw,cpu,cpuacct"),
		v1("/sys/fs/cgroup/memory", "rw,memory"),
		v1("/elsewhere/memory", "rw,memory"),
		v1("/sys/fs/cgroup/systemd", "rw,xattr,name=systemd"),
		v1("/sys/fs/cgroup/odd", "rw,name=odd"),
		v2("/sys/fs/cgroup/unified"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"memory": "/sys/fs/cgroup/memory", systemdHierarchy: "/sys/fs/cgroup/systemd",
	}
	if hybrid.isV2() || !maps.Equal(hybrid.v1, want) || hybrid.hybrid != hybridMount {
		t.Errorf("hybrid host read as %+v", hybrid)
	}

	unified, err := hierarchyFromMounts([]*mountinfo.Info{v2("/run/cg2")})
	if err != nil || unified.unified != "/run/cg2" {
		t.Errorf("v2-only host read as %+v, %v", unified, err)
	}
	legacy, err := hierarchyFromMounts([]*mountinfo.Info{v1("/cg/devices", "rw,devices"), v2("/somewhere/else")})
	if err != nil || legacy.isV2() || legacy.hybrid != "" {
		t.Errorf("v1 host with a stray cgroup2 read as %+v, %v", legacy, err)
	}
	if _, err := hierarchyFromMounts(nil); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("no mounts: %v", err)
	}
}

func TestNewPaths(t *testing.T) {
	h := hierarchy{
		v1: map[string]string{
			"cpu": "/cg/cpu,cpuacct", "cpuacct": "/cg/cpu,cpuacct", "memory": "/cg/memory", "devices": "/cg/devices",
			"hugetlb": "/cg/hugetlb", "net_cls": "/cg/net_cls", "misc": "/cg/misc", systemdHierarchy: "/cg/systemd",
		},
		hybrid: "/cg/unified",
	}
	m, err := newManager("", "c1", nil, h)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu": "/cg/cpu,cpuacct/berth/c1", "cpuacct": "/cg/cpu,cpuacct/berth/c1", "memory": "/cg/memory/berth/c1",
		"devices": "/cg/devices/berth/c1", systemdHierarchy: "/cg/systemd/berth/c1", "": "/cg/unified/berth/c1",
	}
	if got := m.Paths(); !maps.Equal(got, want) {
		t.Errorf("paths without limits = %v, want %v", got, want)
	}
	withHuge, err := newManager("", "c1", &specs.LinuxResources{
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: firstHugePageSize(t), Limit: 1 << 21}},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	if withHuge.Paths()["hugetlb"] != "/cg/hugetlb/berth/c1" {
		t.Errorf("hugetlb not joined for hugepage limits: %v", withHuge.Paths())
	}

	noDevices := hierarchy{v1: map[string]string{"memory": "/cg/memory"}}
	if _, err := newManager("", "c1", nil, noDevices); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("v1 without devices: %v", err)
	}

	v2, err := newManager("/k8s/pod", "c1", nil, hierarchy{unified: "/sys/fs/cgroup"})
	if err != nil || !maps.Equal(v2.Paths(), map[string]string{"": "/sys/fs/cgroup/k8s/pod"}) {
		t.Errorf("v2 paths = %v, %v", v2.Paths(), err)
	}
}

// TestNew reads this host's mounts; it needs no root.
func TestNew(t *testing.T) {
	h, err := detectHierarchy()
	if err != nil {
		t.Skipf("no cgroup mounts: %v", err)
	}
	m, err := New("", "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	if h.isV2() {
		if !m.v2 || paths[""] != filepath.Join(h.unified, "berth/c1") {
			t.Errorf("v2 host: paths %v", paths)
		}
		return
	}
	if m.v2 || paths["devices"] != filepath.Join(h.v1["devices"], "berth/c1") {
		t.Errorf("v1 host: paths %v", paths)
	}
	if h.hybrid != "" && paths[""] != filepath.Join(h.hybrid, "berth/c1") {
		t.Errorf("hybrid host without the cgroup2 path: %v", paths)
	}
}

func firstHugePageSize(t *testing.T) string {
	sizes := cgroups.HugePageSizes()
	if len(sizes) == 0 {
		t.Skip("kernel offers no huge pages")
	}
	return sizes[0]
}

func TestLoadValidates(t *testing.T) {
	for _, paths := range []map[string]string{
		nil,
		{"": "relative/dir"},
		{"memory": "/sys/fs/cgroup/memory/../../etc"},
		{"bogus": "/sys/fs/cgroup/bogus/x"},
		{"": "/"},
	} {
		if _, err := Load(paths); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Load(%v) = %v, want InvalidArgument", paths, err)
		}
	}
	m, err := Load(map[string]string{"": "/sys/fs/cgroup/berth/x"})
	if err != nil || !m.v2 {
		t.Errorf("Load of a v2 path: %+v, %v", m, err)
	}
	m, err = Load(map[string]string{"": "/sys/fs/cgroup/unified/berth/x", "devices": "/sys/fs/cgroup/devices/berth/x"})
	if err != nil || m.v2 || m.procsDir() != "/sys/fs/cgroup/devices/berth/x" {
		t.Errorf("Load of hybrid paths: %+v, %v", m, err)
	}
}

func TestParseList(t *testing.T) {
	for in, want := range map[string][]span{
		"0":          {{0, 0}},
		"0-3,8":      {{0, 3}, {8, 8}},
		" 1 , 4-5 ":  {{1, 1}, {4, 5}},
		"0-1,3,5-63": {{0, 1}, {3, 3}, {5, 63}},
	} {
		got, err := parseList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "3-1", "-1", "1-", "1,,2", "99999999"} {
		if got, err := parseList(in); err == nil {
			t.Errorf("parseList(%q) = %v, want an error", in, got)
		}
	}
	have := []span{{0, 1}, {4, 4}}
	want, _ := parseList("0-7,9")
	if got := formatList(uncovered(want, have)); got != "2-3,5-7,9" {
		t.Errorf("uncovered = %q", got)
	}
}

func TestCheckCPUList(t *testing.T) {
	online := filepath.Join(t.TempDir(), "online")
	if err := os.WriteFile(online, []byte("0-3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkCPUList("cpu.cpus", "1-3", online, ""); err != nil {
		t.Errorf("existing CPUs refused: %v", err)
	}
	err := checkCPUList("cpu.cpus", "2-5", online, "")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `cpu.cpus "2-5": 4-5 do not exist or are not online (this machine has 0-3)`) {
		t.Errorf("missing CPUs: %v", err)
	}
	err = checkCPUList("cpu.mems", "1", filepath.Join(t.TempDir(), "absent"), "0")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `cpu.mems "1": 1 does not exist or is not online (this machine has 0)`) {
		t.Errorf("missing node on a non-NUMA kernel: %v", err)
	}
}

func TestConvertRejects(t *testing.T) {
	for name, c := range map[string]struct {
		res  specs.LinuxResources
		v2   bool
		want string
	}{
		"swap below limit":   {res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](100), Swap: ptr[int64](50)}}, want: "below memory.limit"},
		"swap without limit": {res: specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr[int64](50)}}, want: "needs memory.limit"},
		"negative limit":     {res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-2)}}, want: "use -1"},
		"swappiness":         {res: specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr[uint64](101)}}, want: "outside 0-100"},
		"tiny quota":         {res: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](500)}}, want: "minimum"},
		"long period":        {res: specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr[uint64](2000000)}}, want: "cpu.period"},
		"realtime on v2":     {res: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr[int64](1000)}}, v2: true, want: "realtime"},
		"bad cpus":           {res: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-x"}}, want: "cpu.cpus"},
		"pids":               {res: specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](-5)}}, want: "pids.limit"},
		"blkio weight":       {res: specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](5)}}, want: "outside 10-1000"},
		"unified on v1":      {res: specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, want: "cgroup v1"},
		"unified path":       {res: specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, v2: true, want: "not a cgroup file name"},
		"device type":        {res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "p"}}}, want: "devices[0]"},
		"device access":      {res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "rx"}}}, want: "access"},
		"hugepage size":      {res: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB"}}}, want: "page size"},
	} {
		_, err := convertResources(&c.res, c.v2, slog.Default())
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want InvalidArgument mentioning %q", name, err, c.want)
		}
	}
	// Every problem is reported, not only the first.
	_, err := convertResources(&specs.LinuxResources{
		CPU:  &specs.LinuxCPU{Quota: ptr[int64](1)},
		Pids: &specs.LinuxPids{Limit: ptr[int64](-9)},
	}, false, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "cpu.quota") || !strings.Contains(err.Error(), "pids.limit") {
		t.Errorf("two problems reported as %v", err)
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, weight := range map[uint64]uint64{2: 1, 1024: 100, 262144: 10000, 512: 59, 2048: 174} {
		r, err := convertResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(shares)}}, true, slog.Default())
		if err != nil || r.CpuWeight != weight {
			t.Errorf("shares %d → weight %d, %v; want %d", shares, r.CpuWeight, err, weight)
		}
	}
	r, _ := convertResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr[uint64](512)}}, false, slog.Default())
	if r.CpuShares != 512 || r.CpuWeight != 0 {
		t.Errorf("v1 keeps shares as they are: %+v", r)
	}
}

func TestDeviceRule(t *testing.T) {
	rule, err := deviceRule(specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr[int64](1), Access: "wr"})
	if err != nil {
		t.Fatal(err)
	}
	want := devconfig.Rule{Allow: true, Type: devconfig.CharDevice, Major: 1, Minor: devconfig.Wildcard, Permissions: "rw"}
	if *rule != want {
		t.Errorf("rule = %+v, want %+v", *rule, want)
	}
	rule, _ = deviceRule(specs.LinuxDeviceCgroup{})
	if rule.CgroupString() != "a *:* rwm" || rule.Allow {
		t.Errorf("empty rule = %q allow=%v, want deny a *:* rwm", rule.CgroupString(), rule.Allow)
	}
}

func TestV2ControllersNeeded(t *testing.T) {
	r, err := convertResources(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: ptr[int64](1 << 30)},
		CPU:     &specs.LinuxCPU{Quota: ptr[int64](10000)},
		Unified: map[string]string{"io.max": "8:0 rbps=1", "cgroup.max.depth": "2", "memory.high": "1G"},
	}, true, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if got := v2ControllersNeeded(r); !slices.Equal(got, []string{"memory", "cpu", "io"}) {
		t.Errorf("needed = %v", got)
	}
}

func TestStatsFrom(t *testing.T) {
	s := cgroups.NewStats()
	s.MemoryStats.Usage = cgroups.MemoryData{Usage: 10, MaxUsage: 20, Limit: 9223372036854771712}
	s.MemoryStats.Stats["total_inactive_file"] = 3
	s.BlkioStats.IoServiceBytesRecursive = []cgroups.BlkioStatEntry{
		{Major: 8, Minor: 0, Op: "Read", Value: 100}, {Major: 8, Minor: 0, Op: "Write", Value: 7},
		{Major: 8, Minor: 0, Op: "Total", Value: 107}, {Major: 254, Minor: 0, Op: "Read", Value: 1},
	}
	got := statsFrom(s, false)
	if got.Memory.Limit != 0 || got.Memory.InactiveFile != 3 || got.Memory.MaxUsage != 20 {
		t.Errorf("v1 memory = %+v", got.Memory)
	}
	if got.Blkio.ReadBytes != 101 || got.Blkio.WriteBytes != 7 || len(got.Blkio.Devices) != 2 || got.Blkio.Devices[0].ReadBytes != 100 {
		t.Errorf("blkio = %+v", got.Blkio)
	}
	s.MemoryStats.Usage.Limit = math.MaxUint64
	if statsFrom(s, true).Memory.Limit != 0 {
		t.Error("v2 max not read as unlimited")
	}
	s.MemoryStats.Usage.Limit = 1 << 30
	if statsFrom(s, true).Memory.Limit != 1<<30 {
		t.Error("v2 limit lost")
	}
}

// fakeCgroupFS points opencontainers/cgroups at plain files for one test:
// its TestMode creates the files it writes and skips the cgroupfs check.
func fakeCgroupFS(t *testing.T, files map[string]string) string {
	t.Helper()
	cgroups.TestMode = true
	t.Cleanup(func() { cgroups.TestMode = false })
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFake(t *testing.T, dir, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Errorf("%s not written: %v", file, err)
	}
	return string(data)
}

// TestV2Files checks what Set writes on v2 for OCI values: the memory,
// swap, cpu.weight/cpu.max, pids and io conversions.
func TestV2Files(t *testing.T) {
	for name, c := range map[string]struct {
		res   specs.LinuxResources
		files map[string]string
		none  []string
	}{
		"limits": {
			res: specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Reservation: ptr[int64](32 * mib), Swap: ptr[int64](96 * mib),
					Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true), Kernel: ptr[int64](mib)},
				CPU:     &specs.LinuxCPU{Shares: ptr[uint64](1024), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0"},
				Pids:    &specs.LinuxPids{Limit: ptr[int64](100)},
				BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)},
			},
			files: map[string]string{
				"memory.max": strconv.Itoa(64 * mib), "memory.low": strconv.Itoa(32 * mib), "memory.swap.max": strconv.Itoa(32 * mib),
				"cpu.weight": "100", "cpu.max": "50000 100000", "pids.max": "100", "io.weight": "4950", "cpuset.cpus": "0",
			},
			none: []string{"memory.swappiness", "memory.oom.group"},
		},
		"swap equal to memory disables swap": {
			res:   specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Swap: ptr[int64](64 * mib)}},
			files: map[string]string{"memory.max": strconv.Itoa(64 * mib), "memory.swap.max": "0"},
		},
		"unlimited": {
			res: specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: ptr[int64](-1)},
				CPU:    &specs.LinuxCPU{Quota: ptr[int64](-1)},
				Pids:   &specs.LinuxPids{Limit: ptr[int64](-1)},
			},
			files: map[string]string{"memory.max": "max", "memory.swap.max": "max", "cpu.max": "max 100000", "pids.max": "max"},
		},
		"period alone": {
			res:   specs.LinuxResources{CPU: &specs.LinuxCPU{Period: ptr[uint64](20000)}},
			files: map[string]string{"cpu.max": "max 20000"},
		},
		"unified": {
			res:   specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000", "cgroup.max.depth": "4"}},
			files: map[string]string{"memory.high": "1000000", "cgroup.max.depth": "4"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := fakeCgroupFS(t, map[string]string{"cgroup.controllers": "cpuset cpu io memory hugetlb pids"})
			m, err := Load(map[string]string{"": dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&c.res); err != nil {
				t.Fatalf("Set: %v", err)
			}
			for file, want := range c.files {
				if got := readFake(t, dir, file); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
			for _, file := range c.none {
				if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
					t.Errorf("%s written on v2", file)
				}
			}
		})
	}
}

// TestV1Files checks what Set writes on v1 for the same kind of values.
func TestV1Files(t *testing.T) {
	dir := fakeCgroupFS(t, map[string]string{
		"memory/memory.limit_in_bytes":         "9223372036854771712",
		"cpuset/cpuset.cpus":                   "",
		"cpuset/cpuset.mems":                   "",
		"cpu/cpu.shares":                       "1024",
		"pids/pids.max":                        "max",
		"blkio/blkio.throttle.read_bps_device": "",
		"devices/devices.list":                 "a *:* rwm",
		"freezer/freezer.state":                "THAWED",
	})
	paths := map[string]string{}
	for _, s := range []string{"memory", "cpuset", "cpu", "pids", "blkio", "devices", "freezer"} {
		paths[s] = filepath.Join(dir, s)
	}
	m, err := Load(paths)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Set(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](64 * mib), Reservation: ptr[int64](32 * mib), Swap: ptr[int64](96 * mib),
			Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(true)},
		CPU: &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000),
			RealtimeRuntime: ptr[int64](1000), Cpus: "0", Mems: "0"},
		Pids: &specs.LinuxPids{Limit: ptr[int64](0)},
		BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 4096}}},
	})
	if err != nil {
		t.Fatalf("Set: %v", err)
	}
	for file, want := range map[string]string{
		"memory/memory.limit_in_bytes": strconv.Itoa(64 * mib), "memory/memory.memsw.limit_in_bytes": strconv.Itoa(96 * mib),
		"memory/memory.soft_limit_in_bytes": strconv.Itoa(32 * mib), "memory/memory.swappiness": "10", "memory/memory.oom_control": "1",
		"cpu/cpu.shares": "512", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.rt_runtime_us": "1000",
		"cpuset/cpuset.cpus": "0", "cpuset/cpuset.mems": "0",
		"pids/pids.max":                        "1", // the library's systemd-compatible reading of 0
		"blkio/blkio.throttle.read_bps_device": "8:0 4096",
	} {
		if got := readFake(t, dir, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// A loaded manager given no device rules leaves them alone.
	if got := readFake(t, dir, "devices/devices.list"); got != "a *:* rwm" {
		t.Errorf("devices.list touched: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "devices/devices.deny")); err == nil {
		t.Error("devices.deny written by an update without device rules")
	}
}
