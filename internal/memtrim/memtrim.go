// Package memtrim gives back the memory a long-running berth process
// (daemon, supervisor) only needed to start.
//
// berth is one binary of ~30 MB; starting it runs the initialization of
// every package, and the kernel maps the touched text in 64 KiB runs
// (fault-around), so a fresh process holds most of its text and read-only
// data resident although an idle daemon runs a sliver of it. Trim drops
// those page mappings (madvise MADV_DONTNEED on the binary's read-only
// mappings: the pages stay in the page cache, a later use maps them back
// with a minor fault) and returns the heap garbage of start-up to the OS.
package memtrim

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Trim releases the resident text and read-only data of the running
// executable and the heap freed since start. It returns the bytes of
// mappings advised.
func Trim() (int64, error) {
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Never written (no write permission, a static binary has no
		// relocations), so dropping the mappings loses nothing.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e != 0 {
			return total, fmt.Errorf("memtrim: madvise %s: %w", fields[0], e)
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}

// Loop trims shortly after start-up and then each time the process goes
// quiet after work, until ctx ends: once a second it reads its CPU time,
// and the first second under quietCPU after one over it (a run of
// containers, a pull) ends with a trim. A busy process maps back what it
// uses (minor faults), an idle one is small again within two seconds. A
// trim is a forced GC of a small heap and one madvise per mapping.
func Loop(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	busy := true // start-up is work
	last := cpuTime()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(time.Second)
		now := cpuTime()
		used := now - last
		last = now
		if used >= quietCPU {
			busy = true
			continue
		}
		if !busy {
			continue
		}
		if _, err := Trim(); err != nil {
			log.Debug("memtrim", "err", err)
		}
		busy = false
		last = cpuTime() // the trim's own work is not activity
	}
}

// quietCPU is the CPU time per second under which the process is idle.
const quietCPU = 10 * time.Millisecond

func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
