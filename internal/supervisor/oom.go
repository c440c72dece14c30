package supervisor

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomKilled reports an OOM kill in the container's cgroup: oom_kill in
// memory.events (cgroup v2) or memory.oom_control (v1). Read before the
// runtime deletes the cgroup.
func oomKilled(cgroupsPath string) bool {
	if cgroupsPath == "" || !filepath.IsAbs(cgroupsPath) {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup", cgroupsPath, "memory.events"),
		filepath.Join("/sys/fs/cgroup/memory", cgroupsPath, "memory.oom_control"),
	} {
		if n, ok := readKey(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

func readKey(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
