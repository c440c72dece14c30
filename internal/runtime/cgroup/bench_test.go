package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// benchResources are the two shapes of container the start-latency
// benchmark cares about: `docker run` with no flags (only the device
// policy) and one with the usual limits.
func benchResources() map[string]*specs.LinuxResources {
	return map[string]*specs.LinuxResources{
		"default": {Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		"limits": {
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			Memory:  &specs.LinuxMemory{Limit: ptr[int64](256 * mib), Swap: ptr[int64](512 * mib)},
			CPU:     &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0"},
			Pids:    &specs.LinuxPids{Limit: ptr[int64](100)},
		},
	}
}

// BenchmarkNew is the cost of finding the mounts and checking resources.
func BenchmarkNew(b *testing.B) {
	res := benchResources()["limits"]
	for b.Loop() {
		if _, err := New("", "bench", res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLifecycle times New+Apply+Set and Destroy around a real process,
// as `berth run` does them; starting and reaping the process is not timed.
// The phases are reported separately as µs-new/op, µs-apply/op and so on;
// new includes reading the mounts except on a hybrid host's cgroup2 tree,
// which New would not pick.
func BenchmarkLifecycle(b *testing.B) {
	for _, kind := range []string{"v1", "v2"} {
		for _, shape := range []string{"default", "limits"} {
			b.Run(kind+"/"+shape, func(b *testing.B) {
				var h hierarchy
				if kind == "v1" {
					h = requireV1(b)
				} else {
					h = requireV2(b)
				}
				res := benchResources()[shape]
				if kind == "v2" && !hasControllers(h.unified, "memory", "cpu", "cpuset", "pids") {
					// A cgroup2 tree without these controllers (the CI
					// host's hybrid one) cannot take the limits.
					res = &specs.LinuxResources{Devices: res.Devices}
				}
				path := fmt.Sprintf("/berth-bench-%d/c", os.Getpid())
				b.Cleanup(func() {
					m, _ := newManager(path, "", nil, h)
					for _, p := range m.Paths() {
						_ = os.Remove(p)
						_ = os.Remove(filepath.Dir(p))
					}
				})
				var phases [4]time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					cmd := exec.Command("sleep", "100")
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()

					t0 := time.Now()
					var m *Manager
					var err error
					if h.v1 != nil || h.unified == defaultRoot {
						m, err = New(path, "", res) // the host's own mounts: time their discovery too
					} else {
						m, err = newManager(path, "", res, h)
					}
					t1 := time.Now()
					if err == nil {
						err = m.Apply(cmd.Process.Pid)
					}
					t2 := time.Now()
					if err == nil {
						err = m.Set(res)
					}
					t3 := time.Now()

					b.StopTimer()
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					b.StartTimer()

					t4 := time.Now()
					if m != nil {
						if derr := m.Destroy(); err == nil {
							err = derr
						}
					}
					t5 := time.Now()
					if err != nil {
						b.Fatal(err)
					}
					phases[0] += t1.Sub(t0)
					phases[1] += t2.Sub(t1)
					phases[2] += t3.Sub(t2)
					phases[3] += t5.Sub(t4)
				}
				for i, name := range []string{"new", "apply", "set", "destroy"} {
					b.ReportMetric(float64(phases[i].Microseconds())/float64(b.N), "µs-"+name+"/op")
				}
			})
		}
	}
}

// BenchmarkStartV2 compares two ways to put a container's first process
// into its v2 cgroup: start it, then Apply its pid (a migration), or
// Apply(-1) and start it inside with OpenDir (CLONE_INTO_CGROUP). The
// process start is timed too, since that is where the second way pays.
func BenchmarkStartV2(b *testing.B) {
	h := requireV2(b)
	path := fmt.Sprintf("/berth-bench-%d/c", os.Getpid())
	b.Cleanup(func() {
		_ = os.Remove(filepath.Join(h.unified, path))
		_ = os.Remove(filepath.Dir(filepath.Join(h.unified, path)))
	})
	for _, way := range []string{"migrate", "clone-into"} {
		b.Run(way, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				m, err := newManager(path, "", nil, h)
				if err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command("sleep", "100")
				if way == "migrate" {
					err = cmd.Start()
					if err == nil {
						err = m.Apply(cmd.Process.Pid)
					}
				} else {
					var dir *os.File
					if err = m.Apply(-1); err == nil {
						dir, err = m.OpenDir()
					}
					if err == nil {
						cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
						err = cmd.Start()
						dir.Close()
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				if err := m.Destroy(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

func hasControllers(root string, want ...string) bool {
	data, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return false
	}
	have := strings.Fields(string(data))
	for _, c := range want {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}

// BenchmarkStats is one `docker stats` sample.
func BenchmarkStats(b *testing.B) {
	h := requireV1(b)
	m := manage(b, h, nil)
	if err := m.Apply(-1); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Stats(); err != nil {
			b.Fatal(err)
		}
	}
}
