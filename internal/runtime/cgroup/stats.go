package cgroup

import (
	"math"

	"github.com/opencontainers/cgroups"
)

// Stats is one sample of a container's cgroup, shaped for `docker stats`.
// Byte and nanosecond counters are cumulative since the cgroup was made.
type Stats struct {
	CPU    CPUStats
	Memory MemoryStats
	Pids   PidsStats
	Blkio  BlkioStats
}

// CPUStats is CPU time used by the cgroup's processes, in nanoseconds.
type CPUStats struct {
	Total  uint64
	User   uint64
	System uint64
	// PerCPU is usage per CPU; only cgroup v1 (cpuacct) keeps it.
	PerCPU []uint64
	// Periods, ThrottledPeriods and ThrottledTime (ns) report the CFS
	// quota at work.
	Periods          uint64
	ThrottledPeriods uint64
	ThrottledTime    uint64
}

// MemoryStats is the cgroup's memory charge, in bytes.
type MemoryStats struct {
	// Usage includes the page cache, as the kernel counts it.
	Usage uint64
	// MaxUsage is the peak usage; 0 when the kernel does not keep it
	// (cgroup v2 before Linux 5.19).
	MaxUsage uint64
	// Limit is 0 when there is no limit.
	Limit uint64
	// InactiveFile is the reclaimable page cache `docker stats` subtracts
	// from Usage (total_inactive_file on v1, inactive_file on v2).
	InactiveFile uint64
	// Stat is memory.stat as the kernel writes it; the Docker API passes it
	// on as memory_stats.stats.
	Stat map[string]uint64
}

// PidsStats counts tasks; Limit is 0 when there is no limit.
type PidsStats struct {
	Current uint64
	Limit   uint64
}

// BlkioStats is bytes read and written, in total and per block device.
type BlkioStats struct {
	ReadBytes  uint64
	WriteBytes uint64
	Devices    []BlkioDeviceStats
}

// BlkioDeviceStats is the I/O of one block device, by major:minor.
type BlkioDeviceStats struct {
	Major, Minor          uint64
	ReadBytes, WriteBytes uint64
}

// statsControllers are the controllers Stats reads; the others (cpuset,
// hugetlb, rdma, misc) cost reads nobody asked for.
const statsControllers = cgroups.CPU | cgroups.Memory | cgroups.Pids | cgroups.IO

// v1NoLimit is where cgroup v1 memory limits start to mean "unlimited": the
// kernel reports PAGE_COUNTER_MAX pages, 0x7FFFFFFFFFFFF000 with 4 KiB pages.
const v1NoLimit = 1 << 62

func statsFrom(s *cgroups.Stats, v2 bool) *Stats {
	out := &Stats{
		CPU: CPUStats{
			Total:            s.CpuStats.CpuUsage.TotalUsage,
			User:             s.CpuStats.CpuUsage.UsageInUsermode,
			System:           s.CpuStats.CpuUsage.UsageInKernelmode,
			PerCPU:           s.CpuStats.CpuUsage.PercpuUsage,
			Periods:          s.CpuStats.ThrottlingData.Periods,
			ThrottledPeriods: s.CpuStats.ThrottlingData.ThrottledPeriods,
			ThrottledTime:    s.CpuStats.ThrottlingData.ThrottledTime,
		},
		Memory: MemoryStats{
			Usage:    s.MemoryStats.Usage.Usage,
			MaxUsage: s.MemoryStats.Usage.MaxUsage,
			Limit:    s.MemoryStats.Usage.Limit,
			Stat:     s.MemoryStats.Stats,
		},
		Pids: PidsStats{Current: s.PidsStats.Current, Limit: s.PidsStats.Limit},
	}
	if out.Memory.Limit == math.MaxUint64 || (!v2 && out.Memory.Limit >= v1NoLimit) {
		out.Memory.Limit = 0
	}
	if v2 {
		out.Memory.InactiveFile = s.MemoryStats.Stats["inactive_file"]
	} else {
		out.Memory.InactiveFile = s.MemoryStats.Stats["total_inactive_file"]
	}

	index := map[[2]uint64]int{}
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		key := [2]uint64{e.Major, e.Minor}
		i, ok := index[key]
		if !ok {
			i = len(out.Blkio.Devices)
			index[key] = i
			out.Blkio.Devices = append(out.Blkio.Devices, BlkioDeviceStats{Major: e.Major, Minor: e.Minor})
		}
		switch e.Op {
		case "Read", "read":
			out.Blkio.Devices[i].ReadBytes += e.Value
			out.Blkio.ReadBytes += e.Value
		case "Write", "write":
			out.Blkio.Devices[i].WriteBytes += e.Value
			out.Blkio.WriteBytes += e.Value
		}
	}
	return out
}
