package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcMem returns VmRSS and Pss of pid in KiB (0, 0 if it is gone). RSS
// counts a shared binary once per process; Pss splits it among them:
// memory figures report both.
func ProcMem(pid int) (rssKB, pssKB int) {
	if pid <= 0 {
		return 0, 0
	}
	field := func(path, key string) int {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, key); ok {
				n, _ := strconv.Atoi(strings.Fields(v)[0])
				return n
			}
		}
		return 0
	}
	return field(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"), field(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}
