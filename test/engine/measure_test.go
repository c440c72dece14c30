package engine_test

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestMeasure prints the figures issue 5 asks for (daemon+supervisor idle
// RSS and Pss, added RSS per running container, `docker run --rm true`
// latency). Set BERTH_MEASURE=1; it is a measurement, not a check. The
// side-by-side benchmark with dockerd and podman belongs in bench/engine.
func TestMeasure(t *testing.T) {
	if os.Getenv("BERTH_MEASURE") != "1" {
		t.Skip("set BERTH_MEASURE=1")
	}
	berthOnly(t, "measures berth's daemon and supervisor; bench/engine compares with dockerd")
	d := startDaemon(t)
	d.mustDocker("run", "--rm", testImage, "true") // warm caches
	time.Sleep(time.Second)
	rss := func() (kb, pss int) {
		for _, pid := range []int{d.cmd.Process.Pid, d.supervisorPid()} {
			r, p := memOf(pid)
			kb, pss = kb+r, pss+p
		}
		return
	}
	idle, idlePss := rss()
	const n = 20
	for i := 0; i < n; i++ {
		d.mustDocker("run", "-d", testImage, "sleep", "1000")
	}
	time.Sleep(2 * time.Second)
	busy, busyPss := rss()
	// The containers' own processes: what they add on the host besides the
	// supervisor's growth.
	var ctrKB, ctrPss int
	for _, id := range d.runtimeIDs() {
		r, p := memOf(statePid(d.execRoot + "/runtime/" + id))
		ctrKB, ctrPss = ctrKB+r, ctrPss+p
	}
	t.Logf("idle daemon+supervisor: RSS %.1f MiB, Pss %.1f MiB", mib(idle), mib(idlePss))
	t.Logf("with %d sleeping containers: daemon+supervisor RSS %.1f MiB (+%.2f MiB/container), Pss +%.2f MiB/container; the container processes themselves: RSS %.2f MiB, Pss %.2f MiB each",
		n, mib(busy), mib(busy-idle)/n, mib(busyPss-idlePss)/n, mib(ctrKB)/n, mib(ctrPss)/n)
	var lat []time.Duration
	for i := 0; i < 15; i++ {
		start := time.Now()
		d.mustDocker("run", "--rm", testImage, "true")
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("docker run --rm true: median %v (min %v, max %v)", lat[len(lat)/2], lat[0], lat[len(lat)-1])
	var cli []time.Duration
	for i := 0; i < 15; i++ {
		start := time.Now()
		d.mustDocker("version", "--format", "x")
		cli = append(cli, time.Since(start))
	}
	sort.Slice(cli, func(i, j int) bool { return cli[i] < cli[j] })
	t.Logf("docker version (CLI start + 2 requests, for scale): median %v", cli[len(cli)/2])
}

func mib(kb int) float64 { return float64(kb) / 1024 }

// memOf returns VmRSS and Pss (KiB) of pid.
func memOf(pid int) (rss, pss int) { return testutil.ProcMem(pid) }
