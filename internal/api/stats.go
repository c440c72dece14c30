package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/runtime/cgroup"
)

// statsInterval is docker's: one sample a second when streaming.
const statsInterval = time.Second

// containerStats serves docker stats: streamed (one sample a second, each
// with the previous as precpu_stats), or one sample pair (stream=0), or a
// single sample (one-shot=1, precpu empty).
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ref := r.PathValue("id")
	stream := r.URL.Query().Get("stream") == "" || boolParam(r, "stream")
	oneShot := !stream && boolParam(r, "one-shot")
	first, c, err := s.sample(r, ref)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	emit := func(cur, prev container.StatsResponse) bool {
		cur.PreRead, cur.PreCPUStats = prev.Read, prev.CPUStats
		if enc.Encode(cur) != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	// next waits a period and samples again; false when the client left
	// or the container stopped (the stream ends then, as docker's does).
	next := func() (container.StatsResponse, bool) {
		select {
		case <-ctx.Done():
			return container.StatsResponse{}, false
		case <-time.After(statsInterval):
		}
		cur, _, err := s.sample(r, c.ID)
		return cur, err == nil
	}
	switch {
	case oneShot:
		emit(first, container.StatsResponse{})
	case !stream: // two samples, so that the CPU percentage means something
		if second, ok := next(); ok {
			emit(second, first)
		}
	default:
		prev, cur := container.StatsResponse{}, first
		for emit(cur, prev) {
			var ok bool
			prev = cur
			if cur, ok = next(); !ok {
				return
			}
		}
	}
}

func (s *Server) sample(r *http.Request, ref string) (container.StatsResponse, engine.Container, error) {
	st, c, err := s.eng.Stats(r.Context(), ref)
	if err != nil {
		return container.StatsResponse{}, c, err
	}
	return statsResponse(c, st), c, nil
}

func statsResponse(c engine.Container, st *cgroup.Stats) container.StatsResponse {
	out := container.StatsResponse{
		ID: c.ID, Name: c.Name, OSType: "linux", Read: time.Now().UTC(),
		CPUStats: container.CPUStats{
			CPUUsage: container.CPUUsage{
				TotalUsage: st.CPU.Total, PercpuUsage: st.CPU.PerCPU,
				UsageInKernelmode: st.CPU.System, UsageInUsermode: st.CPU.User,
			},
			SystemUsage: systemCPUUsage(),
			OnlineCPUs:  uint32(goruntime.NumCPU()),
			ThrottlingData: container.ThrottlingData{
				Periods: st.CPU.Periods, ThrottledPeriods: st.CPU.ThrottledPeriods, ThrottledTime: st.CPU.ThrottledTime,
			},
		},
		MemoryStats: container.MemoryStats{
			Usage: st.Memory.Usage, MaxUsage: st.Memory.MaxUsage, Limit: st.Memory.Limit, Stats: st.Memory.Stat,
		},
		PidsStats: container.PidsStats{Current: st.Pids.Current, Limit: st.Pids.Limit},
		NumProcs:  0,
	}
	if out.MemoryStats.Limit == 0 {
		out.MemoryStats.Limit = hostMemory() // docker shows the host's memory as the limit
	}
	for _, d := range st.Blkio.Devices {
		out.BlkioStats.IoServiceBytesRecursive = append(out.BlkioStats.IoServiceBytesRecursive,
			container.BlkioStatEntry{Major: d.Major, Minor: d.Minor, Op: "read", Value: d.ReadBytes},
			container.BlkioStatEntry{Major: d.Major, Minor: d.Minor, Op: "write", Value: d.WriteBytes})
	}
	return out
}

// systemCPUUsage is the host's CPU time in nanoseconds from /proc/stat,
// the denominator of docker's CPU percentage.
func systemCPUUsage() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] != "cpu" {
			continue
		}
		var ticks uint64
		for _, v := range fields[1:8] {
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		const userHz = 100 // clock ticks per second on Linux (USER_HZ)
		return ticks * (uint64(time.Second) / userHz)
	}
	return 0
}

func hostMemory() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) {
	titles, rows, err := s.eng.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, container.TopResponse{Titles: titles, Processes: rows})
}

func (s *Server) containerPause(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Pause(r.Context(), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerUnpause(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Unpause(r.Context(), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
