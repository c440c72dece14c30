package stats

import (
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestFromResponse(t *testing.T) {
	var s container.StatsResponse
	s.ID, s.Name = "0123456789abcdef", "/web"
	s.CPUStats.CPUUsage.TotalUsage, s.PreCPUStats.CPUUsage.TotalUsage = 3_000, 1_000
	s.CPUStats.SystemUsage, s.PreCPUStats.SystemUsage = 20_000, 10_000
	s.CPUStats.OnlineCPUs = 2
	s.MemoryStats = container.MemoryStats{Usage: 3 << 20, Limit: 64 << 20, Stats: map[string]uint64{"total_inactive_file": 1 << 20}}
	s.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 1000, TxBytes: 2000}, "eth1": {RxBytes: 500}}
	s.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Op: "Read", Value: 4096}, {Op: "write", Value: 1_500_000}}
	s.PidsStats.Current = 3
	r := FromResponse("web", s, true)
	got := []string{r.ID(), r.Name(), r.Container(), r.CPUPerc(), r.MemUsage(), r.MemPerc(), r.NetIO(), r.BlockIO(), r.PIDs()}
	want := []string{"0123456789ab", "web", "web", "40.00%", "2MiB / 64MiB", "3.12%", "1.5kB / 2kB", "4.1kB / 1.5MB", "3"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d: %q, want %q", i, got[i], want[i])
		}
	}
	// No previous sample: 0%, not a division by zero.
	s.PreCPUStats = container.CPUStats{}
	s.CPUStats.SystemUsage = 0
	if r := FromResponse("web", s, false); r.CPUPerc() != "0.00%" || r.ID() != s.ID {
		t.Errorf("first sample: %s %s", r.CPUPerc(), r.ID())
	}
}
