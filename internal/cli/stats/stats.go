// Package stats turns the Engine API's container stats into docker's
// `stats` columns: CPU % from two samples, memory without the page cache,
// summed network and block I/O.
package stats

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/cli/format"
)

// Table is docker's default `stats` table.
const Table = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// Header names the columns.
var Header = map[string]string{
	"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

// Row is one container's figures, with docker's field names for templates.
type Row struct {
	container        string // as the user named it
	id, name         string
	cpu, mem, memPct float64
	limit            float64
	rx, tx, rd, wr   float64
	pids             uint64
	trunc            bool
}

// FromResponse computes a row from one stats answer (with its previous
// sample); name is how the user asked for the container.
func FromResponse(name string, s container.StatsResponse, trunc bool) Row {
	r := Row{container: name, id: s.ID, name: strings.TrimPrefix(s.Name, "/"), pids: s.PidsStats.Current, trunc: trunc}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	cpus := float64(s.CPUStats.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		r.cpu = cpuDelta / sysDelta * cpus * 100
	}
	// Page cache the kernel can drop is not counted as use, as in docker:
	// total_inactive_file on cgroup v1, inactive_file on v2.
	used := float64(s.MemoryStats.Usage)
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && float64(v) < used {
			used -= float64(v)
			break
		}
	}
	r.mem, r.limit = used, float64(s.MemoryStats.Limit)
	if r.limit > 0 {
		r.memPct = used / r.limit * 100
	}
	for _, n := range s.Networks {
		r.rx += float64(n.RxBytes)
		r.tx += float64(n.TxBytes)
	}
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			r.rd += float64(e.Value)
		case "write":
			r.wr += float64(e.Value)
		}
	}
	return r
}

func (r Row) Container() string { return r.container }
func (r Row) Name() string      { return r.name }
func (r Row) ID() string {
	if r.trunc {
		return format.ShortID(r.id)
	}
	return r.id
}
func (r Row) CPUPerc() string  { return fmt.Sprintf("%.2f%%", r.cpu) }
func (r Row) MemPerc() string  { return fmt.Sprintf("%.2f%%", r.memPct) }
func (r Row) MemUsage() string { return units.BytesSize(r.mem) + " / " + units.BytesSize(r.limit) }
func (r Row) NetIO() string {
	return units.HumanSizeWithPrecision(r.rx, 3) + " / " + units.HumanSizeWithPrecision(r.tx, 3)
}
func (r Row) BlockIO() string {
	return units.HumanSizeWithPrecision(r.rd, 3) + " / " + units.HumanSizeWithPrecision(r.wr, 3)
}
func (r Row) PIDs() string { return fmt.Sprint(r.pids) }

// MarshalJSON gives `{{json .}}` docker's keys.
func (r Row) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"BlockIO": r.BlockIO(), "CPUPerc": r.CPUPerc(), "Container": r.Container(), "ID": r.ID(),
		"MemPerc": r.MemPerc(), "MemUsage": r.MemUsage(), "Name": r.Name(), "NetIO": r.NetIO(), "PIDs": r.PIDs(),
	})
}
